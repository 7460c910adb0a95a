"""Convolution as one matrix product (im2col), and a plainly written loop reference.

Images are NHWC and kernels HWIO. `im2col` copies every kernel-sized patch of
the (padded) image into one row of a matrix, so that a convolution becomes

    y = im2col(x, KH, KW) @ w.reshape(KH * KW * C, O)

the lowering Caffe used and the seed notes describe. Patches overlap, so the
column matrix holds about KH * KW / (S_h * S_w) copies of every input pixel:
it trades memory for one large, fast GEMM. `conv_reference` computes the same
sums with explicit loops, for teaching and as the reference in tests.
"""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from jaxcnn._validation import as_pair
from jaxcnn.ops.conv import IntOrPair, Padding, promote, check_conv_args, check_image, explicit_padding


def _im2col_geometry(x, kh, kw, stride, padding):
    check_image(x, kind="real")  # a rearrangement: integers are copied as they are
    kh, kw = as_pair((kh, kw), "kernel size")
    stride = as_pair(stride, "stride")
    pads = explicit_padding(padding, x.shape[1:3], (kh, kw), stride, (1, 1))
    out = []
    for size, k, s, (lo, hi), axis in zip(x.shape[1:3], (kh, kw), stride, pads, ("height", "width")):
        if k > size + lo + hi:
            raise ValueError(
                f"kernel {axis} {k} is larger than the padded input {axis} {size}+{lo}+{hi}={size + lo + hi} "
                f"(x {x.shape}); use a larger input, more padding or a smaller kernel."
            )
        out.append((size + lo + hi - k) // s + 1)
    return (kh, kw), stride, pads, tuple(out)


def im2col(x, kh: int, kw: int, *, stride: IntOrPair = 1, padding: Padding = "VALID"):
    """Every (kh, kw) patch of x as a row: (N, H, W, C) NHWC -> (N * OH * OW, kh * kw * C).

    Rows run over (n, i, j) in that order; each row holds its patch in
    (kh, kw, C) order, matching `w.reshape(kh * kw * C, O)` for an HWIO kernel.
    `stride` is an int or a pair; `padding` as in `cross_correlate` (zeros).
    """
    (kh, kw), (sh, sw), pads, (oh, ow) = _im2col_geometry(x, kh, kw, stride, padding)
    n, _, _, c = x.shape
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    # One strided slice per kernel offset (a, b): the pixel each output position sees there.
    cols = [xp[:, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw, :]
            for a in range(kh) for b in range(kw)]
    patches = jnp.stack(cols, axis=3)  # (N, OH, OW, kh*kw, C)
    return patches.reshape(n * oh * ow, kh * kw * c)


def conv_im2col(x, w, *, stride: IntOrPair = 1, padding: Padding = "VALID"):
    """Cross-correlation as one matrix product; equal to `cross_correlate(x, w, ...)`.

    x: NHWC; w: HWIO (KH, KW, C, O). Returns (N, OH, OW, O).
    """
    stride, _, _ = check_conv_args(x, w, stride=stride, padding=padding, dilation=1, groups=1)
    x, w = promote(x, w)
    kh, kw, c, o = w.shape
    cols = im2col(x, kh, kw, stride=stride, padding=padding)
    _, _, _, (oh, ow) = _im2col_geometry(x, kh, kw, stride, padding)
    return (cols @ w.reshape(kh * kw * c, o)).reshape(x.shape[0], oh, ow, o)


def conv_reference(x, w, *, stride: IntOrPair = 1, padding: Padding = "VALID",
                   dilation: IntOrPair = 1, groups: int = 1) -> np.ndarray:
    """Cross-correlation written out as loops in NumPy (float64 inside), for teaching and tests.

    y[n, i, j, o] = sum_{a, b, c} xpad[n, i*S + a*D, j*S + b*D, g*Cg + c] * w[a, b, c, o],
    where g = o // (O / groups) is the group of output channel o.
    x: NHWC, w: HWIO (KH, KW, C / groups, O). Same arguments as `cross_correlate`.
    Returns a NumPy array of the inputs' promoted dtype. Not jit-able: it is the slow,
    obviously correct version.
    """
    (sh, sw), ((top, bottom), (left, right)), (dh, dw) = check_conv_args(
        x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    dtype = np.result_type(np.asarray(x).dtype, np.asarray(w).dtype)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x.shape
    kh, kw, cg, o = w.shape
    og = o // groups
    xp = np.zeros((n, h + top + bottom, wd + left + right, c))
    xp[:, top:top + h, left:left + wd, :] = x
    oh = (xp.shape[1] - (dh * (kh - 1) + 1)) // sh + 1
    ow = (xp.shape[2] - (dw * (kw - 1) + 1)) // sw + 1
    y = np.zeros((n, oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    pixel = xp[:, i * sh + a * dh, j * sw + b * dw, :]  # (N, C)
                    for g in range(groups):
                        y[:, i, j, g * og:(g + 1) * og] += (
                            pixel[:, g * cg:(g + 1) * cg] @ w[a, b, :, g * og:(g + 1) * og])
    return y.astype(dtype)
