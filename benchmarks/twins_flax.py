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
    """torchvision's bottleneck ResNet: 7x7/2 stem, 3x3/2 max pool, stages of 64-128-256-512 (x4)."""

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    num_classes: int = 1000

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(_bn(train, "bn1")(_conv(64, 7, 2, "conv1")(x)))
        x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for s, n in enumerate(self.stage_sizes):
            for b in range(n):
                x = _Bottleneck(64 * 2 ** s, 2 if (s > 0 and b == 0) else 1, name=f"layer{s + 1}_{b}")(x, train)
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
        _require(model, name, block="bottleneck", base_width=64, shortcut="B", stem="imagenet")
        return "imagenet_resnet", dict(stage_sizes=tuple(model.stage_sizes), num_classes=model.num_classes)
    if name.startswith("vgg"):
        _require(model, name, batch_norm=False, kernel_plan="3x3", bn_axis_name=None, **common)
        return "vgg", dict(stage_sizes=tuple(model.stage_sizes), widths=tuple(model.widths),
                           fc_features=tuple(model.fc_features), dropout_rate=float(model.dropout_rate),
                           num_classes=model.num_classes, image_size=int(model.image_size))
    raise ValueError(f"no benchmark twin for model {name!r}; twins exist for lenet5, keras_cifar_cnn, "
                     "CIFAR ResNets, bottleneck ImageNet ResNets and VGG without BatchNorm.")


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
    cfg = dict(cfg)
    cfg.pop("image_size")
    return VGG(**cfg)
