"""Checkpoints with orbax: atomic (written to a temporary directory, renamed
when complete, so a half-written checkpoint is never read), the last N kept,
the latest restored. What is saved is the TrainState's arrays as numpy
(params, batch_stats, opt_state, step): no pickles, and a checkpoint written
under one parallel mode resumes under another."""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


class Checkpointer:
    def __init__(self, directory: str, keep: int = 3):
        self.directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False),
        )

    def latest_step(self):
        return self.manager.latest_step()

    def save(self, step: int, arrays: dict) -> None:
        """Save a host pytree (numpy leaves) as step `step`; blocks until it is complete on disk."""
        self.manager.save(int(step), args=ocp.args.StandardSave(arrays), force=True)
        self.manager.wait_until_finished()

    def restore(self, like: dict, step=None) -> dict:
        """The checkpoint of `step` (default: latest) with the structure, shapes and dtypes of `like` (numpy)."""
        step = self.latest_step() if step is None else step
        abstract = jax.tree_util.tree_map(lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), like)
        path = os.path.join(self.directory, str(step))
        try:
            restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # orbax raises many types for unreadable or mismatched trees
            msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"cannot restore checkpoint {path} ({type(e).__name__}: {msg}); it is corrupt or from a different "
                f"model/optimizer. Delete it (rm -r {path}) to resume from an earlier one, or use a new --workdir."
            ) from None
        _check_like(restored, like, path)
        return jax.tree_util.tree_map(np.asarray, restored)

    def close(self) -> None:
        self.manager.close()


def _check_like(restored, like, path) -> None:
    got = jax.tree_util.tree_structure(restored)
    want = jax.tree_util.tree_structure(like)
    if got != want:
        raise CheckpointError(f"checkpoint {path} holds a different model or optimizer state; "
                              "use a new --workdir for a different architecture.")
    for a, b in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(like)):
        if np.shape(a) != np.shape(b):
            raise CheckpointError(f"checkpoint {path} has an array of shape {np.shape(a)} where the model has "
                                  f"{np.shape(b)}; use a new --workdir for a different architecture.")
