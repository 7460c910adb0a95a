"""Fully convolutional networks for semantic segmentation (Long, Shelhamer and
Darrell, CVPR 2015): FCN-32s, FCN-16s and FCN-8s on a VGG16 backbone.

Follows the reference Caffe nets (voc-fcn{32,16,8}s):

* conv1_1 is padded by 100 pixels so that any input survives the five poolings
  and the 7x7 fc6; every other convolution is 3x3 with padding 1; the 2x2
  stride-2 max poolings round up (Caffe's ceil mode).
* fc6 is a 7x7 VALID convolution to 4096, fc7 a 1x1 to 4096 (both ReLU and
  dropout 0.5 when training), score_fr a 1x1 to num_classes.
* upsampling is a transposed convolution (kernel 2s, stride s, no bias)
  initialised to bilinear interpolation, per class. By default these kernels
  are fixed constants and are NOT parameters (the reference nets keep them
  frozen at bilinear, lr_mult 0); `learn_upsampling=True` makes them learned
  parameters initialised to bilinear (then they are counted).
* skip fusion, with the reference crop offsets: FCN-16s crops score_pool4 at
  offset 5 and the final 32x32 stride-16 upsampling at 27; FCN-8s crops
  score_pool4 at 5, score_pool3 at 9 and the final 16x16 stride-8 upsampling
  at 31; FCN-32s crops its 64x64 stride-32 upsampling at 19.
* the reference nets scale pool4 by 0.01 and pool3 by 0.0001 before their
  score layers ("at-once" training); `skip_scaling=True` does so (default False,
  as in the staged nets of the paper).

Output: (N, H, W, num_classes) logits, exactly the input's H and W.
Learned parameters on 21 classes: FCN-32s 134,346,581, FCN-16s 134,357,354,
FCN-8s 134,362,751.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxcnn import ops
from jaxcnn._validation import check_choice
from jaxcnn.models._common import check_conv_mode, conv_for, validate_image
from jaxcnn.models.registry import register_model

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


class FCN(nn.Module):
    """FCN-32s / 16s / 8s. Images NHWC of any size >= 1x1; kernels HWIO.

    Attributes:
      variant: "32s", "16s" or "8s".
      num_classes: output channels (21 for PASCAL VOC, background included).
      learn_upsampling: make the bilinear upsampling kernels learned params.
      skip_scaling: scale pool4 by 0.01 and pool3 by 1e-4 before scoring.
      dropout_rate: dropout after fc6 and fc7 when training.
    Submodules: conv1_1 .. conv5_3, fc6, fc7, score_fr, score_pool4,
    score_pool3, upscore2, upscore_pool4, upscore (final).
    """

    variant: str = "8s"
    num_classes: int = 21
    learn_upsampling: bool = False
    skip_scaling: bool = False
    dropout_rate: float = 0.5
    in_channels: int = 3
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        check_choice("variant", self.variant, ("32s", "16s", "8s"))
        check_conv_mode(self.conv_mode)
        validate_image(x, model=f"fcn{self.variant}", channels=self.in_channels, min_size=1)
        h, w = x.shape[1:3]
        bound = conv_for(self)

        def conv(f, k, name, pad=0):
            return bound(f, k, padding=pad, name=name)
        feats = {}
        y = x
        for s, widths in enumerate(VGG16_STAGES, start=1):
            for i, f in enumerate(widths, start=1):
                y = nn.relu(conv(f, 3, f"conv{s}_{i}", 100 if (s, i) == (1, 1) else 1)(y))
            y = _pool_ceil(y)
            feats[s] = y
        y = nn.relu(conv(4096, 7, "fc6")(y))
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        y = nn.relu(conv(4096, 1, "fc7")(y))
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        score = conv(self.num_classes, 1, "score_fr")(y)
        learn = self.learn_upsampling
        if self.variant == "32s":
            return _crop(Upsample(32, learn, name="upscore")(score), 19, (h, w))
        up = Upsample(2, learn, name="upscore2")(score)
        p4 = feats[4] * 0.01 if self.skip_scaling else feats[4]
        score = up + _crop(conv(self.num_classes, 1, "score_pool4")(p4), 5, up.shape[1:3])
        if self.variant == "16s":
            return _crop(Upsample(16, learn, name="upscore")(score), 27, (h, w))
        up = Upsample(2, learn, name="upscore_pool4")(score)
        p3 = feats[3] * 1e-4 if self.skip_scaling else feats[3]
        score = up + _crop(conv(self.num_classes, 1, "score_pool3")(p3), 9, up.shape[1:3])
        return _crop(Upsample(8, learn, name="upscore")(score), 31, (h, w))


for _v in ("32s", "16s", "8s"):
    register_model(f"fcn{_v}", FCN, input_shape=(500, 500, 3), variant=_v,
                   description=f"FCN-{_v} on VGG16 (Long et al. 2015); 21 VOC classes, output at input size")
