"""The convolution layer with its `conv_mode`, and the shape-keeping layers
(flatten, pooling, LRN) that show as rows in `jaxcnn.models.summary`.

Images are NHWC and kernels HWIO. Parameters live in the `params` collection
under the names Flax's own layers use (`kernel`, `bias`), so weights convert
to and from `flax.linen.Conv` / `Dense` one to one.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import flax.linen as nn
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from jaxcnn import ops
from jaxcnn.ops import linear
from jaxcnn._validation import as_pair, check_choice

Initializer = Callable[..., Any]

CONV_MODES = ("cross_correlation", "convolution")


def check_conv_mode(conv_mode: str) -> None:
    """Refuse a conv_mode other than "cross_correlation" or "convolution", naming both."""
    check_choice("conv_mode", conv_mode, CONV_MODES)


class Conv(nn.Module):
    """2-D convolution layer; `conv_mode` picks the semantics.

    Attributes:
      features: output channels.
      kernel_size: an int or (KH, KW).
      strides, dilation: an int or a pair.
      padding: "VALID", "SAME", an int, (ph, pw) or ((top, bottom), (left, right)).
      groups: channel groups; the kernel is (KH, KW, C_in / groups, features).
      use_bias: add a learned bias per output channel.
      conv_mode: "cross_correlation" (what frameworks call convolution; the
        default) or "convolution" (the kernel flipped on its spatial axes).
      dtype: computation dtype (None: inferred from inputs and params);
        param_dtype: storage dtype of the parameters.

    Input x: NHWC. Kernel stored as HWIO.
    """

    features: int
    kernel_size: Any = 3
    strides: Any = 1
    padding: Any = "VALID"
    dilation: Any = 1
    groups: int = 1
    use_bias: bool = True
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None
    param_dtype: Any = jnp.float32
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x):
        check_conv_mode(self.conv_mode)
        kh, kw = as_pair(self.kernel_size, "kernel_size")
        ops.check_image(x)
        in_ch = x.shape[-1]
        if in_ch % self.groups:
            raise ValueError(
                f"Conv groups={self.groups} must divide the input channels {in_ch} (x shape {x.shape})."
            )
        kernel = self.param("kernel", self.kernel_init, (kh, kw, in_ch // self.groups, self.features),
                            self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        op = ops.convolve if self.conv_mode == "convolution" else ops.cross_correlate
        y = op(x, kernel, stride=self.strides, padding=self.padding, dilation=self.dilation, groups=self.groups)
        if bias is not None:
            y = linear.add_bias(y, bias)  # its gradient is one native pass on the CPU
        return y


class Dense(nn.Dense):
    """flax.linen.Dense (same fields, variables and initialisers) whose product is `jaxcnn.ops.linear.dot_general`:
    on the CPU its input gradient runs natively, where XLA's is slowest."""

    dot_general: Any = linear.dot_general


Dropout = nn.Dropout


class Flatten(nn.Module):
    """(N, H, W, C) -> (N, H*W*C) in (H, W, C) order.

    A module rather than a reshape so that `convolutionalize` can find where a
    classifier's dense head begins.
    """

    @nn.compact
    def __call__(self, x):
        return x.reshape((x.shape[0], -1))


class GlobalAvgPool(nn.Module):
    """Mean over height and width: (N, H, W, C) -> (N, C)."""

    @nn.compact
    def __call__(self, x):
        return ops.global_avg_pool(x)


class LRN(nn.Module):
    """Local response normalisation across channels; AlexNet's defaults. x: NHWC."""

    size: int = 5
    k: float = 2.0
    alpha: float = 1e-4
    beta: float = 0.75

    @nn.compact
    def __call__(self, x):
        return ops.local_response_norm(x, size=self.size, k=self.k, alpha=self.alpha, beta=self.beta)


class MaxPool(nn.Module):
    """Max pooling over the spatial axes of NHWC images, as a layer so that it
    appears in `jaxcnn.summary`. `strides=None` means strides = window;
    AlexNet's overlapping pooling is window=3, strides=2."""

    window: Any = 2
    strides: Any = None
    padding: Any = "VALID"

    @nn.compact
    def __call__(self, x):
        return ops.max_pool(x, self.window, self.strides, self.padding)


class AvgPool(nn.Module):
    """Average pooling over the spatial axes of NHWC images (see `ops.avg_pool`)."""

    window: Any = 2
    strides: Any = None
    padding: Any = "VALID"
    count_include_pad: bool = True

    @nn.compact
    def __call__(self, x):
        return ops.avg_pool(x, self.window, self.strides, self.padding, self.count_include_pad)
