"""Data parallelism for the custom calls: under `jit` over a Mesh each device
convolves its own slice of the batch.

XLA's SPMD partitioner knows nothing of a custom call and would gather the
whole batch onto every device. `jax.experimental.custom_partitioning` tells it
how: the images' batch axis keeps its sharding, everything else is
replicated, and the weight gradient (a sum over the batch) adds the devices'
partial sums with a `psum`. Outside an SPMD program (one device, `pmap`) the
call is lowered as it is.
"""

from __future__ import annotations

import math

from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

# Shardy's view: only the batch factor `n` may be sharded.
_REPLICATED_FACTORS = ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
_PASS_BATCH = "n a b c, d e f g -> n h i j"  # (images, kernel) -> images
_SUM_BATCH = "n a b c, n d e f -> g h i j"   # (images, images) -> kernel


def _batch_axes(sharding, batch: int) -> tuple:
    """The mesh axes that shard axis 0, if they split `batch` evenly; else ()."""
    if not isinstance(sharding, NamedSharding) or not sharding.spec or sharding.spec[0] is None:
        return ()
    first = sharding.spec[0]
    axes = tuple(first) if isinstance(first, tuple) else (first,)
    if batch % math.prod(sharding.mesh.shape[a] for a in axes):
        return ()
    return axes


def _shardings(mesh, axes):
    """(batch-sharded images, replicated) on `mesh`."""
    return NamedSharding(mesh, P(axes or None, None, None, None)), NamedSharding(mesh, P())


def batch_parallel(call, *, sums_batch: bool):
    """`call(a, b)` partitioned over the batch of its image operands.

    `sums_batch=False`: a is images, b a kernel, the result images (forward,
    input gradient). True: a and b are images, the result a kernel summed over
    the batch (weight gradient).
    """
    f = custom_partitioning(call)

    def axes_of(arg_shapes):
        return _batch_axes(arg_shapes[0].sharding, arg_shapes[0].shape[0])

    def partition(mesh, arg_shapes, result_shape):
        axes = axes_of(arg_shapes)
        images, replicated = _shardings(mesh, axes)
        if not sums_batch:
            return mesh, call, images, (images, replicated)

        def summed(a, b):
            out = call(a, b)
            return lax.psum(out, axes) if axes else out

        return mesh, summed, replicated, (images, images)

    def infer(mesh, arg_shapes, result_shape):
        images, replicated = _shardings(mesh, axes_of(arg_shapes))
        return replicated if sums_batch else images

    def propagate(mesh, user_shape):
        if sums_batch:
            return NamedSharding(mesh, P())
        return _shardings(mesh, _batch_axes(user_shape.sharding, user_shape.shape[0]))[0]

    f.def_partition(partition, propagate_user_sharding=propagate, infer_sharding_from_operands=infer,
                    sharding_rule=_SUM_BATCH if sums_batch else _PASS_BATCH,
                    reduction_factors=("n",) if sums_batch else (),
                    need_replication_factors=_REPLICATED_FACTORS)
    return f
