"""Data parallelism for the custom calls: under `jit` over a Mesh each device
runs its kernel on its own slice of the batch.

XLA's SPMD partitioner knows nothing of a custom call and would gather the
whole batch onto every device. `jax.experimental.custom_partitioning` tells it
how: the images' batch axis keeps its sharding, everything else is
replicated, and a result that sums over the batch (a convolution's weight
gradient, BatchNorm's per-channel sums) adds the devices' partial sums with a
`psum`. Outside an SPMD program (one device, `pmap`) the call is lowered as it
is (`jaxcnn.ops.native.lowering`).
"""

from __future__ import annotations

import math
import string

from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P


def _batch_axes(sharding, batch: int) -> tuple:
    """The mesh axes that shard axis 0, if they split `batch` evenly; else ()."""
    if not isinstance(sharding, NamedSharding) or not sharding.spec or sharding.spec[0] is None:
        return ()
    first = sharding.spec[0]
    axes = tuple(first) if isinstance(first, tuple) else (first,)
    if batch % math.prod(sharding.mesh.shape[a] for a in axes):
        return ()
    return axes


def _rule(in_ranks, in_batched, out_ranks, sums_batch) -> tuple[str, tuple[str, ...]]:
    """Shardy's view of the call: the factor `n` (the batch) may be sharded, every other factor is
    replicated; results that sum over the batch do not carry `n`."""
    letters = iter(c for c in string.ascii_lowercase if c != "n")
    factors = []

    def operand(rank, batched):
        dims = (["n"] if batched else []) + [next(letters) for _ in range(rank - (1 if batched else 0))]
        factors.extend(d for d in dims if d != "n")
        return " ".join(dims) if dims else "()"

    ins = ", ".join(operand(r, b) for r, b in zip(in_ranks, in_batched))
    outs = ", ".join(operand(r, not sums_batch) for r in out_ranks)
    return f"{ins} -> {outs}", tuple(factors)


def batch_parallel(call, *, in_ranks, in_batched, out_ranks, sums_batch: bool):
    """`call(*args)` partitioned over the batch (axis 0) of its image operands.

    in_ranks / in_batched: each operand's rank and whether its axis 0 is the batch (images) or it is
    replicated (a kernel, per-channel values). sums_batch=False: every result is images, batched like
    the first operand; True: every result is summed over the batch (replicated).
    """
    f = custom_partitioning(call)
    single = len(out_ranks) == 1
    rule, factors = _rule(in_ranks, in_batched, out_ranks, sums_batch)

    def axes_of(arg_shapes):
        return _batch_axes(arg_shapes[0].sharding, arg_shapes[0].shape[0])

    def shardings(mesh, axes, ranks_batched):
        return tuple(NamedSharding(mesh, P(axes or None, *([None] * (r - 1)))) if b else NamedSharding(mesh, P())
                     for r, b in ranks_batched)

    def results(mesh, axes):
        out = list(shardings(mesh, axes, [(r, not sums_batch) for r in out_ranks]))
        return out[0] if single else out

    def partition(mesh, arg_shapes, result_shape):
        axes = axes_of(arg_shapes)
        args = shardings(mesh, axes, zip(in_ranks, in_batched))
        if not sums_batch or not axes:
            return mesh, call, results(mesh, axes), args

        def summed(*a):
            return lax.psum(call(*a), axes)

        return mesh, summed, results(mesh, axes), args

    def infer(mesh, arg_shapes, result_shape):
        return results(mesh, axes_of(arg_shapes))

    def propagate(mesh, user_shape):
        first = user_shape if single else user_shape[0]
        if sums_batch:
            return results(mesh, ())
        return results(mesh, _batch_axes(first.sharding, first.shape[0]))

    f.def_partition(partition, propagate_user_sharding=propagate, infer_sharding_from_operands=infer,
                    sharding_rule=rule, reduction_factors=("n",) if sums_batch else (),
                    need_replication_factors=factors)
    return f


__all__ = ["batch_parallel"]
