"""Plain Flax twins of the benchmarked jaxcnn models.

Each twin is the same network as its jaxcnn model, written the way a Flax user
would write it by hand: flax.linen nn.Conv / nn.Dense / nn.BatchNorm /
nn.max_pool, no registry, no validation, no jaxcnn layers. Submodule names
follow jaxcnn's, so for keras_cifar_cnn, resnet20, resnet50 and vgg11 the
parameter trees are identical leaf for leaf (the same variables run both).
Images NHWC, kernels HWIO.

`flax_twin(name, model)` builds the twin of a jaxcnn model instance, reading
its fields, and refuses a field value the twin does not implement.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

# LeNet-5's Table I (LeCun et al. 1998): the S2 maps each C3 map sees.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)
# (input map, output map) of every connection, in one flat order: 60 of the 96 pairs.
C3_ROWS = np.array([i for j, ins in enumerate(C3_TABLE) for i in ins])
C3_COLS = np.array([j for j, ins in enumerate(C3_TABLE) for _ in ins])


def _scaled_tanh(x):
    return 1.7159 * jnp.tanh(x * (2.0 / 3.0))


class _Subsampling(nn.Module):
    """2x2 sum (= 4 x avg-pool) times a per-map coefficient plus a per-map bias."""

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        coef = self.param("coefficient", nn.initializers.ones_init(), (c,))
        bias = self.param("bias", nn.initializers.zeros_init(), (c,))
        return nn.avg_pool(x, (2, 2), (2, 2)) * 4.0 * coef + bias


class _C3(nn.Module):
    """C3 with only Table I's 60 connected 5x5 kernels stored (1,516 parameters).

    The 60 kernels are one (5, 5, 60) parameter scattered into a zero
    (5, 5, 6, 16) HWIO kernel, then one lax convolution. jaxcnn's PartialConv
    does the same but stores the kernels as three runs of equal fan-in
    (kernel_0..kernel_2); the scatter and the convolution are the same.
    """

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", nn.initializers.lecun_normal(), (5, 5, len(C3_ROWS)))
        b = self.param("bias", nn.initializers.zeros_init(), (len(C3_TABLE),))
        dense = jnp.zeros((5, 5, 6, len(C3_TABLE)), w.dtype).at[:, :, C3_ROWS, C3_COLS].set(w)
        y = lax.conv_general_dilated(x, dense, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + b


class LeNet5(nn.Module):
    """LeNet-5 as published (jaxcnn "lenet5"): 60,000 parameters.

    Differences from jaxcnn's LeNet5, none of them in the arithmetic: C3's
    kernels are one (5, 5, 60) parameter instead of three; the RBF prototypes
    are a constant array closed over, not a `constants` collection that the
    library's apply recomputes (XLA folds both to a literal).
    """

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _scaled_tanh(nn.Conv(6, (5, 5), padding="VALID", name="C1")(x))
        x = _scaled_tanh(_Subsampling(name="S2")(x))
        x = _scaled_tanh(_C3(name="C3")(x))
        x = _scaled_tanh(_Subsampling(name="S4")(x))
        x = _scaled_tanh(nn.Conv(120, (5, 5), padding="VALID", name="C5")(x))
        x = x.reshape((x.shape[0], -1))
        x = _scaled_tanh(nn.Dense(84, name="F6")(x))
        from jaxcnn.layers import rbf_prototypes  # the fixed prototype values (data, not code)

        proto = jnp.asarray(rbf_prototypes(self.num_classes, x.shape[-1]), x.dtype)
        return -jnp.sum(jnp.square(x[:, :, None] - proto[None]), axis=1)


class KerasCifarCNN(nn.Module):
    """Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10, VALID 3x3, ReLU: 122,570 parameters."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Conv(32, (3, 3), padding="VALID", name="conv1")(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.Conv(64, (3, 3), padding="VALID", name="conv2")(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.Conv(64, (3, 3), padding="VALID", name="conv3")(x))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(64, name="fc1")(x))
        return nn.Dense(self.num_classes, name="fc2")(x)


def _bn(train, name):
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


def _conv(features, k, strides=1, name=None):
    p = k // 2
    return nn.Conv(features, (k, k), (strides, strides), padding=((p, p), (p, p)), use_bias=False, name=name)


class _Projection(nn.Module):
    features: int
    strides: int

    @nn.compact
    def __call__(self, x, train):
        x = _conv(self.features, 1, self.strides, name="conv")(x)
        return _bn(train, "bn")(x)


class _Basic(nn.Module):
    """Two 3x3 conv-BN, option A shortcut (subsample, zero-pad channels), ReLU."""

    features: int
    strides: int

    @nn.compact
    def __call__(self, x, train):
        y = nn.relu(_bn(train, "bn1")(_conv(self.features, 3, self.strides, "conv1")(x)))
        y = _bn(train, "bn2")(_conv(self.features, 3, 1, "conv2")(y))
        sc = x
        if self.strides > 1:
            sc = sc[:, ::self.strides, ::self.strides, :]
        if sc.shape[-1] < self.features:
            sc = jnp.pad(sc, ((0, 0), (0, 0), (0, 0), (0, self.features - sc.shape[-1])))
        return nn.relu(y + sc)


class _BasicB(nn.Module):
    """torchvision's basic block: two 3x3 conv-BN, projection shortcut (1x1 conv-BN) where the shape changes."""

    features: int
    strides: int

    @nn.compact
    def __call__(self, x, train):
        y = nn.relu(_bn(train, "bn1")(_conv(self.features, 3, self.strides, "conv1")(x)))
        y = _bn(train, "bn2")(_conv(self.features, 3, 1, "conv2")(y))
        sc = x
        if self.strides != 1 or x.shape[-1] != self.features:
            sc = _Projection(self.features, self.strides, name="downsample")(x, train)
        return nn.relu(y + sc)


class _Bottleneck(nn.Module):
    """1x1, 3x3 (strided, "v1.5"), 1x1 x4 conv-BN; projection shortcut where the shape changes."""

    features: int
    strides: int

    @nn.compact
    def __call__(self, x, train):
        f = self.features
        y = nn.relu(_bn(train, "bn1")(_conv(f, 1, 1, "conv1")(x)))
        y = nn.relu(_bn(train, "bn2")(_conv(f, 3, self.strides, "conv2")(y)))
        y = _bn(train, "bn3")(_conv(4 * f, 1, 1, "conv3")(y))
        sc = x
        if self.strides != 1 or x.shape[-1] != 4 * f:
            sc = _Projection(4 * f, self.strides, name="downsample")(x, train)
        return nn.relu(y + sc)


class CifarResNet(nn.Module):
    """He et al. 2015 section 4.2: 3x3 stem of 16, stages 16-32-64 of basic blocks, option A."""

    stage_sizes: Sequence[int] = (3, 3, 3)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(_bn(train, "bn1")(_conv(16, 3, 1, "conv1")(x)))
        for s, n in enumerate(self.stage_sizes):
            for b in range(n):
                x = _Basic(16 * 2 ** s, 2 if (s > 0 and b == 0) else 1, name=f"layer{s + 1}_{b}")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, name="fc")(x)


class ImageNetResNet(nn.Module):
    """torchvision's ResNet: 7x7/2 stem, 3x3/2 max pool, stages of 64-128-256-512 (x4 for bottlenecks)."""

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    num_classes: int = 1000
    block: str = "bottleneck"

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(_bn(train, "bn1")(_conv(64, 7, 2, "conv1")(x)))
        x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        block = _Bottleneck if self.block == "bottleneck" else _BasicB
        for s, n in enumerate(self.stage_sizes):
            for b in range(n):
                x = block(64 * 2 ** s, 2 if (s > 0 and b == 0) else 1, name=f"layer{s + 1}_{b}")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, name="fc")(x)


class VGG(nn.Module):
    """3x3 SAME conv-ReLU stages, each closed by a 2x2 max pool; fc6, fc7 with dropout; fc8."""

    stage_sizes: Sequence[int] = (1, 1, 2, 2, 2)
    widths: Sequence[int] = (64, 128, 256, 512, 512)
    fc_features: Sequence[int] = (4096, 4096)
    dropout_rate: float = 0.5
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, train: bool = False):
        for s, (n, width) in enumerate(zip(self.stage_sizes, self.widths), start=1):
            for i in range(1, n + 1):
                x = nn.relu(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), name=f"conv{s}_{i}")(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
        x = x.reshape((x.shape[0], -1))
        for j, f in enumerate(self.fc_features):
            x = nn.relu(nn.Dense(f, name=f"fc{6 + j}")(x))
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name=f"fc{6 + len(self.fc_features)}")(x)


class _DenseLayer(nn.Module):
    growth_rate: int
    bn_size: int

    @nn.compact
    def __call__(self, x, train):
        y = _conv(self.bn_size * self.growth_rate, 1, name="conv1")(nn.relu(_bn(train, "norm1")(x)))
        return _conv(self.growth_rate, 3, name="conv2")(nn.relu(_bn(train, "norm2")(y)))


class _DenseBlock(nn.Module):
    num_layers: int
    growth_rate: int
    bn_size: int

    @nn.compact
    def __call__(self, x, train):
        for j in range(1, self.num_layers + 1):
            x = jnp.concatenate([x, _DenseLayer(self.growth_rate, self.bn_size, name=f"denselayer{j}")(x, train)], -1)
        return x


class _Transition(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x, train):
        x = _conv(self.features, 1, name="conv")(nn.relu(_bn(train, "norm")(x)))
        return nn.avg_pool(x, (2, 2), (2, 2))


class DenseNetBC(nn.Module):
    """DenseNet-BC on CIFAR (Huang et al. 2017): a 3x3 stem of 2k maps, dense blocks of bottleneck layers
    (BN-ReLU-1x1 conv 4k, BN-ReLU-3x3 conv k), transitions (BN-ReLU-1x1 conv halving the maps, 2x2 average
    pool), BN-ReLU, global average pool, classifier."""

    block_sizes: Sequence[int] = (16, 16, 16)
    growth_rate: int = 12
    init_features: int = 24
    bn_size: int = 4
    compression: float = 0.5
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = _conv(self.init_features, 3, name="conv0")(x)
        for i, n in enumerate(self.block_sizes, start=1):
            x = _DenseBlock(n, self.growth_rate, self.bn_size, name=f"denseblock{i}")(x, train)
            if i < len(self.block_sizes):
                x = _Transition(int(x.shape[-1] * self.compression), name=f"transition{i}")(x, train)
        x = jnp.mean(nn.relu(_bn(train, "norm5")(x)), axis=(1, 2))
        return nn.Dense(self.num_classes, name="classifier")(x)


def _lrn(x, size=5, k=2.0, alpha=1e-4, beta=0.75):
    """Krizhevsky et al.'s local response normalisation across channels (alpha on the sum itself)."""
    half = size // 2
    s = lax.reduce_window(jnp.square(x), 0.0, lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                          ((0, 0), (0, 0), (0, 0), (half, size - 1 - half)))
    return x / (k + alpha * s) ** beta


class AlexNet(nn.Module):
    """Krizhevsky et al. 2012 on 227x227: conv1 11x11/4, LRN, 3x3/2 max pool, conv2 5x5 in two groups, LRN,
    pool, conv3, conv4 and conv5 (two groups), pool, fc6 and fc7 with dropout on their outputs, fc8."""

    widths: Sequence[int] = (96, 256, 384, 384, 256)
    fc_features: Sequence[int] = (4096, 4096)
    groups: int = 2
    dropout_rate: float = 0.5
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, train: bool = False):
        w, g = self.widths, self.groups
        pool = lambda x: nn.max_pool(x, (3, 3), (2, 2))  # noqa: E731
        x = pool(_lrn(nn.relu(nn.Conv(w[0], (11, 11), (4, 4), padding="VALID", name="conv1")(x))))
        x = pool(_lrn(nn.relu(nn.Conv(w[1], (5, 5), padding=((2, 2), (2, 2)), feature_group_count=g, name="conv2")(x))))
        x = nn.relu(nn.Conv(w[2], (3, 3), padding=((1, 1), (1, 1)), name="conv3")(x))
        x = nn.relu(nn.Conv(w[3], (3, 3), padding=((1, 1), (1, 1)), feature_group_count=g, name="conv4")(x))
        x = pool(nn.relu(nn.Conv(w[4], (3, 3), padding=((1, 1), (1, 1)), feature_group_count=g, name="conv5")(x)))
        x = x.reshape((x.shape[0], -1))
        for j, f in enumerate(self.fc_features):
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(nn.relu(nn.Dense(f, name=f"fc{6 + j}")(x)))
        return nn.Dense(self.num_classes, name=f"fc{6 + len(self.fc_features)}")(x)


def _require(model, name: str, **expected) -> None:
    """Refuse a jaxcnn model whose fields differ from what the twin implements."""
    for field, value in expected.items():
        got = getattr(model, field)
        if (tuple(got) if isinstance(got, (list, tuple)) else got) != value:
            raise ValueError(f"the Flax twin of {name} implements {field}={value!r}, the model has {got!r}.")


def twin_config(name: str, model) -> tuple[str, dict]:
    """(twin kind, constructor fields) for jaxcnn model `name` (an instance built by create_model).

    Shared by the Flax and torch twins; raises ValueError for a model or field
    value the twins do not implement.
    """
    common = dict(conv_mode="cross_correlation", dtype=None)
    if name == "lenet5":
        _require(model, name, c3_table="lenet", pooling="subsampling", activation="scaled_tanh", output="rbf",
                 **common)
        return "lenet5", dict(num_classes=model.num_classes)
    if name == "keras_cifar_cnn":
        _require(model, name, conv_features=(32, 64, 64), kernel_size=3, pool_after=(True, True, False),
                 hidden=(64,), image_size=32, in_channels=3, **common)
        return "keras_cifar_cnn", dict(num_classes=model.num_classes)
    if name.startswith("resnet"):
        _require(model, name, widen_factor=1, preact=False, skip=True, bn_axis_name=None, **common)
        if model.stem == "cifar":
            _require(model, name, block="basic", base_width=16, shortcut="A")
            return "cifar_resnet", dict(stage_sizes=tuple(model.stage_sizes), num_classes=model.num_classes)
        _require(model, name, base_width=64, shortcut="B", stem="imagenet")
        return "imagenet_resnet", dict(stage_sizes=tuple(model.stage_sizes), num_classes=model.num_classes,
                                       block=model.block)
    if name.startswith("densenet"):
        _require(model, name, bottleneck=True, stem="cifar", dropout_rate=0.0, bn_axis_name=None, **common)
        return "densenet_bc", dict(block_sizes=tuple(model.block_sizes), growth_rate=model.growth_rate,
                                   init_features=model.init_features, bn_size=model.bn_size,
                                   compression=float(model.compression), num_classes=model.num_classes)
    if name == "alexnet":
        _require(model, name, conv1_padding=0, image_size=227, lrn=True, overlap_pool=True,
                 dropout_placement="outputs", **common)
        return "alexnet", dict(widths=tuple(model.widths), fc_features=tuple(model.fc_features),
                               groups=model.groups, dropout_rate=float(model.dropout_rate),
                               num_classes=model.num_classes)
    if name.startswith("vgg"):
        _require(model, name, batch_norm=False, kernel_plan="3x3", bn_axis_name=None, **common)
        return "vgg", dict(stage_sizes=tuple(model.stage_sizes), widths=tuple(model.widths),
                           fc_features=tuple(model.fc_features), dropout_rate=float(model.dropout_rate),
                           num_classes=model.num_classes, image_size=int(model.image_size))
    raise ValueError(f"no benchmark twin for model {name!r}; twins exist for lenet5, keras_cifar_cnn, "
                     "CIFAR ResNets, ImageNet ResNets, VGG without BatchNorm, CIFAR DenseNet-BC and AlexNet.")


def flax_twin(name: str, model) -> nn.Module:
    """The plain Flax twin of jaxcnn model instance `model` (registered as `name`)."""
    kind, cfg = twin_config(name, model)
    if kind == "lenet5":
        return LeNet5(**cfg)
    if kind == "keras_cifar_cnn":
        return KerasCifarCNN(**cfg)
    if kind == "cifar_resnet":
        return CifarResNet(**cfg)
    if kind == "imagenet_resnet":
        return ImageNetResNet(**cfg)
    if kind == "densenet_bc":
        return DenseNetBC(**cfg)
    if kind == "alexnet":
        return AlexNet(**cfg)
    cfg = dict(cfg)
    cfg.pop("image_size")
    return VGG(**cfg)
