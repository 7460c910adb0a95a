"""DenseNet (Huang et al. 2017, "Densely connected convolutional networks").

Images NHWC, kernels HWIO. Inside a dense block every layer sees the
concatenation of the block's input and all earlier layers' outputs, and adds
`growth_rate` maps of its own. A layer is BN-ReLU-3x3 conv, or with
`bottleneck=True` (DenseNet-B) BN-ReLU-1x1 conv (bn_size * growth_rate maps)
-BN-ReLU-3x3 conv. Between blocks a transition layer BN-ReLU-1x1 conv-2x2
average pool keeps floor(compression * C) maps (DenseNet-C for
compression < 1; the paper's section 3 and torchvision both put the ReLU
after the transition's BN). Convolutions have no bias.

Submodule names follow torchvision's `features.*` without the prefix: conv0,
norm0 (ImageNet stem only), denseblock{i}/denselayer{j} (norm1, conv1, norm2,
conv2; j from 1), transition{i} (norm, conv), norm5, classifier.

`bn_axis_name`: the mapped device axis (pmap's axis_name or a shard_map mesh
axis) over which BatchNorm batch statistics are averaged; None = per device.
"""

from __future__ import annotations

import functools
import re

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxcnn.layers import BatchNorm, Conv, Dropout, GlobalAvgPool
from jaxcnn.models._common import ModuleDef, conv_for, dense_for, norm_for, validate_image
from jaxcnn.models.registry import Family, TorchvisionMap, register_family, register_model
from jaxcnn import ops

STEMS = ("imagenet", "cifar")

_conv_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")  # torchvision's kaiming_normal_

# What every convolution and BatchNorm of the family shares; the model binds its conv_mode, dtype and
# bn_axis_name to them once (conv_for, norm_for) and hands the layers to its blocks.
_CONV = dict(use_bias=False, kernel_init=_conv_init)
_NORM = dict(momentum=0.9, epsilon=1e-5)


_max_pool = ops.max_pool
_avg_pool = ops.avg_pool


class _Common(nn.Module):
    """The layers a block receives from its model (conv, norm: bound with the model's conv_mode, dtype and
    bn_axis_name); the defaults: cross-correlation, per-device statistics."""

    conv: ModuleDef = functools.partial(Conv, **_CONV)
    norm: ModuleDef = functools.partial(BatchNorm, **_NORM)

    def _conv(self, features, kernel, name):
        return self.conv(features, kernel, padding=kernel // 2, name=name)


class DenseLayer(_Common):
    """[BN-ReLU-1x1 conv (bn_size * growth_rate)]-BN-ReLU-3x3 conv (growth_rate); returns the new maps only."""

    growth_rate: int = 32
    bottleneck: bool = True
    bn_size: int = 4
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.bottleneck:
            x = nn.relu(self.norm(name="norm1")(x, use_running_average=not train))
            x = self._conv(self.bn_size * self.growth_rate, 1, "conv1")(x)
            x = nn.relu(self.norm(name="norm2")(x, use_running_average=not train))
            x = self._conv(self.growth_rate, 3, "conv2")(x)
        else:  # the basic DenseNet layer, named as the bottleneck's second half
            x = nn.relu(self.norm(name="norm1")(x, use_running_average=not train))
            x = self._conv(self.growth_rate, 3, "conv1")(x)
        if self.dropout_rate:
            x = Dropout(self.dropout_rate, deterministic=not train)(x)
        return x


class DenseBlock(_Common):
    """`num_layers` dense layers; each one's output is concatenated to its input. x: NHWC."""

    num_layers: int = 6
    growth_rate: int = 32
    bottleneck: bool = True
    bn_size: int = 4
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        for j in range(1, self.num_layers + 1):
            new = DenseLayer(conv=self.conv, norm=self.norm, growth_rate=self.growth_rate,
                             bottleneck=self.bottleneck, bn_size=self.bn_size, dropout_rate=self.dropout_rate,
                             name=f"denselayer{j}")(x, train)
            x = jnp.concatenate([x, new], axis=-1)
        return x


class Transition(_Common):
    """BN-ReLU-1x1 conv (`features` maps)-2x2/2 average pool. x: NHWC."""

    features: int = 0
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(self.norm(name="norm")(x, use_running_average=not train))
        x = self._conv(self.features, 1, "conv")(x)
        if self.dropout_rate:
            x = Dropout(self.dropout_rate, deterministic=not train)(x)
        return _avg_pool(x, 2, 2)


class DenseNet(nn.Module):
    """DenseNet, DenseNet-B/C/BC. x: NHWC images.

    Attributes:
      block_sizes: dense layers per block, e.g. (6, 12, 24, 16) for DenseNet-121.
      growth_rate: k, the maps each layer adds.
      init_features: maps of the first convolution (2k for DenseNet-BC, 16 for DenseNet on CIFAR).
      bottleneck: the 1x1 bottleneck in each layer (DenseNet-B); bn_size: its width in units of k.
      compression: theta, transitions keep floor(theta * C) maps (1.0: none; 0.5 for DenseNet-C/BC).
      stem: "imagenet" (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) or "cifar" (one 3x3 conv).
      dropout_rate: after each convolution but the first (0.2 in the paper's runs without augmentation).
      bn_axis_name: mapped axis for synchronised BatchNorm statistics; None = per device.
      num_classes, conv_mode, dtype: as for every model.
    """

    block_sizes: Sequence[int] = (6, 12, 24, 16)
    growth_rate: int = 32
    init_features: int = 64
    bottleneck: bool = True
    bn_size: int = 4
    compression: float = 0.5
    stem: str = "imagenet"
    dropout_rate: float = 0.0
    num_classes: int = 1000
    conv_mode: str = "cross_correlation"
    dtype: Any = None
    bn_axis_name: Optional[str] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        n_down = len(self.block_sizes) - 1 + (2 if self.stem == "imagenet" else 0)
        validate_image(x, model="DenseNet", channels=None, min_size=2 ** n_down)
        conv = conv_for(self, **_CONV)
        norm = norm_for(self, **_NORM)
        layers = dict(conv=conv, norm=norm)
        if self.stem == "imagenet":
            x = conv(self.init_features, 7, strides=2, padding=3, name="conv0")(x)
            x = nn.relu(norm(name="norm0")(x, use_running_average=not train))
            x = _max_pool(x, 3, 2, padding=1)
        else:
            x = conv(self.init_features, 3, padding=1, name="conv0")(x)
        for i, n in enumerate(self.block_sizes, start=1):
            x = DenseBlock(**layers, num_layers=n, growth_rate=self.growth_rate, bottleneck=self.bottleneck,
                           bn_size=self.bn_size, dropout_rate=self.dropout_rate, name=f"denseblock{i}")(x, train)
            if i < len(self.block_sizes):
                x = Transition(**layers, features=int(x.shape[-1] * self.compression),
                               dropout_rate=self.dropout_rate, name=f"transition{i}")(x, train)
        x = nn.relu(norm(name="norm5")(x, use_running_average=not train))
        x = GlobalAvgPool()(x)
        return dense_for(self)(self.num_classes, name="classifier")(x)


def torchvision_prefix(model: DenseNet):
    """Our module path -> torchvision's: denseblock1/denselayer1/conv1 -> features.denseblock1.denselayer1.conv1."""
    return lambda path: "classifier" if path[0] == "classifier" else "features." + ".".join(path)


# torchvision's DenseNet checkpoints name `denselayer1.norm.1.weight` what its modules call `denselayer1.norm1.weight`
# (torchvision's _load_state_dict renames them with this pattern).
_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
                      r"running_var|num_batches_tracked))$")


def rename_old_key(key: str) -> str:
    m = _OLD_KEY.match(key)
    return m.group(1) + m.group(2) if m else key


# compression's range (0, 1] is checked with every model's ranges (jaxcnn.models._fields.FLOAT_RANGES).
register_family(DenseNet, Family(head=lambda m: "classifier", choices=dict(stem=STEMS), torchvision=TorchvisionMap(
    torchvision_prefix, required=dict(stem="imagenet", bottleneck=True, compression=0.5),
    rename_key=rename_old_key)))

# torchvision's ImageNet DenseNet-BC models (Huang et al. 2017, table 1).
for _name, _blocks, _k, _init in (
    ("densenet121", (6, 12, 24, 16), 32, 64),
    ("densenet161", (6, 12, 36, 24), 48, 96),
    ("densenet169", (6, 12, 32, 32), 32, 64),
    ("densenet201", (6, 12, 48, 32), 32, 64),
):
    register_model(_name, DenseNet, input_shape=(224, 224, 3), torchvision=_name, block_sizes=_blocks, growth_rate=_k,
                   init_features=_init, bottleneck=True, compression=0.5, stem="imagenet",
                   description=f"Huang et al. 2017, table 1: {_name[8:]}-layer DenseNet-BC on ImageNet (k={_k})")

# CIFAR (section 3, table 2): three blocks of equal size after a 3x3 convolution.
register_model("densenet40_12", DenseNet, input_shape=(32, 32, 3), block_sizes=(12, 12, 12), growth_rate=12,
               init_features=16, bottleneck=False, compression=1.0, stem="cifar", num_classes=10,
               description="Huang et al. 2017, table 2: DenseNet (L=40, k=12) on CIFAR")
register_model("densenet_bc_100_12", DenseNet, input_shape=(32, 32, 3), block_sizes=(16, 16, 16), growth_rate=12,
               init_features=24, bottleneck=True, compression=0.5, stem="cifar", num_classes=10,
               description="Huang et al. 2017, table 2: DenseNet-BC (L=100, k=12) on CIFAR")
