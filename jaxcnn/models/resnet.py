"""Residual networks: He et al. 2015 (ImageNet and CIFAR), pre-activation
(He et al. 2016) and wide ResNets (Zagoruyko & Komodakis 2016), one module.

Images are NHWC, kernels HWIO. Every convolution is a `jaxcnn.layers.Conv`
without bias followed by BatchNorm, as in the papers.

Submodule names mirror torchvision so that its weights map one to one
(`layer1.0.conv1.weight` <-> `params["layer1_0"]["conv1"]["kernel"]`):

    conv1, bn1                         the stem (bn1 absent when preact=True)
    layer{s}_{b}                       stage s = 1.., block b = 0..
        conv1, bn1, conv2, bn2         basic block
        conv1, bn1, conv2, bn2, conv3, bn3   bottleneck (stride on the 3x3, "v1.5")
        downsample/conv, downsample/bn projection shortcut (torchvision's
                                       downsample.0 / downsample.1)
    bn_final                           preact=True only: the last BN-ReLU
    fc                                 the classifier

With preact=True a block's BatchNorms are those *before* each convolution
(bn1 -> conv1 -> bn2 -> conv2 ...), and a projection shortcut has no BN.

`bn_axis_name`: the name of a mapped device axis (jax.pmap's `axis_name`, or
a shard_map mesh axis). When set, BatchNorm batch statistics are averaged
over that axis, so every device normalises with the statistics of the whole
global batch (synchronised BatchNorm); None keeps per-device statistics.
"""

from __future__ import annotations

import functools
import re

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxcnn.layers import BatchNorm, Conv, GlobalAvgPool
from jaxcnn.models._common import ModuleDef, conv_for, dense_for, norm_for, validate_image
from jaxcnn.models.registry import Family, TorchvisionMap, register_family, register_model
from jaxcnn import ops


_max_pool = ops.max_pool


BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B", "C")
STEMS = ("imagenet", "cifar")

# He initialisation on the fan-out, torchvision's kaiming_normal_(mode="fan_out").
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

# What every convolution and BatchNorm of the family shares; the model binds its conv_mode, dtype and
# bn_axis_name to them once (conv_for, norm_for) and hands the layers to its blocks.
_CONV = dict(use_bias=False, kernel_init=_conv_init)
_NORM = dict(momentum=0.9, epsilon=1e-5)


class _Projection(nn.Module):
    """1x1 strided convolution (+ BN unless pre-activation): torchvision's `downsample`."""

    features: int
    strides: int
    use_bn: bool
    conv: ModuleDef
    norm: ModuleDef

    @nn.compact
    def __call__(self, x, train: bool):
        x = self.conv(self.features, 1, strides=self.strides, name="conv")(x)
        if self.use_bn:
            x = self.norm(name="bn")(x, use_running_average=not train)
        return x


def _option_a(x, features: int, strides: int):
    """Option A shortcut: subsample by `strides`, zero-pad the new channels (no parameters)."""
    if strides > 1:
        x = x[:, ::strides, ::strides, :]
    extra = features - x.shape[-1]
    if extra > 0:
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra)))
    return x


class ResidualBlock(nn.Module):
    """One residual block; `block` picks basic (two 3x3) or bottleneck (1x1-3x3-1x1, x4).

    x: NHWC. `features` is the block's width (its output is `features` for a
    basic block, 4 * features for a bottleneck). With skip=False the block is
    its residual branch alone: there is no identity or projection path.
    `conv` and `norm` are the layers as the model binds them (its conv_mode, dtype
    and bn_axis_name); the defaults: cross-correlation, per-device statistics.
    """

    features: int
    strides: int = 1
    block: str = "basic"
    shortcut: str = "B"
    preact: bool = False
    skip: bool = True
    conv: ModuleDef = functools.partial(Conv, **_CONV)
    norm: ModuleDef = functools.partial(BatchNorm, **_NORM)

    def _conv(self, features, kernel, strides, name):
        return self.conv(features, kernel, strides=strides, padding=kernel // 2, name=name)

    def _plan(self):
        f = self.features
        if self.block == "basic":
            return [(f, 3, self.strides), (f, 3, 1)]
        return [(f, 1, 1), (f, 3, self.strides), (4 * f, 1, 1)]

    @nn.compact
    def __call__(self, x, train: bool = False):
        plan = self._plan()
        out_features = plan[-1][0]
        inp = x
        if self.preact:
            y = x
            pre = None
            for i, (f, k, s) in enumerate(plan, start=1):
                y = nn.relu(self.norm(name=f"bn{i}")(y, use_running_average=not train))
                if i == 1:
                    pre = y
                y = self._conv(f, k, s, f"conv{i}")(y)
            residual = y
            short_in = pre  # a projection sees the pre-activated input (He et al. 2016)
        else:
            y = x
            for i, (f, k, s) in enumerate(plan, start=1):
                y = self._conv(f, k, s, f"conv{i}")(y)
                y = self.norm(name=f"bn{i}")(y, use_running_average=not train)
                if i < len(plan):
                    y = nn.relu(y)
            residual = y
            short_in = inp
        if not self.skip:
            return residual if self.preact else nn.relu(residual)
        changes = self.strides != 1 or inp.shape[-1] != out_features
        if self.shortcut == "C" or (self.shortcut == "B" and changes):
            sc = _Projection(out_features, self.strides, not self.preact, self.conv, self.norm,
                             name="downsample")(short_in, train)
        elif changes:  # option A
            sc = _option_a(inp, out_features, self.strides)
        else:
            sc = inp
        y = residual + sc
        return y if self.preact else nn.relu(y)


class ResNet(nn.Module):
    """ResNet, pre-activation ResNet and wide ResNet. x: NHWC images.

    Attributes:
      stage_sizes: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50, (3, 3, 3) for ResNet-20.
      block: "basic" (two 3x3 convolutions) or "bottleneck" (1x1, 3x3, 1x1 with 4x expansion).
      base_width: channels of the stem and of the first stage (64 ImageNet, 16 CIFAR);
        stage s has base_width * 2**s * widen_factor (times 4 at a bottleneck's output).
      widen_factor: the k of WRN-d-k (the stem keeps base_width channels).
      stem: "imagenet" (7x7/2 convolution, BN, ReLU, 3x3/2 max-pool) or "cifar" (3x3/1 convolution).
      shortcut: "A" zero-padded identity where the shape changes (no parameters),
        "B" 1x1 projection where it changes, "C" projection on every block (He 2015, table 3).
      preact: BN-ReLU before each convolution (He et al. 2016) and a final BN-ReLU.
      skip: False removes every shortcut: the plain network of the same depth.
      bn_axis_name: mapped axis name over which BatchNorm statistics are averaged
        (synchronised BatchNorm under pmap / shard_map); None = per-device statistics.
      num_classes, conv_mode, dtype: as for every model.
    """

    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    block: str = "basic"
    base_width: int = 64
    widen_factor: int = 1
    stem: str = "imagenet"
    shortcut: str = "B"
    preact: bool = False
    skip: bool = True
    num_classes: int = 1000
    conv_mode: str = "cross_correlation"
    dtype: Any = None
    bn_axis_name: Optional[str] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        n_down = len(self.stage_sizes) - 1 + (2 if self.stem == "imagenet" else 0)
        validate_image(x, model="ResNet", channels=None, min_size=2 ** n_down)
        conv = conv_for(self, **_CONV)
        norm = norm_for(self, **_NORM)
        if self.stem == "imagenet":
            x = conv(self.base_width, 7, strides=2, padding=3, name="conv1")(x)
        else:
            x = conv(self.base_width, 3, strides=1, padding=1, name="conv1")(x)
        if not self.preact:
            x = norm(name="bn1")(x, use_running_average=not train)
            x = nn.relu(x)
        if self.stem == "imagenet":
            x = _max_pool(x, 3, 2, padding=1)
        for s, n_blocks in enumerate(self.stage_sizes):
            width = self.base_width * 2 ** s * self.widen_factor
            for b in range(n_blocks):
                x = ResidualBlock(width, strides=2 if (s > 0 and b == 0) else 1, block=self.block,
                                  shortcut=self.shortcut, preact=self.preact, skip=self.skip, conv=conv,
                                  norm=norm, name=f"layer{s + 1}_{b}")(x, train)
        if self.preact:
            x = nn.relu(norm(name="bn_final")(x, use_running_average=not train))
        x = GlobalAvgPool()(x)
        return dense_for(self)(self.num_classes, name="fc")(x)


def torchvision_prefix(model: "ResNet"):
    """Our module path -> torchvision's: layer1_0/conv1 -> layer1.0.conv1, downsample/conv|bn -> downsample.0|1."""
    def prefix(path: tuple) -> str:
        out = []
        for i, part in enumerate(path):
            m = re.fullmatch(r"layer(\d+)_(\d+)", part)
            if m:
                out += [f"layer{m.group(1)}", m.group(2)]
            elif i > 0 and path[i - 1] == "downsample":
                out.append({"conv": "0", "bn": "1"}[part])
            else:
                out.append(part)
        return ".".join(out)

    return prefix


register_family(ResNet, Family(head=lambda m: "fc", choices=dict(block=BLOCKS, shortcut=SHORTCUTS, stem=STEMS),
                               torchvision=TorchvisionMap(
    torchvision_prefix, required=dict(stem="imagenet", preact=False, shortcut="B", skip=True, widen_factor=1))))


_IMAGENET = dict(stem="imagenet", base_width=64, shortcut="B")
for _name, _sizes, _block in (
    ("resnet18", (2, 2, 2, 2), "basic"),
    ("resnet34", (3, 4, 6, 3), "basic"),
    ("resnet50", (3, 4, 6, 3), "bottleneck"),
    ("resnet101", (3, 4, 23, 3), "bottleneck"),
    ("resnet152", (3, 8, 36, 3), "bottleneck"),
):
    register_model(_name, ResNet, input_shape=(224, 224, 3), stage_sizes=_sizes, block=_block, torchvision=_name,
                   description=f"He et al. 2015, table 1: {_name[6:]}-layer ResNet on ImageNet (torchvision layout)",
                   **_IMAGENET)

# CIFAR: 6n+2 layers, stages of 16-32-64 maps, option A shortcuts (He et al. 2015, section 4.2).
for _n in (3, 5, 7, 9, 18):
    register_model(f"resnet{6 * _n + 2}", ResNet, input_shape=(32, 32, 3), stage_sizes=(_n, _n, _n),
                   block="basic", stem="cifar", base_width=16, shortcut="A", num_classes=10,
                   description=f"He et al. 2015, section 4.2: {6 * _n + 2}-layer CIFAR ResNet, option A shortcuts")

register_model("preact_resnet110", ResNet, input_shape=(32, 32, 3), stage_sizes=(18, 18, 18), block="basic",
               stem="cifar", base_width=16, shortcut="A", preact=True, num_classes=10,
               description="He et al. 2016: pre-activation ResNet-110 on CIFAR")

# Wide ResNets WRN-d-k: (d - 4) / 6 pre-activation basic blocks per stage of
# 16k-32k-64k maps, 1x1 projections where the shape changes (Zagoruyko & Komodakis 2016, table 1).
for _d, _k in ((16, 4), (28, 10)):
    register_model(f"wrn{_d}_{_k}", ResNet, input_shape=(32, 32, 3), stage_sizes=((_d - 4) // 6,) * 3,
                   block="basic", stem="cifar", base_width=16, widen_factor=_k, shortcut="B", preact=True,
                   num_classes=10, description=f"Zagoruyko & Komodakis 2016: WRN-{_d}-{_k} on CIFAR")
