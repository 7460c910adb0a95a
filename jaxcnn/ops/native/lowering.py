"""How a native primitive becomes a custom call: `jax.ffi.ffi_call` on its
target, partitioned over the batch when the program is partitioned over a
Mesh (`jaxcnn.ops.native.partition`), lowered as it is on one device, under
`pmap` or in a fully manual shard_map."""

from __future__ import annotations

from jax.interpreters import mlir


def register(prim, call, *, in_batched, sums_batch=False, partitioned=None):
    """Lower `prim` with `call(*args, **params)` (which makes the ffi_call).

    Over a Mesh the call is partitioned over the batch (`partition.batch_parallel`): `in_batched` says
    which operands are images (their axis 0 is the batch) and which are replicated; `sums_batch`
    whether the results sum over the batch. `partitioned(**params) -> bool` says whether a binding may
    be partitioned at all (default: always; otherwise it runs on the gathered batch).
    """
    from jaxcnn.ops.native.partition import batch_parallel

    def lower(ctx, *args, **params):
        context = ctx.module_context.axis_context
        spmd = getattr(context, "num_devices", 1) > 1 and getattr(context, "device_assignment", None) is not None
        def fn(*args):  # positional only: custom_partitioning resolves no keyword arguments
            return call(*args, **params)

        if spmd and (partitioned is None or partitioned(**params)):
            avals = ctx.avals_in
            fn = batch_parallel(fn, in_ranks=[a.ndim for a in avals], in_batched=in_batched,
                                out_ranks=[a.ndim for a in ctx.avals_out], sums_batch=sums_batch)
        return mlir.lower_fun(fn, multiple_results=prim.multiple_results)(ctx, *args)

    # Not cacheable, and lowered knowing the devices: a cached lowering would hide the device
    # assignment that custom_partitioning needs. (Without the registry below, a Mesh program still
    # computes the right values, with the whole batch gathered onto every device.)
    mlir.register_lowering(prim, lower, cacheable=False)
    _needs_devices(prim)


def _needs_devices(prim) -> None:
    """Ask JAX to lower `prim` knowing the device assignment (a private registry,
    the one custom_partitioning itself is in)."""
    try:
        from jax._src import dispatch
        dispatch.prim_requires_devices_during_lowering.add(prim)
    except (ImportError, AttributeError):
        pass
