"""Max and average pooling over NHWC images as native primitives
(csrc/pool.cc), overlapping windows and padding included.

    max_p(x)                  -> (y, index)   index: int8, each window's first maximum
    max_select_p(t, index)    -> t at each window's maximum (the tangent of y)
    max_scatter_p(g, index)   -> g sent back to each window's maximum (its transpose)
    avg_p(x)                  -> the mean of each window
    avg_scatter_p(g)          -> g spread evenly back over each window (avg_p's transpose)

max_select_p and max_scatter_p are each other's transposes, as are avg_p and
avg_scatter_p, so `jvp`, `grad` and derivatives of any order stay on the
native kernels. Under vmap the mapped axis folds into the batch; over a Mesh
each device pools its own slice of the batch.

The maximum of a window is its first maximum in row-major order, what
lax.reduce_window's gradient picks on ties; a NaN counts as larger than any
number (the window's value is NaN, as lax.max gives, and its gradient goes
to its first NaN). Padding counts as -inf for the maximum and as zeros for
the average.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from jaxcnn.ops.native import lowering

Pair = tuple[int, int]
MAX_WINDOW = 127  # the window offset is stored in an int8


@dataclasses.dataclass(frozen=True)
class Window:
    """A pooling window: size, stride, explicit ((top, bottom), (left, right)) padding, and for
    the average whether padding counts in the divisor."""

    size: Pair
    stride: Pair
    pads: tuple[Pair, Pair]
    count_include_pad: bool = True

    def params(self) -> np.ndarray:
        (top, bottom), (left, right) = self.pads
        return np.array([*self.size, *self.stride, top, bottom, left, right, int(self.count_include_pad)],
                        np.int64)

    def out_shape(self, shape) -> tuple[int, ...]:
        n, h, w, c = shape
        hw = tuple((size + lo + hi - k) // s + 1 for size, k, s, (lo, hi)
                   in zip((h, w), self.size, self.stride, self.pads))
        return (n, *hw, c)


max_p = Primitive("jaxcnn_max_pool_fwd")
max_p.multiple_results = True
max_select_p = Primitive("jaxcnn_max_pool_select")
max_scatter_p = Primitive("jaxcnn_max_pool_bwd")
avg_p = Primitive("jaxcnn_avg_pool_fwd")
avg_scatter_p = Primitive("jaxcnn_avg_pool_bwd")

# Each primitive's result shapes from its operands: pooled (`window.out_shape`) or back at the
# input's height and width (`in_hw`).
_OUT = {
    max_p: lambda x, *, window: [(window.out_shape(x.shape), x.dtype), (window.out_shape(x.shape), np.int8)],
    max_select_p: lambda t, index, *, window: [(index.shape, t.dtype)],
    max_scatter_p: lambda g, index, *, window, in_hw: [((g.shape[0], *in_hw, g.shape[3]), g.dtype)],
    avg_p: lambda x, *, window: [(window.out_shape(x.shape), x.dtype)],
    avg_scatter_p: lambda g, *, window, in_hw: [((g.shape[0], *in_hw, g.shape[3]), g.dtype)],
}
# The custom call behind each: max_select_p is the forward kernel's gather with a given index, run
# by XLA (it only ever runs for forward-mode derivatives).
_TARGET = {max_p: "jaxcnn_max_pool_fwd", max_scatter_p: "jaxcnn_max_pool_bwd",
           avg_p: "jaxcnn_avg_pool_fwd", avg_scatter_p: "jaxcnn_avg_pool_bwd"}


def _abstract(prim):
    def rule(*args, **params):
        outs = [jax.core.ShapedArray(s, d) for s, d in _OUT[prim](*args, **params)]
        return outs if prim.multiple_results else outs[0]
    return rule


def _call(prim):
    def call(*args, **params):
        outs = [jax.ShapeDtypeStruct(s, d) for s, d in _OUT[prim](*args, **params)]
        result = jax.ffi.ffi_call(_TARGET[prim], outs if prim.multiple_results else outs[0])
        return result(*args, params=params["window"].params())
    return call


def _batching(prim):
    def rule(args, dims, **params):
        # Fold the mapped axis into the batch axis of every operand (all are images).
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        moved = [jnp.broadcast_to(a, (size, *a.shape)) if d is None else jnp.moveaxis(a, d, 0) for a, d in zip(args, dims)]
        out = prim.bind(*[m.reshape(-1, *m.shape[2:]) for m in moved], **params)
        unfold = lambda o: o.reshape(size, -1, *o.shape[1:])
        return ([unfold(o) for o in out], [0] * len(out)) if prim.multiple_results else (unfold(out), 0)
    return rule


def _select_xla(t, index, *, window):
    """t at each window's maximum: the windows' patches of t indexed by `index` (XLA)."""
    n, h, w, c = t.shape
    (top, bottom), (left, right) = window.pads
    padded = jnp.pad(t, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw = window.size
    sh, sw = window.stride
    oh, ow = index.shape[1:3]
    rows = jnp.arange(oh)[:, None] * sh + jnp.arange(kh)[None, :]   # (OH, KH)
    cols = jnp.arange(ow)[:, None] * sw + jnp.arange(kw)[None, :]   # (OW, KW)
    i, j = index.astype(jnp.int32) // kw, index.astype(jnp.int32) % kw
    r = jnp.take_along_axis(jnp.broadcast_to(rows[None, :, None, None, :], (n, oh, ow, c, kh)),
                            i[..., None], axis=-1)[..., 0]
    q = jnp.take_along_axis(jnp.broadcast_to(cols[None, None, :, None, :], (n, oh, ow, c, kw)),
                            j[..., None], axis=-1)[..., 0]
    return padded[jnp.arange(n)[:, None, None, None], r, q, jnp.arange(c)]


for _prim in (max_p, max_select_p, max_scatter_p, avg_p, avg_scatter_p):
    _prim.def_abstract_eval(_abstract(_prim))
    batching.primitive_batchers[_prim] = _batching(_prim)
    if _prim is max_select_p:
        _prim.def_impl(_select_xla)
        from jax.interpreters import mlir
        mlir.register_lowering(_prim, mlir.lower_fun(_select_xla, multiple_results=False))
        continue
    _prim.def_impl(lambda *args, _prim=_prim, **params: jax.jit(functools.partial(_prim.bind, **params))(*args))
    lowering.register(_prim, _call(_prim), in_batched=(True,) * (2 if _prim is max_scatter_p else 1))


# Derivatives: max_p's tangent is the input's tangent at each window's maximum (max_select_p), a
# linear map whose transpose is max_scatter_p; avg_p is linear, with avg_scatter_p its transpose.

def _max_jvp(primals, tangents, *, window):
    (x,), (t,) = primals, tangents
    y, index = max_p.bind(x, window=window)
    t_y = _zero(y) if type(t) is ad.Zero else max_select_p.bind(t, index, window=window)
    return (y, index), (t_y, _zero(index))


def _zero(primal):
    return ad.Zero(jax.typeof(primal).to_tangent_aval())


ad.primitive_jvps[max_p] = _max_jvp


def _in_hw(aval):
    return tuple(aval.shape[1:3])


def _linear_in_first(prim, transpose):
    """prim(t, index, ...) is linear in t (index is an integer constant): its tangent is itself
    applied to t's tangent, its transpose `transpose(ct, index, aval of t, **params)`."""
    ad.defjvp(prim, lambda g, t, index, **params: prim.bind(g, index, **params), None)

    def rule(ct, t, index, **params):
        if type(ct) is ad.Zero:
            return [ad.Zero(t.aval), None]
        return [transpose(ct, index, t.aval, **params), None]

    ad.primitive_transposes[prim] = rule


_linear_in_first(max_select_p, lambda ct, index, aval, *, window: max_scatter_p.bind(
    ct, index, window=window, in_hw=_in_hw(aval)))
_linear_in_first(max_scatter_p, lambda ct, index, aval, *, window, in_hw: max_select_p.bind(
    ct, index, window=window))
ad.deflinear2(avg_p, lambda ct, x, *, window: [avg_scatter_p.bind(ct, window=window, in_hw=_in_hw(x.aval))])
ad.deflinear2(avg_scatter_p, lambda ct, g, *, window, in_hw: [avg_p.bind(ct, window=window)])


def max_pool(x, window: Window):
    """Max pooling of float32 NHWC images on the native kernels."""
    return max_p.bind(x, window=window)[0]


def avg_pool(x, window: Window):
    """Average pooling of float32 NHWC images on the native kernels."""
    return avg_p.bind(x, window=window)
