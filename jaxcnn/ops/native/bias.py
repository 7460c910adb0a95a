"""A per-channel bias added to channels-last activations, whose gradient (the
sum of dy over every axis but the channels) runs natively on the CPU.

XLA:CPU reduces dy over N x H x W as a tree of reduce-windows, as it does
BatchNorm's statistics (benchmarks/ANALYSIS.md); for VGG-11's eight
convolutions at 64x64, batch 32, the bias gradients were 4.5% of the train
step. The sum runs on BatchNorm's native reduction (`jaxcnn.ops.native.norm`,
one pass over float32 memory, double accumulators). Two linear primitives,
each the other's transpose, so `grad`, `jvp` and derivatives of any order keep
it:

    B(b) = b broadcast to the activations' shape     b  <- S(ct)
    S(y) = sum of y over every axis but the last      y  <- B(ct)

Under `vmap` the mapped axis is one more group axis of both (kept apart by
the reduction, as BatchNorm's is); over a Mesh each device sums its slice of
the batch and the sums are added.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxcnn.ops.native import lowering, norm

broadcast_p = Primitive("jaxcnn_channel_broadcast")
sum_p = Primitive("jaxcnn_channel_sum")
# Both carry `group_dims`: leading axes kept apart (a vmapped axis), as BatchNorm's reduction does. The bias
# has shape (*shape[:group_dims], C).


def _dims(shape, group_dims):
    return (*range(group_dims), len(shape) - 1)


def _xla_broadcast(b, *, shape, group_dims):
    return lax.broadcast_in_dim(b, shape, _dims(shape, group_dims))


def _native_sum(y, *, group_dims):
    shift = jnp.zeros((*y.shape[:group_dims], y.shape[-1]), y.dtype)
    return norm.stats_p.bind(y, shift, group_dims=group_dims)[0]


broadcast_p.def_abstract_eval(lambda b, *, shape, group_dims: jax.core.ShapedArray(shape, b.dtype))
broadcast_p.def_impl(lambda b, **params: _xla_broadcast(b, **params))
mlir.register_lowering(broadcast_p, mlir.lower_fun(_xla_broadcast, multiple_results=False))
sum_p.def_abstract_eval(lambda y, *, group_dims: jax.core.ShapedArray((*y.shape[:group_dims], y.shape[-1]), y.dtype))
sum_p.def_impl(lambda y, *, group_dims: jax.jit(lambda y: sum_p.bind(y, group_dims=group_dims))(y))
# The reduction's own lowering partitions it over a Mesh; it must be lowered knowing the devices, and so
# must this primitive around it.
mlir.register_lowering(sum_p, mlir.lower_fun(_native_sum, multiple_results=False), cacheable=False)
lowering._needs_devices(sum_p)


def _broadcast_t(ct, b, *, shape, group_dims):
    return [sum_p.bind(ct, group_dims=group_dims)]


def _sum_t(ct, y, *, group_dims):
    return [broadcast_p.bind(ct, shape=y.aval.shape, group_dims=group_dims)]


ad.deflinear2(broadcast_p, _broadcast_t)
ad.deflinear2(sum_p, _sum_t)


def _broadcast_batching(args, dims, *, shape, group_dims):
    (b,), (d,) = args, dims
    b = jnp.moveaxis(b, d, 0)  # the mapped axis becomes one more group axis in front
    return broadcast_p.bind(b, shape=(b.shape[0], *shape), group_dims=group_dims + 1), 0


def _sum_batching(args, dims, *, group_dims):
    (y,), (d,) = args, dims
    return sum_p.bind(jnp.moveaxis(y, d, 0), group_dims=group_dims + 1), 0


batching.primitive_batchers[broadcast_p] = _broadcast_batching
batching.primitive_batchers[sum_p] = _sum_batching


def add_bias(y, b):
    """y [..., C] + b [C], its bias gradient native on the CPU (float32; XLA's add elsewhere)."""
    return lax.platform_dependent(y, b, cpu=lambda y, b: y + broadcast_p.bind(b, shape=y.shape, group_dims=0),
                                  default=lambda y, b: y + b)


__all__ = ["add_bias"]
