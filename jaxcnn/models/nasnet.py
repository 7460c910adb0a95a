"""NASNet-A (Zoph et al. 2018, "Learning transferable architectures for
scalable image recognition"): the searched normal and reduction cells of
figure 4, stacked as in figure 2. Images NHWC, kernels HWIO.

Each cell takes two hidden states: h_i (the previous cell's output) and
h_{i-1} (the one before). h_i goes through ReLU-1x1 conv-BN to the cell's
`filters`; h_{i-1} is "adjusted" to the same shape: when its spatial size is
twice h_i's (a reduction came between them) by the factorized reduction
(ReLU, two 1x1/2 convolutions on the map and on the map shifted by one pixel,
each to filters/2, concatenated, BN), otherwise, when only its width differs,
by ReLU-1x1 conv-BN. A separable-convolution branch is applied twice, as the
paper's appendix A.4 says: ReLU-sep conv-BN-ReLU-sep conv-BN, each separable
convolution a depthwise k x k (groups = channels) followed by a 1x1.

Normal cell (h = h_i, p = h_{i-1}, all stride 1), output the concatenation
[p, b1, ..., b5] (6 * filters maps):
  b1 = sep5x5(h) + sep3x3(p)     b2 = sep5x5(p) + sep3x3(p)
  b3 = avg3x3(h) + p             b4 = avg3x3(p) + avg3x3(p)
  b5 = sep3x3(h) + h
Reduction cell (stride 2 on the cell inputs), output [b2, b3, b4, b5] (4 * filters):
  b1 = sep5x5/2(h) + sep7x7/2(p)   b2 = max3x3/2(h) + sep7x7/2(p)
  b3 = avg3x3/2(h) + sep5x5/2(p)   b4 = avg3x3(b1) + b2
  b5 = sep3x3(b1) + max3x3/2(h)

The layout, widths and padding follow the Keras application (keras.applications.NASNetMobile),
whose ImageNet model is the one the paper's "NASNet-A (4 @ 1056)" row describes: an
N @ P network has cells of P/24 filters in its first stack, doubled by each of
its two reduction cells; the ImageNet stem is a 3x3/2 convolution and two
reduction cells. A `dropout_rate` before the classifier is a field.

The paper's training (section 4 and appendix A; TF-slim's nets/nasnet, the authors' reference):

* An auxiliary classifier (`aux_logits`, on by default) on the last normal cell of the second stack (the
  cell before the second reduction): ReLU, 5x5/3 VALID average pool, 1x1 conv to 128, BN, ReLU, a conv to
  768 over the whole remaining map (VALID), BN, ReLU, a dense layer to num_classes (convolutions without
  bias). As in GoogLeNet here, its logits are sown in training as `intermediates["aux_logits"]` and the
  training step adds their cross-entropy at `aux_weight` (0.4, TF-slim's weighting for every NASNet);
  its parameters exist whenever aux_logits=True. Keras' application has no auxiliary head (its parameter
  counts are those with aux_logits=False).
* ScheduledDropPath (`drop_path_rate`): in training, every operation of a cell except the identities is
  dropped for a whole example with probability drop_path_rate * (c + 1) / C * min(1, progress), the kept
  ones divided by the keep probability; c is the cell's index in the order they run (the ImageNet stem's
  two reduction cells first), C the number of cells (3N + 2, plus 2 with the ImageNet stem), progress the
  fraction of training done, which the training step passes (`__call__(..., progress=)`; None = 1, the
  full rate). It draws from the `dropout` rng; evaluation drops nothing. TF-slim's rates: 0.4 on CIFAR
  (keep 0.6), 0.3 for the large ImageNet model (keep 0.7), none for mobile (keep 1.0), the registered
  variants' defaults.

`bn_axis_name`: the mapped device axis (pmap's axis_name / a shard_map mesh
axis) over which BatchNorm batch statistics are averaged; None = per device.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn import ops
from jaxcnn.layers import BatchNorm, Conv, Dense, Dropout, GlobalAvgPool
from jaxcnn.models._common import ModuleDef, conv_for, dense_for, norm_for, validate_image
from jaxcnn.models.registry import Family, register_family, register_model
from jaxcnn.ops.conv import explicit_padding

STEMS = ("imagenet", "cifar")

_conv_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")  # Keras' he_normal

# What every convolution of the family shares; the model binds its conv_mode and dtype to it once (conv_for)
# and hands the layer to its cells, with its BatchNorm (norm_for: bn_momentum, bn_epsilon, bn_axis_name).
_CONV = dict(use_bias=False, kernel_init=_conv_init)


def _same_pads(x, window, stride):
    return explicit_padding("SAME", x.shape[1:3], (window, window), (stride, stride), (1, 1))


def _max_pool(x, window, stride):
    """Max pool over an input zero-padded as TensorFlow's SAME (Keras pads with zeros first). x: NHWC."""
    x = jnp.pad(x, ((0, 0), *_same_pads(x, window, stride), (0, 0)))
    return ops.max_pool(x, window, stride, "VALID")


def _avg_pool(x, window, stride, count_include_pad):
    """Average pool with SAME padding. x: NHWC. count_include_pad=False divides by the real pixels only
    (TensorFlow's SAME average pool); True by the full window (Keras' zero-padded reduction pools)."""
    return ops.avg_pool(x, window, stride, _same_pads(x, window, stride), count_include_pad)


def drop_path_rate_of(rate: float, cell: int, num_cells: int, progress=None):
    """ScheduledDropPath's probability for cell `cell` (0-based, in the order the cells run) of `num_cells`
    at `progress` (the fraction of training done; None = 1): rate * (cell + 1) / num_cells * min(1, progress),
    as TF-slim's NasNetABaseCell._apply_drop_path (drop_connect_version "v3")."""
    if progress is None:
        ratio = 1.0
    elif isinstance(progress, (int, float, np.integer, np.floating)):
        ratio = min(max(float(progress), 0.0), 1.0)
    else:  # a traced step fraction
        ratio = jnp.clip(jnp.asarray(progress, jnp.float32), 0.0, 1.0)
    return rate * (cell + 1) / num_cells * ratio


def drop_path(x, rate, key):
    """Zero whole examples of x (NHWC) with probability `rate` (a scalar, may be traced), dividing the kept
    ones by 1 - rate so that the expectation is x."""
    keep = 1.0 - jnp.asarray(rate, jnp.float32)
    mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep.astype(x.dtype), jnp.zeros((), x.dtype))


class _Base(nn.Module):
    """The layers a cell receives from its model (conv, norm: bound with the model's conv_mode, dtype,
    bn_axis_name, bn_momentum and bn_epsilon); the defaults: cross-correlation, momentum 0.9, epsilon 1e-5,
    per-device statistics."""

    conv: ModuleDef = functools.partial(Conv, **_CONV)
    norm: ModuleDef = functools.partial(BatchNorm, momentum=0.9, epsilon=1e-5)

    def _bn(self, x, train, name):
        return self.norm(name=name)(x, use_running_average=not train)

    def _conv(self, x, features, kernel=1, strides=1, padding="SAME", groups=1, name=None):
        return self.conv(features, kernel, strides=strides, padding=padding, groups=groups, name=name)(x)

    def layers(self):
        return dict(conv=self.conv, norm=self.norm)


class SeparableBranch(_Base):
    """ReLU-separable conv (k x k, stride)-BN-ReLU-separable conv (k x k)-BN. x: NHWC.

    A separable convolution: depthwise k x k (one filter per channel, groups = channels),
    then a 1x1 pointwise to `features`; neither has a bias.
    """

    features: int = 0
    kernel_size: int = 3
    strides: int = 1

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i, s in ((1, self.strides), (2, 1)):
            x = nn.relu(x)
            x = self._conv(x, x.shape[-1], self.kernel_size, s, groups=x.shape[-1], name=f"sep{i}_depthwise")
            x = self._conv(x, self.features, 1, name=f"sep{i}_pointwise")
            x = self._bn(x, train, f"bn{i}")
        return x


class _Cell(_Base):
    filters: int = 0

    def adjust(self, p, ip, train):
        """Bring the previous-previous state p to ip's size and `filters` channels."""
        if p is None:
            return ip
        if p.shape[1] != ip.shape[1] or p.shape[2] != ip.shape[2]:  # factorized reduction
            p = nn.relu(p)
            p1 = self._conv(p[:, ::2, ::2, :], self.filters // 2, name="adjust_conv_1")
            shifted = jnp.pad(p[:, 1:, 1:, :], ((0, 0), (0, 1), (0, 1), (0, 0)))
            p2 = self._conv(shifted[:, ::2, ::2, :], self.filters // 2, name="adjust_conv_2")
            return self._bn(jnp.concatenate([p1, p2], axis=-1), train, "adjust_bn")
        if p.shape[-1] != self.filters:
            p = self._conv(nn.relu(p), self.filters, name="adjust_conv_projection")
            return self._bn(p, train, "adjust_bn")
        return p

    def squeeze(self, ip, train):
        return self._bn(self._conv(nn.relu(ip), self.filters, name="conv_1"), train, "bn_1")

    def sep(self, x, kernel, strides, name, train):
        return SeparableBranch(**self.layers(), features=self.filters, kernel_size=kernel, strides=strides,
                               name=name)(x, train)

    def dropper(self, train, drop_rate):
        """The function ScheduledDropPath applies to each operation's output: identity in evaluation or
        without a rate, else `drop_path` at drop_rate with a fresh key from the `dropout` rng."""
        if not train or drop_rate is None:
            return lambda y: y
        return lambda y: drop_path(y, drop_rate, self.make_rng("dropout"))


class NormalCell(_Cell):
    """NASNet-A normal cell (figure 4, left). ip = h_i, p = h_{i-1}, NHWC; output 6 * filters maps.
    drop_rate: ScheduledDropPath's probability for this cell in training (None: nothing dropped)."""

    @nn.compact
    def __call__(self, ip, p, train: bool = False, drop_rate=None):
        d = self.dropper(train, drop_rate)
        p = self.adjust(p, ip, train)
        h = self.squeeze(ip, train)
        b1 = d(self.sep(h, 5, 1, "left1", train)) + d(self.sep(p, 3, 1, "right1", train))
        b2 = d(self.sep(p, 5, 1, "left2", train)) + d(self.sep(p, 3, 1, "right2", train))
        b3 = d(_avg_pool(h, 3, 1, False)) + p
        b4 = d(_avg_pool(p, 3, 1, False)) + d(_avg_pool(p, 3, 1, False))
        b5 = d(self.sep(h, 3, 1, "left5", train)) + h
        return jnp.concatenate([p, b1, b2, b3, b4, b5], axis=-1)


class ReductionCell(_Cell):
    """NASNet-A reduction cell (figure 4, right). ip = h_i, p = h_{i-1}, NHWC; output 4 * filters maps at half
    size. drop_rate: ScheduledDropPath's probability for this cell in training (None: nothing dropped)."""

    @nn.compact
    def __call__(self, ip, p, train: bool = False, drop_rate=None):
        d = self.dropper(train, drop_rate)
        p = self.adjust(p, ip, train)
        h = self.squeeze(ip, train)
        b1 = d(self.sep(h, 5, 2, "left1", train)) + d(self.sep(p, 7, 2, "right1", train))
        b2 = d(_max_pool(h, 3, 2)) + d(self.sep(p, 7, 2, "right2", train))
        b3 = d(_avg_pool(h, 3, 2, True)) + d(self.sep(p, 5, 2, "right3", train))
        b4 = d(_avg_pool(b1, 3, 1, False)) + b2
        b5 = d(self.sep(b1, 3, 1, "left5", train)) + d(_max_pool(h, 3, 2))
        return jnp.concatenate([b2, b3, b4, b5], axis=-1)


class AuxHead(_Base):
    """TF-slim's NASNet auxiliary classifier. x: NHWC, at least 5x5 (the last normal cell of the second stack).

    ReLU, 5x5/3 VALID average pool, 1x1 conv 128 (proj), BN, ReLU, a conv to 768 whose kernel is the whole
    pooled map (VALID), BN, ReLU, flatten, dense to num_classes (fc). `dense`: as the model binds it (its dtype)."""

    num_classes: int = 1000
    dense: ModuleDef = Dense

    @nn.compact
    def __call__(self, x, train: bool = False):
        if min(x.shape[1:3]) < 5:
            raise ValueError(f"NASNet's auxiliary head pools 5x5 over the second stack's {x.shape[1]}x{x.shape[2]} "
                             "map, which needs at least 5x5: feed larger images or set aux_logits=False.")
        x = lax.reduce_window(nn.relu(x), np.array(0, x.dtype), lax.add, (1, 5, 5, 1), (1, 3, 3, 1), "VALID") / 25
        x = nn.relu(self._bn(self._conv(x, 128, name="proj"), train, "aux_bn0"))
        x = self._conv(x, 768, x.shape[1:3], padding="VALID", name="conv")
        x = nn.relu(self._bn(x, train, "aux_bn1"))
        return self.dense(self.num_classes, name="fc")(x.reshape(x.shape[0], -1))


class NASNet(nn.Module):
    """NASNet-A (N @ P). x: NHWC images.

    Attributes:
      num_blocks: N, normal cells per stack (three stacks, two reduction cells between them).
      penultimate_filters: P, the maps before the classifier (a multiple of 24 * filter_multiplier**2);
        the first stack's cells have P / 24 filters (hence 6 * P / 24 maps out), the others
        filter_multiplier and filter_multiplier**2 times that.
      stem: "imagenet" (3x3/2 conv-BN and two reduction cells of P/24/m**2 and P/24/m filters)
        or "cifar" (3x3/1 conv-BN).
      stem_filters: the stem convolution's maps (32 mobile, 96 CIFAR).
      skip_reduction: False (mobile, CIFAR): the cell after a reduction cell takes the
        reduction cell's input as its h_{i-1}; True (NASNet-Large) keeps the earlier one.
      filter_multiplier: the width factor at each reduction (2).
      dropout_rate: before the classifier (the Keras model has none).
      aux_logits: build the auxiliary classifier (`aux`) on the last normal cell of the second stack; in
        training its logits are sown as intermediates["aux_logits"]. True (the paper's training); Keras'
        model has none (False).
      aux_weight: the weight of the auxiliary loss in training (0.4, TF-slim's); read by the training step.
      drop_path_rate: ScheduledDropPath's final probability for the last cell (0 = none); see the module
        docstring for the schedule over cells and training.
      bn_momentum, bn_epsilon: BatchNorm settings (Keras' pretrained model uses 0.9997 and 1e-3).
      bn_axis_name: mapped axis for synchronised BatchNorm statistics; None = per device.
      num_classes, conv_mode, dtype: as for every model.

    Submodules: stem_conv1, stem_bn1, then the cells named as Keras' block ids
    (stem_1, stem_2 for the ImageNet stem; normal_0 .. normal_{N-1},
    reduce_N, normal_{N+1} .., reduce_2N, normal_{2N+1} ..), predictions.
    """

    num_blocks: int = 4
    penultimate_filters: int = 1056
    stem: str = "imagenet"
    stem_filters: int = 32
    skip_reduction: bool = False
    filter_multiplier: int = 2
    dropout_rate: float = 0.0
    aux_logits: bool = True
    aux_weight: float = 0.4
    drop_path_rate: float = 0.0
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    num_classes: int = 1000
    conv_mode: str = "cross_correlation"
    dtype: Any = None
    bn_axis_name: Optional[str] = None

    @property
    def num_cells(self) -> int:
        """Cells in the network: 3N normal, 2 reduction, and the ImageNet stem's 2 reduction cells."""
        return 3 * self.num_blocks + 2 + (2 if self.stem == "imagenet" else 0)

    def drop_path_rates(self, progress=None) -> list:
        """ScheduledDropPath's probability of every cell, in the order they run, at `progress`."""
        return [drop_path_rate_of(self.drop_path_rate, c, self.num_cells, progress) for c in range(self.num_cells)]

    @nn.compact
    def __call__(self, x, train: bool = False, progress=None):
        """x: NHWC images. progress: the fraction of training done (ScheduledDropPath; None = 1)."""
        m = self.filter_multiplier
        validate_image(x, model="NASNet", channels=None, min_size=32 if self.stem == "imagenet" else 4)
        filters = self.penultimate_filters // 24
        conv = conv_for(self, **_CONV)
        norm = norm_for(self, momentum=self.bn_momentum, epsilon=self.bn_epsilon)
        common = dict(conv=conv, norm=norm)  # the layers every cell receives, bound once
        if self.stem == "imagenet":
            x = conv(self.stem_filters, 3, strides=2, padding="VALID", name="stem_conv1")(x)
        else:
            x = conv(self.stem_filters, 3, strides=1, padding="SAME", name="stem_conv1")(x)
        x = norm(name="stem_bn1")(x, use_running_average=not train)
        p = None if self.stem == "imagenet" else x  # CIFAR: the first cell's h_{i-1} is the stem's output
        rates = iter(self.drop_path_rates(progress) if train and self.drop_path_rate > 0 else
                     [None] * self.num_cells)
        if self.stem == "imagenet":
            x, p = ReductionCell(**common, filters=filters // (m * m), name="stem_1")(x, p, train, next(rates)), x
            x, p = ReductionCell(**common, filters=filters // m, name="stem_2")(x, p, train, next(rates)), x
        n = self.num_blocks
        for stack in range(3):
            width = filters * m ** stack
            if stack > 0:
                x, p0 = ReductionCell(**common, filters=width, name=f"reduce_{stack * n}")(x, p, train, next(rates)), x
                p = p if self.skip_reduction else p0
            for i in range(n):
                cell = NormalCell(**common, filters=width, name=f"normal_{stack * n + min(stack, 1) + i}")
                x, p = cell(x, p, train, next(rates)), x
            if stack == 1 and self.aux_logits:
                aux = AuxHead(**common, dense=dense_for(self), num_classes=self.num_classes, name="aux")(x, train)
                if train:
                    self.sow("intermediates", "aux_logits", aux)
        x = nn.relu(x)
        x = GlobalAvgPool()(x)
        if self.dropout_rate:
            x = Dropout(self.dropout_rate, deterministic=not train)(x)
        return dense_for(self)(self.num_classes, name="predictions")(x)


def _check(fields: dict) -> None:
    m = fields["filter_multiplier"]
    if fields["penultimate_filters"] % (24 * m * m):
        raise ValueError(f"NASNet penultimate_filters must be a multiple of 24 * filter_multiplier**2 = "
                         f"{24 * m * m}, got {fields['penultimate_filters']}")


register_family(NASNet, Family(head=lambda m: "predictions", choices=dict(stem=STEMS), check=_check,
                                aux_weight=lambda m: m.aux_weight if m.aux_logits else 0.0,
                                takes_progress=lambda m: m.drop_path_rate > 0))
register_model("nasnet_a_mobile", NASNet, input_shape=(224, 224, 3), num_blocks=4, penultimate_filters=1056,
               stem="imagenet", stem_filters=32, skip_reduction=False, drop_path_rate=0.0,
               description="Zoph et al. 2018, table 3: NASNet-A (4 @ 1056) on ImageNet, mobile setting")
register_model("nasnet_a_cifar", NASNet, input_shape=(32, 32, 3), num_blocks=6, penultimate_filters=768,
               stem="cifar", stem_filters=96, skip_reduction=False, num_classes=10, drop_path_rate=0.4,
               description="Zoph et al. 2018, table 1: NASNet-A (6 @ 768) on CIFAR-10")
register_model("nasnet_a_large", NASNet, input_shape=(331, 331, 3), num_blocks=6, penultimate_filters=4032,
               stem="imagenet", stem_filters=96, skip_reduction=True, drop_path_rate=0.3,
               description="Zoph et al. 2018, table 2: NASNet-A (6 @ 4032) on ImageNet, large setting")
