"""BatchNorm's per-channel reductions as native primitives.

Two reductions over every axis of channels-last images but the channels
(and, under vmap, the mapped axis in front), each one pass over float32
memory with double accumulators (csrc/norm.cc):

    stats_p(x, shift)          -> (sum(x - shift), sum((x - shift)^2))
    grad_stats_p(x, dy, mean)  -> (sum(dy), sum(dy * (x - mean)))

They are what XLA:CPU runs slowest in a BatchNorm step (a tree of
reduce-windows, benchmarks/ANALYSIS.md); the elementwise rest is left to
XLA, which fuses it. `jaxcnn.ops.normalization.batch_norm` builds the
training-mode BatchNorm and its gradient from them. Over a Mesh each device
reduces its slice of the batch and the partial sums are added (`psum`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import batching

from jaxcnn.ops.native import lowering

stats_p = Primitive("jaxcnn_bn_stats")
grad_stats_p = Primitive("jaxcnn_bn_grad_stats")
for _prim in (stats_p, grad_stats_p):
    _prim.multiple_results = True


def _sums_shape(x, group_dims):
    return (*x.shape[:group_dims], x.shape[-1])


def _abstract(x, *others, group_dims):
    out = jax.core.ShapedArray(_sums_shape(x, group_dims), jnp.float32)
    return out, out


def _call(prim):
    def call(*args, group_dims):
        out = jax.ShapeDtypeStruct(_sums_shape(args[0], group_dims), jnp.float32)
        return jax.ffi.ffi_call(prim.name, [out, out])(*args, group_dims=np.int64(group_dims))  # a list, as partition.py returns
    return call


def _batching(prim):
    def rule(args, dims, *, group_dims):
        # The mapped axis becomes one more group axis in front; per-channel operands follow it.
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        moved = [jnp.broadcast_to(a, (size, *a.shape)) if d is None else jnp.moveaxis(a, d, 0)
                 for a, d in zip(args, dims)]
        return prim.bind(*moved, group_dims=group_dims + 1), (0, 0)
    return rule


for _prim, _images in ((stats_p, (True, False)), (grad_stats_p, (True, True, False))):
    _prim.def_impl(lambda *args, _prim=_prim, **params: jax.jit(functools.partial(_prim.bind, **params))(*args))
    _prim.def_abstract_eval(_abstract)
    # Images first, per-channel values replicated; the sums add over the batch. Under vmap (group
    # axes in front) the batch is not axis 0: such a call runs on the gathered batch.
    lowering.register(_prim, _call(_prim), in_batched=_images, sums_batch=True,
                      partitioned=lambda group_dims: group_dims == 0)
    batching.primitive_batchers[_prim] = _batching(_prim)


def stats(x, shift):
    """(sum(x - shift), sum((x - shift)^2)) per channel over every other axis of x. float32."""
    return stats_p.bind(x, shift, group_dims=0)


def grad_stats(x, dy, mean):
    """(sum(dy), sum(dy * (x - mean))) per channel over every other axis. float32."""
    return grad_stats_p.bind(x, dy, mean, group_dims=0)
