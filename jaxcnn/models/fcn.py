"""Fully convolutional networks for semantic segmentation (Long, Shelhamer and
Darrell, CVPR 2015): FCN-32s, FCN-16s and FCN-8s on a VGG16 backbone.

Follows the reference Caffe nets (voc-fcn{32,16,8}s):

* conv1_1 is padded by 100 pixels so that any input survives the five poolings
  and the 7x7 fc6; every other convolution is 3x3 with padding 1; the 2x2
  stride-2 max poolings round up (Caffe's ceil mode).
* fc6 is a 7x7 VALID convolution to 4096, fc7 a 1x1 to 4096 (both ReLU and
  dropout 0.5 when training), score_fr a 1x1 to num_classes.
* upsampling is a transposed convolution (kernel 2s, stride s, no bias)
  initialised to bilinear interpolation, per class. As the paper (section
  4.3, "Upsampling"): the intermediate 2x layers (upscore2, upscore_pool4) start
  bilinear and are learned parameters; the final one (upscore) is fixed to
  bilinear, a constant and not a parameter (`upsampling="paper"`, the
  default). `upsampling="fixed"` fixes them all (the released reference nets'
  lr_mult 0); `"learned"` learns them all.
* the class scoring layers (score_fr, score_pool4, score_pool3) start at zero,
  kernels and biases (sections 4.2-4.3: "zero-initializing the class scoring
  layer"; the skips' new layers likewise); `zero_score=False` gives them the
  other convolutions' initialisation.
* staged training (section 4.2): FCN-16s starts from a trained FCN-32s and FCN-8s
  from a trained 16s, every variable they share taken over (config.init_from,
  jaxcnn.train); the new score layers start at zero, so the finer net begins
  exactly where the coarser one ended.
* skip fusion, with the reference crop offsets: FCN-16s crops score_pool4 at
  offset 5 and the final 32x32 stride-16 upsampling at 27; FCN-8s crops
  score_pool4 at 5, score_pool3 at 9 and the final 16x16 stride-8 upsampling
  at 31; FCN-32s crops its 64x64 stride-32 upsampling at 19.
* the reference nets scale pool4 by 0.01 and pool3 by 0.0001 before their
  score layers ("at-once" training); `skip_scaling=True` does so (default False,
  as in the staged nets of the paper).

Output: (N, H, W, num_classes) logits, exactly the input's H and W.
Learned parameters on 21 classes with every upsampling fixed: FCN-32s 134,346,581, FCN-16s 134,357,354,
FCN-8s 134,362,751; the paper's learned 2x layers (4x4x21x21 each) add 7,056 to FCN-16s and 14,112 to FCN-8s.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import warnings

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxcnn import ops
from jaxcnn.models._common import conv_for, validate_image
from jaxcnn.models.registry import Family, register_family, register_model

VARIANTS = ("32s", "16s", "8s")
UPSAMPLINGS = ("paper", "fixed", "learned")
WEIGHT_INITS = ("lecun", "he")
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def bilinear_kernel(size: int, channels: int, dtype=jnp.float32):
    """The (size, size, channels, channels) HWIO kernel of bilinear upsampling.

    As the reference `upsample_filt`: factor = (size + 1) // 2, centre =
    factor - 1 (size odd) or factor - 0.5 (even), weight (1 - |i - centre| /
    factor) (1 - |j - centre| / factor); diagonal across channels (each class
    upsampled on its own).
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.arange(size)
    filt1 = 1 - np.abs(og - center) / factor
    filt = np.outer(filt1, filt1)
    k = np.zeros((size, size, channels, channels), np.float64)
    for c in range(channels):
        k[:, :, c, c] = filt
    return jnp.asarray(k, dtype)


def fcn_conv_transpose(x, kernel, stride: int):
    """Transposed ("fractionally strided") convolution with no padding, NHWC x,
    HWIO kernel: output side (in - 1) * stride + k, as Caffe's Deconvolution.
    """
    # lax.conv_transpose(x, kernel, stride, "VALID") without transpose_kernel: the
    # adjoint of a cross-correlation whose kernel is this one flipped, in and out
    # swapped (ops.conv_transpose takes that forward kernel; native on the CPU).
    return ops.conv_transpose(x, ops.flip_kernel(kernel).transpose(0, 1, 3, 2), stride=stride, padding="VALID")


def _crop(x, offset: int, hw):
    if x.shape[1] < offset + hw[0] or x.shape[2] < offset + hw[1]:
        raise ValueError(f"FCN: a {x.shape[1]}x{x.shape[2]} map cannot be cropped at offset {offset} to "
                         f"{hw[0]}x{hw[1]}; this input size and pad do not fit (try pad 100, or another pad).")
    return x[:, offset:offset + hw[0], offset:offset + hw[1], :]


def _pool_ceil(x):
    """2x2 stride-2 max pooling rounding the output size up (Caffe)."""
    h, w = x.shape[1:3]
    return ops.max_pool(x, 2, 2, padding=((0, h % 2), (0, w % 2)))


class Upsample(nn.Module):
    """Per-class bilinear upsampling by a transposed convolution (no bias).

    Fixed (a constant, no parameter) unless `learnable`, in which case its
    (2*stride, 2*stride, C, C) kernel is a parameter initialised to bilinear.
    """

    stride: int
    learnable: bool = False

    @nn.compact
    def __call__(self, x):
        size, c = 2 * self.stride, x.shape[-1]
        if self.learnable:
            kernel = self.param("kernel", lambda key, shape: bilinear_kernel(size, c), (size, size, c, c))
        else:
            kernel = bilinear_kernel(size, c)
        return fcn_conv_transpose(x, kernel.astype(x.dtype), self.stride)


def crop_offsets(variant: str, pad: int = 100, fc6_kernel: int = 7) -> dict:
    """The crop offsets of the skip fusions and the final crop, from each layer's coordinate map (as Caffe's
    Crop layer derives them): a map x_input = a * x + b per tensor; conv1_1 (3x3, pad P) gives b = 1 - P,
    each 2x2/2 pooling (a, b) -> (2a, b + a/2), fc6 (k x k VALID) b += a (k - 1) / 2, an upsampling by s
    (kernel 2s) (a, b) -> (a/s, b - a (2s - 1) / (2s)). Cropping A to align with B: offset (b_B - b_A) / a.
    With pad 100 and a 7x7 fc6: 32s {"final": 19}, 16s {"pool4": 5, "final": 27}, 8s {"pool4": 5, "pool3": 9,
    "final": 31}, the reference nets' numbers."""
    b_pool = {}
    a, b = 1.0, 1.0 - pad
    for s in range(1, 6):
        a, b = 2 * a, b + a / 2
        b_pool[s] = (a, b)
    a, b = a, b + a * (fc6_kernel - 1) / 2

    def up(a, b, s):
        return a / s, b - a * (2 * s - 1) / (2 * s)

    out = {}
    if variant == "32s":
        out["final"] = -up(a, b, 32)[1]
    else:
        a, b = up(a, b, 2)
        out["pool4"] = (b - b_pool[4][1]) / a
        if variant == "8s":
            a, b = up(a, b, 2)
            out["pool3"] = (b - b_pool[3][1]) / a
            out["final"] = -up(a, b, 8)[1]
        else:
            out["final"] = -up(a, b, 16)[1]
    if any(v != round(v) or v < 0 for v in out.values()):
        raise ValueError(f"FCN-{variant} with pad={pad}, fc6_kernel={fc6_kernel} has crop offsets {out} that are "
                         "not whole non-negative cells; choose another pad.")
    return {k: int(round(v)) for k, v in out.items()}


class FCN(nn.Module):
    """FCN-32s / 16s / 8s. Images NHWC of any size >= 1x1; kernels HWIO.

    Attributes:
      variant: "32s", "16s" or "8s".
      num_classes: output channels (21 for PASCAL VOC, background included).
      upsampling: "paper" (the 2x layers learned from bilinear, the final one fixed bilinear), "fixed" or
        "learned" (all of them).
      learn_upsampling: deprecated; True is upsampling="learned", False "fixed"; None (default) follows
        `upsampling`.
      zero_score: the score layers' kernels and biases start at zero (the paper); False: as the other
        convolutions.
      skip_scaling: scale pool4 by 0.01 and pool3 by 1e-4 before scoring.
      dropout_rate: dropout after fc6 and fc7 when training.
      widths: the channels of each convolution, per stage (VGG16's by default).
      fc_width, fc6_kernel: fc6 (a fc6_kernel x fc6_kernel VALID convolution) and fc7 width (4096, 7).
      pad: conv1_1's padding (100: any input survives the five poolings and fc6); the crop offsets follow
        from it (`crop_offsets`).
      weight_init: the convolutions' initialisation, "lecun" (Flax's default, variance 1/fan_in) or "he"
        (variance 2/fan_in, He et al. 2015): the reference nets start from ImageNet VGG16; trained from
        scratch, the 16 ReLU layers without normalisation need "he" or the signal dies out. A smaller network for small images sets smaller widths, fc_width,
        fc6_kernel and pad; the architecture (skips, bilinear upsampling, crops) is the same.
    Submodules: conv1_1 .. conv5_3, fc6, fc7, score_fr, score_pool4,
    score_pool3, upscore2, upscore_pool4, upscore (final).
    """

    variant: str = "8s"
    num_classes: int = 21
    upsampling: str = "paper"
    learn_upsampling: Optional[bool] = None
    zero_score: bool = True
    skip_scaling: bool = False
    dropout_rate: float = 0.5
    in_channels: int = 3
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None
    widths: Sequence[Sequence[int]] = VGG16_STAGES
    fc_width: int = 4096
    fc6_kernel: int = 7
    pad: int = 100
    weight_init: str = "lecun"

    @nn.compact
    def __call__(self, x, train: bool = False):
        upsampling = self.upsampling
        if self.learn_upsampling is not None:
            warnings.warn("FCN's learn_upsampling is deprecated; use upsampling='learned' or 'fixed' (the paper's "
                          "default, 'paper', learns the 2x layers and fixes the final one).", DeprecationWarning,
                          stacklevel=2)
            upsampling = "learned" if self.learn_upsampling else "fixed"
        validate_image(x, model=f"fcn{self.variant}", channels=self.in_channels, min_size=1)
        offsets = crop_offsets(self.variant, self.pad, self.fc6_kernel)
        h, w = x.shape[1:3]
        init = nn.initializers.lecun_normal() if self.weight_init == "lecun" else nn.initializers.he_normal()
        bound = conv_for(self, kernel_init=init)

        def conv(f, k, name, pad=0):
            return bound(f, k, padding=pad, name=name)
        feats = {}
        y = x
        for s, widths in enumerate(self.widths, start=1):
            for i, f in enumerate(widths, start=1):
                y = nn.relu(conv(f, 3, f"conv{s}_{i}", self.pad if (s, i) == (1, 1) else 1)(y))
            y = _pool_ceil(y)
            feats[s] = y
        if min(y.shape[1:3]) < self.fc6_kernel:
            raise ValueError(f"fcn{self.variant}: a {h}x{w} input leaves pool5 {y.shape[1]}x{y.shape[2]}, smaller "
                             f"than fc6's {self.fc6_kernel}x{self.fc6_kernel}; raise pad or lower fc6_kernel.")
        y = nn.relu(conv(self.fc_width, self.fc6_kernel, "fc6")(y))
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        y = nn.relu(conv(self.fc_width, 1, "fc7")(y))
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        zeros = nn.initializers.zeros
        score_conv = conv_for(self, kernel_init=zeros, bias_init=zeros) if self.zero_score else bound

        def score_layer(y, name):
            return score_conv(self.num_classes, 1, padding=0, name=name)(y)

        score = score_layer(y, "score_fr")
        learn_2x, learn_final = upsampling != "fixed", upsampling == "learned"
        if self.variant == "32s":
            return _crop(Upsample(32, learn_final, name="upscore")(score), offsets["final"], (h, w))
        up = Upsample(2, learn_2x, name="upscore2")(score)
        p4 = feats[4] * 0.01 if self.skip_scaling else feats[4]
        score = up + _crop(score_layer(p4, "score_pool4"), offsets["pool4"], up.shape[1:3])
        if self.variant == "16s":
            return _crop(Upsample(16, learn_final, name="upscore")(score), offsets["final"], (h, w))
        up = Upsample(2, learn_2x, name="upscore_pool4")(score)
        p3 = feats[3] * 1e-4 if self.skip_scaling else feats[3]
        score = up + _crop(score_layer(p3, "score_pool3"), offsets["pool3"], up.shape[1:3])
        return _crop(Upsample(8, learn_final, name="upscore")(score), offsets["final"], (h, w))


def _check(fields: dict) -> None:
    if len(fields["widths"]) != 5:
        raise ValueError(f"widths must give the convolutions of 5 stages, got {len(fields['widths'])}")


register_family(FCN, Family(choices=dict(variant=VARIANTS, upsampling=UPSAMPLINGS, weight_init=WEIGHT_INITS),
                            check=_check))  # per-pixel scores: no classifier head
for _v in VARIANTS:
    register_model(f"fcn{_v}", FCN, input_shape=(500, 500, 3), variant=_v,
                   description=f"FCN-{_v} on VGG16 (Long et al. 2015); 21 VOC classes, output at input size")
