"""Checkpoints with orbax: atomic (written to a temporary directory, renamed
when complete, so a half-written checkpoint is never read), the last N kept,
the latest restored. Each step holds two items:

* `state`: the TrainState's arrays as numpy (params, batch_stats, opt_state,
  step) — no pickles, and a checkpoint written under one parallel mode resumes
  under another;
* `extra`: JSON — what the run needs to continue exactly (the metrics of the
  steps since the last log line, the phase), a SHA-256 of every array and a
  SHA-256 of the rest of this JSON, both checked on restore: a damaged file is
  refused instead of silently resuming with other numbers or other metrics.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxcnn.train.errors import CheckpointError, tracebacks_asked


def digest(arrays) -> str:
    """SHA-256 over every leaf's key path, dtype, shape and bytes (host arrays), in key order (so a tree read
    back without a template, its named tuples as dicts, has the same digest)."""
    h = hashlib.sha256()
    leaves = sorted(((_key(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(arrays)[0]),
                    key=lambda kv: kv[0])
    for key, leaf in leaves:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def record_digest(extra: dict) -> str:
    """SHA-256 of the JSON of `extra` without its checksums (keys sorted, so the order on disk does not
    matter)."""
    rest = {k: v for k, v in extra.items() if k not in CHECKSUM_KEYS}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, allow_nan=True).encode()).hexdigest()


CHECKSUM_KEYS = ("checksum", "extra_checksum")
# What a checkpoint written before `extra_checksum` existed holds (its extra is accepted unchecked).
_UNCHECKED_EXTRA_KEYS = {"window", "phase", "checksum"}


_WRITE_LIMITS = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
                 errno.EFBIG: "File too large"}


def _write_limit(e: BaseException):
    """The errno (ENOSPC, EDQUOT or EFBIG) of a write that hit a limit somewhere in `e`'s chain, or None
    (tensorstore reports them as text inside a ValueError)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for code, text in _WRITE_LIMITS.items():
            if (isinstance(e, OSError) and e.errno == code) or text in str(e):
                return code
        e = e.__cause__ or e.__context__
    return None


def _no_space(e: BaseException) -> bool:
    return _write_limit(e) is not None


_THREAD_HOOK = {"hook": None}


def _drop_thread_write_limit_reports() -> None:
    """A full disk fails every writer thread of a save: the main thread's save raises the first failure (and
    `save` turns it into one CheckpointError line), while another writer thread may fail a moment later and
    print its own traceback through threading.excepthook. Such reports (a write limit in the chain) are
    dropped; every other thread exception reaches the previous hook. Installed by a save, once."""
    import threading

    if threading.excepthook is _THREAD_HOOK["hook"]:
        return
    previous = threading.excepthook

    def hook(args):
        if args.exc_value is None or _write_limit(args.exc_value) is None:
            previous(args)

    threading.excepthook = _THREAD_HOOK["hook"] = hook


class _QuietOrbax:
    """Within: orbax's absl ERROR logs (with tracebacks, from its writer threads) are not printed; what they
    report is raised to the caller as one CheckpointError line, or was harmless."""

    # Where a save cut by a full disk goes on reporting after it has raised: orbax's other writer threads log
    # at ERROR through absl, and their abandoned asyncio tasks log "Task exception was never retrieved" when
    # they are collected.
    LATE_REPORTERS = ("absl", "asyncio")

    def __enter__(self):
        import logging

        self.loggers = [logging.getLogger(name) for name in self.LATE_REPORTERS]
        self.levels = [logger.level for logger in self.loggers]
        for logger in self.loggers:
            logger.setLevel(logging.CRITICAL)
        return self

    def __exit__(self, kind, value, tb):
        # After a write limit the process is about to report the failure in one line and end, so those loggers
        # stay quiet from here on (JAXCNN_TRACEBACKS=1 keeps the tracebacks).
        if value is None or _write_limit(value) is None or tracebacks_asked():
            for logger, level in zip(self.loggers, self.levels):
                logger.setLevel(level)
        return False


def _disk_usage(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(root, f))
                total += max(st.st_size, st.st_blocks * 512)  # what the files take on the device
            except OSError:
                pass
    return total


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


class Checkpointer:
    def __init__(self, directory: str, keep: int = 3):
        self.directory = os.path.abspath(directory)
        with _QuietOrbax():  # a step whose _CHECKPOINT_METADATA is unreadable is logged, and read without it
            self.manager = ocp.CheckpointManager(
                self.directory,
                item_names=("state", "extra"),
                # Known before any save, so that metadata can be read before restoring.
                item_handlers={"state": ocp.StandardCheckpointHandler(), "extra": ocp.JsonCheckpointHandler()},
                options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                     enable_async_checkpointing=False,
                                                     cleanup_tmp_directories=True),  # remove saves cut by a crash
            )

    def latest_step(self):
        with _QuietOrbax():
            return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        with _QuietOrbax():
            return sorted(self.manager.all_steps())

    def save(self, step: int, arrays: dict, extra: dict | None = None) -> None:
        """Save a host pytree (numpy leaves) and a JSON-able `extra` as step `step`; blocks until it is complete
        on disk. A full disk is one line naming the directory and the size needed."""
        extra = {**(extra or {}), "checksum": digest(arrays)}
        extra["extra_checksum"] = record_digest(extra)
        _drop_thread_write_limit_reports()
        try:
            with _QuietOrbax():
                self.manager.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(arrays),
                                                                     extra=ocp.args.JsonSave(extra)), force=True)
                self.manager.wait_until_finished()
        except Exception as e:
            limit = _write_limit(e)
            if limit is not None:
                last = [s for s in self.all_steps() if s != step]
                size = sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(arrays))
                if last:  # what a whole checkpoint took on disk (metadata included) is the better estimate
                    size = max(size, _disk_usage(os.path.join(self.directory, str(last[-1]))))
                resume = f"it resumes from {'step ' + str(last[-1]) if last else 'the start'}"
                if limit == errno.EFBIG:
                    raise CheckpointError(
                        f"cannot write the checkpoint of step {step} in {self.directory}: a file would exceed the "
                        f"file size limit (ulimit -f; the checkpoint takes about {_human(size)}). Raise the limit "
                        f"and rerun the same command: {resume}.") from None
                what = "no space left" if limit == errno.ENOSPC else "the disk quota is exceeded"
                raise CheckpointError(
                    f"{what} on the device of {self.directory}: the checkpoint of step {step} needs about "
                    f"{_human(size)}. Free some space and rerun the same command: {resume}.") from None
            raise

    def restore(self, like: dict, step=None) -> tuple[dict, dict]:
        """(arrays, extra) of `step` (default: latest), the arrays with the structure, shapes and dtypes of
        `like` (numpy) and checked against the checksum saved with them."""
        step = self.latest_step() if step is None else step
        abstract = jax.tree_util.tree_map(lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), like)
        path = os.path.join(self.directory, str(step))
        self._check_metadata(step, like, path)
        try:
            with _QuietOrbax():
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), extra=ocp.args.JsonRestore()))
        except Exception as e:  # orbax raises many types for unreadable or mismatched trees
            raise CheckpointError(
                f"cannot restore checkpoint {path} ({type(e).__name__}: {_first_line(e)}); it is corrupt or from a "
                f"different model/optimizer. Delete it (rm -r {path}) to resume from an earlier one, or use a new "
                "--workdir.") from None
        arrays = jax.tree_util.tree_map(np.asarray, restored["state"])
        _check_like(arrays, like, path)
        extra = self._verified_extra(restored["extra"], arrays, path)
        return arrays, extra

    def restore_variables(self, step: int) -> dict:
        """The saved arrays of `step` as they are on disk (no template), checked against their checksum: for
        reading params and batch_stats alone."""
        path = os.path.join(self.directory, str(step))
        try:
            with _QuietOrbax():
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(), extra=ocp.args.JsonRestore()))
        except Exception as e:  # orbax raises many types for a missing or unreadable step
            raise CheckpointError(f"cannot read checkpoint {path} ({type(e).__name__}: {_first_line(e)}); steps "
                                  f"there: {self.all_steps()}.") from None
        arrays = jax.tree_util.tree_map(np.asarray, restored["state"])
        self._verified_extra(restored["extra"], arrays, path)
        return arrays

    @staticmethod
    def _verified_extra(extra, arrays, path) -> dict:
        if not isinstance(extra, dict) or "checksum" not in extra:
            raise CheckpointError(f"checkpoint {path} has no checksum record; it is damaged or not written by "
                                  f"jaxcnn. Delete it (rm -r {path}) to resume from an earlier one.")
        if extra["checksum"] != digest(arrays):
            raise CheckpointError(f"checkpoint {path} is damaged: its arrays do not match the checksum saved with "
                                  f"them. Delete it (rm -r {path}) to resume from an earlier one, or use a new "
                                  "--workdir.")
        if "extra_checksum" in extra:
            ok = extra["extra_checksum"] == record_digest(extra)
        else:  # written before the record had its own checksum: only its known keys may be there
            ok = set(extra) <= _UNCHECKED_EXTRA_KEYS
        if not ok:
            raise CheckpointError(f"checkpoint {path} is damaged: its record (extra/, the pending metrics) does not "
                                  f"match the checksum saved with it. Delete it (rm -r {path}) to resume from an "
                                  "earlier one, or use a new --workdir.")
        return {k: v for k, v in extra.items() if k != "extra_checksum"}

    def _check_metadata(self, step, like, path) -> None:
        """Compare the saved tree's keys and shapes with `like` before reading any array, so a checkpoint of
        another architecture is named as such (an unreadable one is left to restore to report)."""
        try:
            with _QuietOrbax():
                meta = self.manager.item_metadata(step)["state"]
        except Exception:
            return
        tree = getattr(meta, "tree", meta)
        is_leaf = lambda x: hasattr(x, "shape")  # noqa: E731
        try:
            saved = {_key(k): v for k, v in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]}
        except Exception:
            return
        want = {_key(k): v for k, v in jax.tree_util.tree_flatten_with_path(like)[0]}
        if not saved or not all(is_leaf(v) for v in saved.values()):
            return
        if set(saved) != set(want):
            only_ckpt, only_model = sorted(set(saved) - set(want)), sorted(set(want) - set(saved))
            raise CheckpointError(
                f"checkpoint {path} holds a different model or optimizer state (only in the checkpoint: "
                f"{', '.join(only_ckpt[:3]) or '-'}; only in the model: {', '.join(only_model[:3]) or '-'}); use a "
                "new --workdir for a different architecture.")
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
