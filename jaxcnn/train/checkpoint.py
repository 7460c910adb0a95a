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
            item_handlers=ocp.StandardCheckpointHandler(),  # known before any save, so metadata can be read
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False,
                                               cleanup_tmp_directories=True),  # remove saves cut by a crash
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
        self._check_metadata(step, like, path)
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

    def _check_metadata(self, step, like, path) -> None:
        """Compare the saved tree's keys and shapes with `like` before reading any array, so a checkpoint of
        another architecture is named as such (an unreadable one is left to restore to report)."""
        try:
            meta = self.manager.item_metadata(step)
        except Exception:
            return
        tree = getattr(meta, "tree", meta)
        is_leaf = lambda x: hasattr(x, "shape")  # noqa: E731
        saved = {_key(k): v for k, v in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]}
        want = {_key(k): v for k, v in jax.tree_util.tree_flatten_with_path(like)[0]}
        if not saved or not all(is_leaf(v) for v in saved.values()):
            return
        if set(saved) != set(want):
            only_ckpt, only_model = sorted(set(saved) - set(want)), sorted(set(want) - set(saved))
            raise CheckpointError(
                f"checkpoint {path} holds a different model or optimizer state (only in the checkpoint: "
                f"{', '.join(only_ckpt[:3]) or '-'}; only in the model: {', '.join(only_model[:3]) or '-'}); use a new --workdir for a different "
                "architecture.")
        for key, leaf in want.items():
            if tuple(saved[key].shape) != tuple(np.shape(leaf)):
                raise CheckpointError(f"checkpoint {path} has an array of shape {tuple(saved[key].shape)} at {key} "
                                      f"where the model has {tuple(np.shape(leaf))}; use a new --workdir for a "
                                      "different architecture.")

    def close(self) -> None:
        self.manager.close()


def _key(path) -> str:
    """'opt_state/0/mu/conv1/kernel': a key path with dict keys, attribute names and indices alike
    (orbax saves a namedtuple's fields as dict keys)."""
    return "/".join(str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path)


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
