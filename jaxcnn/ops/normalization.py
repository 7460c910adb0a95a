"""Local response normalisation (Krizhevsky et al. 2012, section 3.3) and
batch normalisation (Ioffe and Szegedy 2015) in training mode."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn._validation import as_float, as_int, check_array
from jaxcnn.ops import native
from jaxcnn.ops.conv import check_image


def local_response_norm(x, *, size: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75):
    """b[c] = a[c] / (k + alpha * sum_{c' = c - size//2}^{c + size//2} a[c']^2) ** beta.

    x: NHWC; the sum runs over `size` neighbouring channels, clipped at the ends.
    Defaults are AlexNet's (k=2, n=5, alpha=1e-4, beta=0.75). As in the paper,
    alpha multiplies the sum itself; Caffe and PyTorch divide alpha by `size`
    (pass alpha=their_alpha/size to match them).
    """
    check_image(x)
    size = as_int(size, "local_response_norm size", minimum=1, example=5)
    k = as_float(k, "local_response_norm k", example=2.0)
    alpha = as_float(alpha, "local_response_norm alpha", example=1e-4)
    beta = as_float(beta, "local_response_norm beta", example=0.75)
    return x / jnp.power(k + alpha * channel_square_sum(x, size), beta)


def channel_square_sum(x, size: int):
    """S[c] = sum_{c' = c - size//2}^{c + size//2} x[c']^2 over the channels of NHWC `x`, clipped at the ends:
    the data term of local_response_norm's denominator (before alpha)."""
    half = size // 2
    # A numpy init value keeps reduce_window differentiable under jit.
    return lax.reduce_window(jnp.square(x), np.array(0, x.dtype), lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                             ((0, 0), (0, 0), (0, 0), (half, size - 1 - half)))


def batch_norm(x, scale, bias, *, shift=None, epsilon: float = 1e-5, axis_name=None, axis_index_groups=None,
               dtype=None):
    """Training-mode batch normalisation over every axis of channels-last `x` but the last.

    Returns (y, mean, var): the batch's per-channel mean and (biased) variance, and
    y = (x - mean) * scale / sqrt(var + epsilon) + bias, in `dtype` (default: the result type of x,
    scale and bias). The statistics are computed in float32 as E[x^2] - E[x]^2, Flax's BatchNorm's
    fast variance. With `axis_name` (a pmap / shard_map axis) they are those of the whole batch over
    that axis (synchronised BatchNorm); `axis_index_groups` as for lax.psum.

    On the CPU a float32 BatchNorm reduces on the native kernels (`jaxcnn.ops.native.norm`: one pass
    for the statistics, one for both reductions of the gradient) and leaves the elementwise rest to
    XLA; `shift` (the running mean, say; it gets no gradient) is subtracted before the squares are
    summed there, which keeps the variance from cancelling when the mean is large against the
    spread. Elsewhere, with JAXCNN_NATIVE_BN=0, or for other dtypes, it is Flax's computation.

    x: (..., C) float; scale, bias: (C,).
    """
    check_array(x, "x", kind="float", layout="(channels last)")
    if x.ndim < 2:
        raise ValueError(f"batch_norm needs x of rank >= 2 (..., C), got shape {x.shape}; "
                         "a single feature vector is x[None].")
    c = x.shape[-1]
    for name, v in (("scale", scale), ("bias", bias)):
        if getattr(v, "shape", None) != (c,):
            raise ValueError(f"batch_norm {name} must have shape ({c},) for x of shape {x.shape}, "
                             f"got {getattr(v, 'shape', None)}.")
    out_dtype = jnp.dtype(dtype) if dtype is not None else jnp.result_type(x, scale, bias)
    shift = jnp.zeros((c,), jnp.float32) if shift is None else lax.stop_gradient(jnp.asarray(shift, jnp.float32))
    xla = functools.partial(_batch_norm_xla, epsilon=epsilon, axis_name=axis_name,
                            axis_index_groups=axis_index_groups, dtype=out_dtype)
    if x.ndim < 2 or out_dtype != jnp.float32 or not native.enabled("batch_norm", x.dtype) \
            or scale.dtype != jnp.float32 or bias.dtype != jnp.float32:
        return xla(x, scale, bias, shift)
    groups = None if axis_index_groups is None else tuple(map(tuple, axis_index_groups))
    return lax.platform_dependent(x, scale, bias, shift, cpu=_batch_norm_native(float(epsilon), axis_name, groups),
                                  default=xla)


def _batch_norm_xla(x, scale, bias, shift, *, epsilon, axis_name, axis_index_groups, dtype):
    """Flax's BatchNorm in training mode (fast variance, statistics in float32)."""
    del shift
    axes = tuple(range(x.ndim - 1))
    x32 = jnp.asarray(x, jnp.float32)
    mean, mean2 = jnp.mean(x32, axes), jnp.mean(jnp.square(x32), axes)
    if axis_name is not None:
        mean, mean2 = jnp.split(lax.pmean(jnp.concatenate([mean, mean2]), axis_name,
                                          axis_index_groups=axis_index_groups), 2)
    var = jnp.maximum(0.0, mean2 - jnp.square(mean))
    y = (x - mean) * (lax.rsqrt(var + epsilon) * scale) + bias
    return jnp.asarray(y, dtype), mean, var


@functools.lru_cache(maxsize=None)
def _batch_norm_native(epsilon: float, axis_name, axis_index_groups):
    """The float32 training-mode BatchNorm on the native reductions, with its gradient written out:

        dx = a * (dy - sum(dy) / M - (x - mean) / (var + eps) * sum(dy * (x - mean)) / M),  a = scale / sqrt(var + eps)

    (plus the terms of the mean's and variance's own cotangents), the sums over the whole batch
    (psum over `axis_name`); the scale's and bias's gradients are this device's sums, as autodiff of
    Flax's BatchNorm gives them."""
    from jaxcnn.ops.native import norm

    def total(values):
        if axis_name is None:
            return values
        return lax.psum(values, axis_name, axis_index_groups=axis_index_groups)

    def forward(x, scale, bias, shift):
        s1, s2 = norm.stats(x, shift)
        s1, s2, count = total((s1, s2, jnp.float32(x.size // x.shape[-1])))
        d = s1 / count
        mean = shift + d
        var = jnp.maximum(0.0, s2 / count - jnp.square(d))
        inv = lax.rsqrt(var + epsilon)
        y = (x - mean) * (inv * scale) + bias
        return (y, mean, var), (x, scale, mean, inv, count)

    def backward(res, cotangents):
        x, scale, mean, inv, count = res
        dy, dmean, dvar = cotangents
        sdy, sdyx = norm.grad_stats(x, dy, mean)
        all_sdy, all_sdyx, all_dmean, all_dvar = total((sdy, sdyx, dmean, dvar))
        a = scale * inv
        dx = (a * dy - (a * all_sdy - all_dmean) / count
              - (x - mean) * ((a * jnp.square(inv) * all_sdyx - 2.0 * all_dvar) / count))
        return dx, sdyx * inv, sdy, jnp.zeros_like(mean)

    @jax.custom_vjp
    def batch_norm_native(x, scale, bias, shift):
        return forward(x, scale, bias, shift)[0]

    batch_norm_native.defvjp(forward, backward)
    return batch_norm_native
