"""Which examples make each batch, and how a host batch is split onto devices.

The order of the examples is a pure function of (seed, step): the batch of
step s is a slice of the permutation of epoch s // steps_per_epoch. A run that
stops and resumes at step s therefore sees exactly the batches it would have
seen, and every process of a multi-host run knows the whole global batch and
takes its own slice.
"""

from __future__ import annotations

import numpy as np


def check_divisible(global_batch: int, num_devices: int, what: str = "batch_size") -> None:
    """Refuse a global batch that does not split evenly over the devices."""
    if not isinstance(global_batch, (int, np.integer)) or isinstance(global_batch, bool) or global_batch <= 0:
        raise ValueError(f"{what} must be a positive int, got {global_batch!r}")
    if global_batch % num_devices:
        lo = global_batch - global_batch % num_devices
        raise ValueError(
            f"{what} {global_batch} is not divisible by the {num_devices} devices; "
            f"use a multiple of {num_devices} (e.g. {max(lo, num_devices)} or {lo + num_devices})."
        )


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def batch_indices(seed: int, step: int, n: int, global_batch: int) -> np.ndarray:
    """Indices into a split of `n` examples for the global batch of `step`
    (epochs of n // global_batch batches, each a fresh permutation; the remainder is dropped)."""
    if global_batch > n:
        raise ValueError(f"batch_size {global_batch} is larger than the dataset ({n} examples); lower it.")
    per_epoch = n // global_batch
    epoch, i = divmod(int(step), per_epoch)
    return epoch_permutation(seed, epoch, n)[i * global_batch:(i + 1) * global_batch]


def process_slice(global_batch: int, process_index: int, process_count: int) -> slice:
    """The part of the global batch that process `process_index` loads."""
    check_divisible(global_batch, process_count, "batch_size (per process)")
    local = global_batch // process_count
    return slice(process_index * local, (process_index + 1) * local)


def split_for_devices(batch, num_devices: int):
    """Reshape every array of a host batch (B, ...) to (num_devices, B / num_devices, ...), for pmap."""
    import jax

    def split(x):
        check_divisible(x.shape[0], num_devices)
        return x.reshape((num_devices, x.shape[0] // num_devices) + x.shape[1:])

    return jax.tree_util.tree_map(split, batch)
