"""Pooling over the spatial axes of NHWC images.

Windows may overlap (AlexNet's 3x3 stride 2) or not (the 2x2 stride 2 of most
nets); `stride=None` means stride = window.

On the CPU, float32 max pooling and overlapping average pooling run on native
kernels forward and backward (`jaxcnn.ops.native.pool`; JAXCNN_NATIVE_POOL=0
turns them off), with the same values and the same gradients as
lax.reduce_window's, ties included: a window's gradient goes to its first
maximum in row-major order. Non-overlapping max pools over fewer than 32
channels take a reshape/argmax route and non-overlapping average pools
reduce_window, each faster there than the native kernel (the measurements are
at NATIVE_MAX_TILES_MIN_CHANNELS). Other platforms and dtypes keep
reduce_window.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn._validation import as_pair
from jaxcnn.ops import native
from jaxcnn.ops.conv import check_image, explicit_padding


def _window_args(x, window, stride, padding, what):
    check_image(x, kind="real" if what == "max_pool" else "float")  # a max is defined on integers too
    window = as_pair(window, f"{what} window")
    stride = window if stride is None else as_pair(stride, f"{what} stride")
    pads = explicit_padding(padding, x.shape[1:3], window, stride, (1, 1))
    for size, k, (lo, hi), axis in ((x.shape[1], window[0], pads[0], "height"), (x.shape[2], window[1], pads[1], "width")):
        if k > size + lo + hi:
            raise ValueError(
                f"{what} window {axis} {k} is larger than the padded input {axis} {size + lo + hi} "
                f"(x {x.shape}); use a smaller window or a larger input."
            )
    return (1, *window, 1), (1, *stride, 1), ((0, 0), *pads, (0, 0))


def max_pool(x, window, stride=None, padding="VALID"):
    """Max over each window. x: NHWC. Padding counts as -inf.

    The gradient goes to the first maximum of each window (row-major order), as
    lax.reduce_window's does. On the CPU the native kernel runs it, except non-overlapping
    windows without padding over fewer than 32 channels (LeNet-5's 2x2 stride 2), which take a
    reshape/argmax route, faster there, with the same values and gradients."""
    dims, strides, pads = _window_args(x, window, stride, padding, "max_pool")

    def generic(x):
        # Init values are numpy constants, not jnp arrays: under jit a jnp array is a
        # tracer, lax.reduce_window then falls back to its generic form, which has
        # no reverse-mode derivative.
        init = np.array(-np.inf if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min, x.dtype)
        return lax.reduce_window(x, init, lax.max, dims, strides, pads)

    tiles = strides == dims and all(p == (0, 0) for p in pads) and jnp.issubdtype(x.dtype, jnp.floating)
    if _native(x, dims) and not (tiles and x.shape[-1] < NATIVE_MAX_TILES_MIN_CHANNELS):
        window = _native_window(dims, strides, pads)
        return lax.platform_dependent(x, cpu=lambda x: native_pool().max_pool(x, window), default=generic)
    if not tiles:
        return generic(x)
    kh, kw = dims[1:3]
    h, w = (x.shape[1] // kh) * kh, (x.shape[2] // kw) * kw
    # XLA:CPU runs reduce_window's gradient (select_and_scatter) 3-4x slower than this reshape and
    # argmax; other backends keep reduce_window, which their libraries implement well.
    return lax.platform_dependent(x, cpu=lambda x: _max_over_tiles(x[:, :h, :w], (kh, kw)), default=generic)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_over_tiles(x, window):
    """Max over non-overlapping (kh, kw) tiles of x, whose height and width are multiples of them."""
    return _tile_max_and_index(x, window)[0]


def _tiles(x, window):
    """(N, H/kh, W/kw, C, kh*kw): each tile's values in row-major order."""
    (n, h, w, c), (kh, kw) = x.shape, window
    return x.reshape(n, h // kh, kh, w // kw, kw, c).transpose(0, 1, 3, 5, 2, 4).reshape(
        n, h // kh, w // kw, c, kh * kw)


def _tile_max_and_index(x, window):
    t = _tiles(x, window)
    index = jnp.argmax(t, axis=-1)  # the first maximum (NaN counts as the maximum, as in lax.max)
    return jnp.take_along_axis(t, index[..., None], axis=-1)[..., 0], index


@_max_over_tiles.defjvp
def _max_over_tiles_jvp(window, primals, tangents):
    # The tangent is the maximum's own, written as a masked sum: linear in the tangent, so reverse mode is its
    # transpose (a select into the tiles, no scatter) and forward mode and second order work too.
    (x,), (t,) = primals, tangents
    y, index = _tile_max_and_index(x, window)
    first = index[..., None] == jnp.arange(window[0] * window[1])
    return y, jnp.sum(jnp.where(first, _tiles(t, window), jnp.zeros((), t.dtype)), axis=-1)


def avg_pool(x, window, stride=None, padding="VALID", count_include_pad=True):
    """Mean over each window. x: NHWC.

    With padding, `count_include_pad=True` divides by the full window size (Caffe,
    PyTorch's default); False divides by the number of real pixels in the window.
    On the CPU overlapping windows run on the native kernel, non-overlapping ones as
    reduce_window (faster there).
    """
    dims, strides, pads = _window_args(x, window, stride, padding, "avg_pool")
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise TypeError(f"avg_pool count_include_pad must be True or False, got {count_include_pad!r}.")

    def generic(x):
        summed = lax.reduce_window(x, np.array(0, x.dtype), lax.add, dims, strides, pads)
        if count_include_pad:
            return summed / (dims[1] * dims[2])
        ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
        counts = lax.reduce_window(ones, np.array(0, x.dtype), lax.add, dims, strides, pads)
        return summed / counts

    if not (_native(x, dims) and _overlapping(dims, strides)):
        return generic(x)
    window = _native_window(dims, strides, pads, bool(count_include_pad))
    return lax.platform_dependent(x, cpu=lambda x: native_pool().avg_pool(x, window), default=generic)


def native_pool():
    """The native pooling module (imported when first used: it registers primitives)."""
    from jaxcnn.ops.native import pool

    return pool


# Where the native kernels pay (python -m benchmarks.pooling, forward + backward against reduce_window, 2-core
# CPU): non-overlapping max pools with fewer than 32 channels run 2.3-2.9x faster on the reshape/argmax route
# than on the native kernel (LeNet-5's 6 and 16 maps, any batch), with 32 or more the native kernel is 1.1-1.8x
# faster than that route; non-overlapping average pools run 1.2-2.7x faster as XLA's reduce_window than
# natively (all but the smallest shape tried, 8x10x10x64), while overlapping ones run 2.7x faster natively.
NATIVE_MAX_TILES_MIN_CHANNELS = 32


def _overlapping(dims, strides) -> bool:
    """Whether neighbouring windows share pixels along height or width."""
    return dims[1] > strides[1] or dims[2] > strides[2]


def _native(x, dims) -> bool:
    """Whether this pooling may take the native kernels on the CPU: float32, a window of at most
    127 elements (its offset is stored in an int8), the switch on and the extension there."""
    return dims[1] * dims[2] <= 127 and jnp.issubdtype(x.dtype, jnp.floating) and native.enabled("pool", x.dtype)


def _native_window(dims, strides, pads, count_include_pad=True):
    return native_pool().Window(tuple(dims[1:3]), tuple(strides[1:3]), (tuple(pads[1]), tuple(pads[2])),
                                count_include_pad)


def global_avg_pool(x, keepdims: bool = False):
    """Mean over height and width: NHWC -> (N, C), or (N, 1, 1, C) with keepdims."""
    check_image(x)
    if not isinstance(keepdims, (bool, np.bool_)):
        raise TypeError(f"global_avg_pool keepdims must be True or False, got {keepdims!r}.")
    return jnp.mean(x, axis=(1, 2), keepdims=keepdims)
