"""Where a run's records go: metrics.jsonl (one JSON object per logged step),
TensorBoard event files (tensorboardX), and the progress bar.

Records of steps being redone after a resume are dropped from metrics.jsonl
and purged from TensorBoard (tensorboardX's purge_step), so both read as if the
run had never stopped.

Also what every report over finished runs shares: `training_wall_seconds` of a
run's records (every resumed piece counted) and `replace_block` (a generated
table written between two marker lines of a hand-written README).
"""

from __future__ import annotations

import errno
import json
import os

from jaxcnn._extras import require
from jaxcnn._locks import target_lock
from jaxcnn.train.config import flat, not_read_by_training
from jaxcnn.train.workdir import WorkdirError, read_metrics, to_jsonable, write_atomic


class MetricsLog:
    """metrics.jsonl and TensorBoard scalars of one workdir, from step `start` on."""

    def __init__(self, workdir, *, start: int, config, tensorboard: bool = True, enabled: bool = True):
        self.path = workdir.metrics_path
        self.enabled = enabled
        self.writer = None
        if not enabled:
            self.kept = []
            return
        self.kept = read_metrics(self.path, upto=start)
        write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in self.kept))
        if tensorboard:
            require("tensorboardX")
            from tensorboardX import SummaryWriter

            # Steps after `start` are about to be redone: purged from earlier event files (start itself is kept).
            self.writer = SummaryWriter(os.path.join(workdir.path, "tensorboard"),
                                        purge_step=start + 1 if start else None, flush_secs=30)
            if start == 0:
                self.writer.add_text("config", "```\n" + json.dumps(to_jsonable(config), indent=1) + "\n```", 0)
                self.writer.add_hparams(_hparams(config), {}, name="hparams", global_step=0)

    def skipped_so_far(self) -> int:
        return int(sum(r.get("skipped_steps_window", 0) for r in self.kept))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        line = json.dumps(record) + "\n"
        try:
            with open(self.path, "a") as f:
                f.write(line)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise WorkdirError(f"no space left on the device of {self.path} (appending {len(line)} bytes); "
                                   "free some space and rerun the same command to resume.") from None
            raise WorkdirError(f"cannot append to {self.path} ({e.strerror}); free space or fix the permissions "
                               "and rerun the same command to resume.") from None
        if self.writer is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.writer.add_scalar(k, v, record["step"])

    def close(self) -> None:
        """Close the TensorBoard writer. Its events are a view of metrics.jsonl: when they cannot be flushed
        (a full disk) that is not the error to report, so it is dropped here rather than replacing the one
        that stopped the run."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                writer.close()
            except OSError:
                pass


def _hparams(config) -> dict:
    """The config's scalar values by dotted key (TensorBoard's hparams take bool, str, int and float), less
    what a training run does not read (an application's section or keys that say so: jaxcnn.train.config)."""
    out, unread = {}, not_read_by_training()
    for k, v in flat(config).items():
        if k.startswith(unread):
            continue
        if isinstance(v, (bool, str, int, float)):
            out[k] = v
        elif hasattr(v, "items"):
            out.update({f"{k}.{m}": w for m, w in v.items() if isinstance(w, (bool, str, int, float))})
        else:
            out[k] = str(tuple(v)) if isinstance(v, (tuple, list)) else str(v)
    return out


class Progress:
    """A tqdm bar with the live loss, throughput and evaluation accuracy (off when disabled)."""

    def __init__(self, *, total: int, initial: int, desc: str, enabled: bool):
        require("tqdm")
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="step",
                        dynamic_ncols=True)

    def update(self, step: int, record: dict | None = None) -> None:
        if record is not None:
            post = {"loss": f"{record['train_loss']:.4f}", "img/s": f"{record['images_per_sec']:.0f}"}
            if "eval_accuracy" in record:
                post["eval_acc"] = f"{record['eval_accuracy']:.4f}"
            self.bar.set_postfix(post, refresh=False)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def training_wall_seconds(records: list[dict]) -> float:
    """Seconds of training over every piece of a run: each start of the engine counts wall_time_sec from 0, so
    the total is the sum of each piece's last value (the time before a piece's first log line included)."""
    total, last = 0.0, 0.0
    for r in records:
        wall = float(r.get("wall_time_sec", 0.0))
        if wall < last:  # a resumed piece starts its clock again
            total += last
        last = wall
    return total + last


def replace_block(path: str, markers: tuple, text: str) -> None:
    """Write `text` between the lines markers[0] and markers[1] of the file at `path` (a generated table in a
    hand-written README); ValueError naming the markers when the file lacks them. Two writers of one file take
    turns (a lock per file), so neither block is lost."""
    with target_lock(path, f"the blocks of {path}", wait=True):
        with open(path) as f:
            old = f.read()
        start, end = markers
        if start not in old or end not in old or old.index(start) > old.index(end):
            raise ValueError(f"{path} has no block between the lines {start} and {end}; add them where the table "
                             "goes.")
        head, rest = old.split(start, 1)
        _, tail = rest.split(end, 1)
        write_atomic(path, f"{head}{start}\n{text}\n{end}{tail}")
