"""Max pooling that remembers where each maximum came from, and the unpooling
that puts values back there (SegNet, Badrinarayanan et al. 2017).

Indices are positions in the flattened H*W plane of each (image, channel):
index = row * W + col, where (H, W) is the input size of the pooling.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn._validation import as_int, as_pair, check_array
from jaxcnn.ops.conv import check_image, explicit_padding


def max_pool_with_argmax(x, window, stride=None, padding="VALID"):
    """Max pooling that also returns where each maximum was.

    Args:
      x: images, NHWC.
      window, stride: ints or pairs; stride=None means stride = window.
      padding: "VALID", "SAME", an int, a pair or ((top, bottom), (left, right)).
        Padding counts as -inf and is never chosen.

    Returns:
      (pooled, indices): both (N, OH, OW, C); indices are int32 positions in the
      flattened H*W plane of the *unpadded* input (row * W + col). Ties go to
      the first position in row-major window order. Differentiable in x.
    """
    check_image(x, kind="real")
    n, h, w, c = x.shape
    kh, kw = as_pair(window, "max_pool_with_argmax window")
    sh, sw = (kh, kw) if stride is None else as_pair(stride, "max_pool_with_argmax stride")
    (pt, pb), (pl, pr) = explicit_padding(padding, (h, w), (kh, kw), (sh, sw), (1, 1))
    hp, wp = h + pt + pb, w + pl + pr
    if kh > hp or kw > wp:
        raise ValueError(f"max_pool_with_argmax window {(kh, kw)} is larger than the padded input {(hp, wp)} "
                         f"(x {x.shape}); use a smaller window or a larger input.")
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    neg = jnp.array(-jnp.inf, x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo(x.dtype).min
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=neg)
    rows = jnp.arange(hp) - pt
    cols = jnp.arange(wp) - pl
    flat = (rows[:, None] * w + cols[None, :]).astype(jnp.int32)  # (hp, wp)
    vals, idxs = [], []
    for i in range(kh):
        for j in range(kw):
            sl = (slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw))
            vals.append(xp[:, sl[0], sl[1], :])
            idxs.append(flat[sl[0], sl[1]])
    vals = jnp.stack(vals, axis=-1)                       # (N, OH, OW, C, K)
    idxs = jnp.stack(idxs, axis=-1)                       # (OH, OW, K)
    best = jnp.argmax(vals, axis=-1)                      # (N, OH, OW, C)
    pooled = jnp.take_along_axis(vals, best[..., None], axis=-1)[..., 0]
    indices = jnp.take_along_axis(jnp.broadcast_to(idxs[None, :, :, None, :], vals.shape),
                                  best[..., None], axis=-1)[..., 0]
    return pooled, indices.astype(jnp.int32)


def max_unpool(y, indices, output_shape):
    """Place each value of `y` at its recorded position; zeros elsewhere.

    Args:
      y: pooled values, NHWC (N, OH, OW, C).
      indices: int positions in the flattened H*W plane, same shape as `y`
        (what `max_pool_with_argmax` returns).
      output_shape: (H, W) or (N, H, W, C) of the map before pooling.

    Returns:
      (N, H, W, C). Where overlapping windows chose the same position, the value
      is written once (they are equal). Differentiable in y.

    Indices outside 0 .. H*W-1 cannot be put anywhere. Concrete indices (called
    eagerly, outside jit) are checked: ValueError naming how many and the first.
    Under jit, where the indices are not known, they are dropped (nothing is
    written, as scatter's mode="drop"; a negative index is never wrapped to the
    end), and `jax.experimental.checkify.checkify(f, errors=checkify.index_checks)`
    turns them into an error:

        err, out = checkify.checkify(jax.jit(f), errors=checkify.index_checks)(y, idx); err.throw()
    """
    check_image(y, "y", kind="real")
    check_array(indices, "indices", kind="int")
    if tuple(indices.shape) != tuple(y.shape):
        raise ValueError(f"indices must have the shape of y {y.shape}, got {tuple(indices.shape)}")
    if isinstance(output_shape, (str, bytes)) or not hasattr(output_shape, "__iter__"):
        raise TypeError(f"output_shape must be (H, W) or (N, H, W, C) of ints, got {output_shape!r}")
    shape = tuple(as_int(d, "output_shape", minimum=1) for d in output_shape)
    if len(shape) == 4:
        if shape[0] != y.shape[0] or shape[3] != y.shape[3]:
            raise ValueError(f"output_shape {shape} does not match y {y.shape} in batch or channels")
        shape = shape[1:3]
    if len(shape) != 2:
        raise ValueError(f"output_shape must be (H, W) or (N, H, W, C), got {output_shape}")
    h, w = shape
    n, oh, ow, c = y.shape
    if not isinstance(indices, jax.core.Tracer):
        _check_positions(np.asarray(indices), h, w)
    vals = jnp.transpose(y, (0, 3, 1, 2)).reshape(n, c, oh * ow)
    idx = jnp.transpose(indices, (0, 3, 1, 2)).reshape(n, c, oh * ow)
    idx = jnp.where(idx < 0, h * w, idx)  # dropped like any position past the end (not wrapped around)
    out = jnp.zeros((n, c, h * w), y.dtype)
    bi = jnp.arange(n)[:, None, None]
    ci = jnp.arange(c)[None, :, None]
    out = out.at[bi, ci, idx].set(vals, mode="drop")
    return jnp.transpose(out.reshape(n, c, h, w), (0, 2, 3, 1))


def _check_positions(indices: np.ndarray, h: int, w: int) -> None:
    bad = (indices < 0) | (indices >= h * w)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"max_unpool: {int(bad.sum())} of {indices.size} indices are outside the {h}x{w} output "
                         f"(valid: 0..{h * w - 1} = row * {w} + col; first: {int(indices[first])} at {first}); pass "
                         "the indices max_pool_with_argmax returned for an input of this size.")
