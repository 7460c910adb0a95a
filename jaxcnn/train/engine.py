"""The training engine: the one loop everything that trains runs through.

    final = train_and_evaluate(config, workdir)        # = run(build(config), workdir)

`run` steps a Setup (jaxcnn.train.setup) from its first step to
config.num_steps, and is the only place with I/O: it evaluates every
`eval_every` steps and at the end, checkpoints every `checkpoint_every` steps,
at the end and when interrupted (SIGINT, SIGTERM), writes metrics.jsonl,
TensorBoard events and a progress bar, and applies the NaN policy. Everything
it calls on devices is pure.

Resumption: the batch and the key of every step are pure functions of (seed,
step), and a checkpoint carries the metrics of the steps since the last log
line, so a run stopped anywhere (kill -9 included) and started again with the
same command ends with exactly the parameters and metrics.jsonl (timings aside)
of a run that never stopped. A finished run started again returns its final
record without training.

Data: a Setup's splits are in memory (ArrayDatasets: the loop gathers the
examples jaxcnn.data.sharding.batch_indices(seed, step) names) or read
through the input pipeline (jaxcnn.data.sources.Split: the batches come from
jaxcnn.data.train_batches started at the resumed step, whose batch of a step
is the same pure function of (seed, step); its iterator state is kept in
each checkpoint). Evaluation streams a Split through jaxcnn.data.eval_batches.
With config.test_split, the end of the run also scores that split once
(test_loss, test_accuracy, ...).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Optional

import jax
import numpy as np

from jaxcnn.data.pipeline import eval_batches, pad_rows, train_batches
from jaxcnn.data.sharding import batch_indices, process_slice
from jaxcnn.data.sources import Split
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.errors import TrainingDiverged, TrainingInterrupted
from jaxcnn.train.parallel import PmapParallel, to_host
from jaxcnn.train.records import MetricsLog, Progress
from jaxcnn.train.setup import Setup, build, check_init_from, init_from_workdir, train_key
from jaxcnn.train.workdir import Workdir, read_metrics


def evaluate(strategy, state, data, eval_batch: int, task, *, image_size: int = 0, limit: int = 0,
             workers: int = 0) -> dict:
    """The task's evaluation over the whole split (the last batch padded and masked): an ArrayDataset, or a
    Split read through jaxcnn.data.eval_batches (resized to image_size and centre-cropped when > 0; only
    its first `limit` examples when > 0)."""
    sl = process_slice(eval_batch, jax.process_index(), jax.process_count())
    pmap = isinstance(strategy, PmapParallel)
    totals = None

    def add(batch):
        nonlocal totals
        result = to_host(strategy.evaluate(state, strategy.put_batch(batch)))
        if pmap:  # summed over devices already, or one row block per device
            result = jax.tree_util.tree_map(
                lambda v: v[0] if task.psum_eval else v.reshape((-1,) + v.shape[2:]), result)
        totals = task.combine(totals, result)

    if isinstance(data, Split):
        n = min(limit, len(data)) if limit else len(data)
        rows = np.arange(eval_batch)[sl]
        batches = eval_batches(data, batch_size=eval_batch, process_index=jax.process_index(),
                               process_count=jax.process_count(), image_size=image_size or None,
                               workers=workers)
        try:
            for start, batch in zip(range(0, n, eval_batch), batches):
                add({**batch, "mask": (batch["mask"] * (start + rows < n)).astype(np.float32)})
        finally:
            batches.close()
        return task.summarize(totals)
    n = len(data)
    for start in range(0, n, eval_batch):
        idx = np.arange(start, start + eval_batch)[sl]
        real = idx < n
        # Only real rows are gathered; the last batch's padding is zeros (masked out), not copies of row 0.
        batch = jax.tree_util.tree_map(lambda v: pad_rows(v, len(idx)), data.take(idx[real]))
        add({**batch, "mask": real.astype(np.float32)})
    return task.summarize(totals)


def _evaluate(setup, device_state, data, prefix: str = "eval_") -> dict:
    """evaluate() of `data` under setup's config, the keys renamed from eval_* to `prefix`*."""
    config = setup.config
    out = evaluate(setup.strategy, device_state, data, config.eval_batch_size, setup.task,
                   image_size=config.preprocess.image_size,
                   limit=config.eval_examples if data is setup.eval_data else 0,
                   workers=config.get("data_workers", 0))
    return {prefix + k[len("eval_"):] if k.startswith("eval_") else k: v for k, v in out.items()}


def _final_evaluation(setup, device_state) -> dict:
    """The evaluation of the last step: eval_split, and config.test_split when set."""
    out = _evaluate(setup, device_state, setup.eval_data)
    if setup.test_data is setup.eval_data:  # the same split (test_split names eval_split): scored once
        out.update({"test_" + k[len("eval_"):]: v for k, v in list(out.items()) if k.startswith("eval_")})
    elif setup.test_data is not None:
        out.update(_evaluate(setup, device_state, setup.test_data, "test_"))
    return out


def _data_iterator(setup, start: int, saved: Optional[dict]):
    """The training batches of a streamed Setup from step `start` (None in memory). `saved`: the iterator
    state a checkpoint recorded, checked against this run's (seed, batch size, dataset, split)."""
    if not setup.streamed:
        return None
    config = setup.config
    size = config.preprocess.image_size
    it = train_batches(setup.train_data, seed=config.seed, batch_size=config.batch_size, start_step=start,
                       process_index=jax.process_index(), process_count=jax.process_count(),
                       image_size=size or None, random_resized_crop=bool(size),
                       flip=bool(size) and (config.preprocess.flip or config.get("augment", "none") != "none"),
                       workers=config.get("data_workers", 0))
    if saved is not None:
        if int(saved.get("step", -1)) != start:
            raise ValueError(f"the checkpoint of step {start} holds the data iterator state of step "
                             f"{saved.get('step')}; it is damaged: delete it to resume from the one before.")
        it.set_state(saved)
    return it


class _Signals:
    """SIGINT and SIGTERM set a flag the loop reads between steps (the main thread only)."""

    def __init__(self):
        self.received: Optional[int] = None
        self._old = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _host_metrics(window) -> list[dict]:
    """Per-step metrics as Python floats (device values fetched; restored ones are floats already)."""
    values = jax.device_get(window)
    out = []
    for m in values:
        m = {k: np.asarray(v) for k, v in m.items()}
        out.append({k: float(v.reshape(-1)[0]) for k, v in m.items()})  # pmap: every device holds the same
    return out


def final_record(records: list[dict], step: int, phase: str) -> Optional[dict]:
    """The record of `step` of `phase` that carries an evaluation (the one a finished run ended with)."""
    for r in reversed(records):
        if r["step"] == step and r.get("phase", "train") == phase and any(k.startswith("eval_") for k in r):
            return r
    return None


def run(setup: Setup, workdir, *, stop_after_steps: Optional[int] = None) -> dict:
    """Train `setup` from its latest checkpoint in `workdir` (a path, or an open Workdir) to
    config.num_steps. Returns the last record, with the evaluation, and "state": the host TrainState.

    Raises TrainingDiverged (NaN/Inf under nan_policy='stop'; the state is never changed by such a step) and
    TrainingInterrupted (after checkpointing the last finished step).

    stop_after_steps: return after this many steps of this call, without a final checkpoint, as a killed
      process would (for preemptible time slices and for testing resumption).
    """
    main = jax.process_index() == 0
    if setup.init_from and not isinstance(workdir, Workdir) and not _has_checkpoint(workdir):
        check_init_from(setup.init_from)  # a fresh start reads it: refused before the workdir is touched
    if isinstance(workdir, Workdir):  # opened by the caller (fine-tuning's phases share one)
        return _run(setup, workdir, main, stop_after_steps)
    with Workdir(workdir, setup.config, setup.model_fields, owner=main) as wd:
        return _run(setup, wd, main, stop_after_steps)


def _has_checkpoint(workdir) -> bool:
    folder = os.path.join(os.fspath(workdir), "checkpoints")
    return os.path.isdir(folder) and any(name.isdigit() for name in os.listdir(folder))


def _run(setup: Setup, wd: Workdir, main: bool, stop_after_steps: Optional[int]) -> dict:
    config = setup.config
    end = config.num_steps
    ckpt = Checkpointer(wd.checkpoint_dir, keep=config.keep_checkpoints)
    log = None
    try:
        latest = ckpt.latest_step()
        template = setup.init_state()
        state, start, window = template, setup.first_step, []
        if setup.init_from and (latest is None or latest <= setup.first_step):  # a fresh start: staged training
            state = init_from_workdir(template, setup.init_from)
        if latest is not None and latest > setup.first_step:
            if latest >= end:
                done = _finished(setup, wd, ckpt, template, latest, end, main)
                if done is not None:
                    return done
            arrays, extra = ckpt.restore(template.arrays(), step=latest)
            state, start = template.replace_arrays(arrays), int(arrays["step"])
            window = list(extra.get("window", []))
            data_state = extra.get("data")
        else:
            data_state = None
        log = MetricsLog(wd, start=start, config=config, tensorboard=config.tensorboard, enabled=main)
        return _loop(setup, wd, ckpt, log, state, start, window, main, stop_after_steps, data_state)
    finally:
        if log is not None:
            log.close()
        ckpt.close()


def _finished(setup, wd, ckpt, template, latest, end, main) -> Optional[dict]:
    """The final record and state of a run whose checkpoints reach `end` (None if its record is missing)."""
    record = final_record(read_metrics(wd.metrics_path), end, setup.phase)
    if record is None:
        # Its final record was lost; with a later phase's checkpoints on disk this phase cannot be redone.
        return {"step": end, "phase": setup.phase, "finished_before": True, "steps_run": 0} if latest > end else None
    _check_learned(wd, setup, end)
    step = end if end in ckpt.all_steps() else None
    out = dict(record, finished_before=True, steps_run=0)
    if step is not None:
        arrays, _ = ckpt.restore(template.arrays(), step=step)
        out["state"] = template.replace_arrays(arrays)
    if main and latest == end and setup.phase == "train":
        wd.mark_finished(end)
    return out


def _loop(setup, wd, ckpt, log, state, start, window, main, stop_after_steps, data_state=None) -> dict:
    config, strategy = setup.config, setup.strategy
    end, data = config.num_steps, setup.train_data
    key = train_key(config)
    my_slice = process_slice(config.batch_size, jax.process_index(), jax.process_count())
    skipped_total = log.skipped_so_far()
    phase_key = {} if setup.phase == "train" else {"phase": setup.phase}
    desc = f"{config.model.name}{'' if setup.phase == 'train' else ' ' + setup.phase} " \
           f"[{config.parallel}, {strategy.num_devices} dev]"
    bar = Progress(total=end, initial=start, desc=desc, enabled=config.progress and main)
    device_state = strategy.put_state(state)
    record = {"step": start}
    t0 = run_start = time.perf_counter()
    timed_steps = 0

    batches = None

    def save(step: int, pending: list) -> None:
        host = strategy.get_state(device_state)
        extra = {"window": pending, "phase": setup.phase}
        if batches is not None:  # its "step" is `step`: the next batch it gives
            extra["data"] = batches.get_state()
        ckpt.save(step, host.arrays(), extra)

    try:
        if start >= end:  # the last checkpoint is the end, but its record was lost: evaluate it again
            record = {"step": end, **phase_key, **_final_evaluation(setup, device_state)}
            log.write(record)
        else:
            batches = _data_iterator(setup, start, data_state)
        with _Signals() as signals:
            for step in range(start, end):
                if stop_after_steps is not None and step - start >= stop_after_steps:
                    return {**record, "step": step, "stopped": True, "steps_run": step - start,
                            "state": strategy.get_state(device_state)}
                if signals.received is not None:
                    pending = _checked(_host_metrics(window), step, ckpt, config)
                    if ckpt.latest_step() != step:  # the signal came while step `step` was being checkpointed
                        save(step, pending)
                    raise _interrupted(signals.received, step, end, ckpt.directory)
                if batches is not None:
                    batch = strategy.put_batch(next(batches))
                else:
                    idx = batch_indices(config.seed, step, len(data), config.batch_size)[my_slice]
                    batch = strategy.put_batch(data.take(idx))
                device_state, metrics = strategy.train(device_state, batch, key)
                window.append(metrics)
                timed_steps += 1
                done = step + 1
                final = done == end
                do_eval = final or (config.eval_every and done % config.eval_every == 0)
                do_ckpt = final or (config.checkpoint_every and done % config.checkpoint_every == 0)
                do_log = final or do_eval or done % config.log_every == 0
                if not (do_log or do_ckpt):
                    continue
                values = _checked(_host_metrics(window), done, ckpt, config)
                if do_log:
                    elapsed = time.perf_counter() - t0
                    record = _record(done, values, timed_steps * config.batch_size / max(elapsed, 1e-9),
                                     skipped_total, time.perf_counter() - run_start)
                    skipped_total = record["skipped_steps"]
                    record.update(phase_key)
                    if final:
                        record.update(_final_evaluation(setup, device_state))
                    elif do_eval:
                        record.update(_evaluate(setup, device_state, setup.eval_data))
                    log.write(record)
                    bar.update(done, record)
                    window, values, timed_steps, t0 = [], [], 0, time.perf_counter()
                if do_ckpt:
                    save(done, values)
            if main and record["step"] == end:
                _check_learned(wd, setup, end)
            if main and setup.phase == "train" and record["step"] == end:
                wd.mark_finished(end)
            if signals.received is not None:  # it came during the last step: saved, but nothing may follow
                raise _interrupted(signals.received, end, end, ckpt.directory)
    finally:
        bar.close()
        if batches is not None:
            batches.close()
    record = dict(record, steps_run=end - start)
    record["state"] = strategy.get_state(device_state)
    return record


def _interrupted(signum: int, step: int, end: int, directory: str) -> TrainingInterrupted:
    name = "SIGINT (Ctrl-C)" if signum == signal.SIGINT else "SIGTERM"
    return TrainingInterrupted(f"{name}: stopped after step {step} of {end} and saved a checkpoint of it in "
                               f"{directory}; run the same command again to resume.", signum)


def _check_learned(wd, setup, end: int) -> None:
    """Under nan_policy='skip', a run whose every step was skipped learned nothing: it must not end as done
    (exit 0) with its initial weights. Read from metrics.jsonl, so a finished run started again says so too."""
    steps = end - setup.first_step
    records = [r for r in read_metrics(wd.metrics_path) if r.get("phase", "train") == setup.phase
               and setup.first_step < r["step"] <= end]
    skipped = sum(int(r.get("skipped_steps_window", 0)) for r in records)
    if steps > 0 and records and skipped >= steps:
        raise TrainingDiverged(
            f"every one of the {steps} steps of this run was skipped (NaN/Inf loss, gradients or parameters, "
            f"nan_policy='skip'): nothing was learned and the checkpoints hold the initial weights. Fix the "
            "learning rate or the data, and train again in a new --workdir.")


def _checked(values: list[dict], last_step: int, ckpt, config) -> list[dict]:
    """`values` (the steps up to last_step), after the NaN policy: under 'stop' a non-finite step ends the run."""
    bad = [last_step - len(values) + i + 1 for i, m in enumerate(values) if m["finite"] == 0]
    if bad and config.nan_policy == "stop":
        last = ckpt.latest_step()
        raise TrainingDiverged(
            f"loss, gradients or parameters became NaN/Inf at step {bad[0]}; training stopped (that step changed "
            f"nothing). Last checkpoint: {'step ' + str(last) if last is not None else 'none'} in "
            f"{ckpt.directory}. Lower the learning rate, or set --config.nan_policy=skip to skip such updates.")
    return values


def _record(step: int, values: list[dict], images_per_sec: float, skipped_before: int, wall: float) -> dict:
    good = [m for m in values if m["finite"] == 1]
    skipped = len(values) - len(good)
    rec = {"step": step, "train_loss": float(np.mean([m["loss"] for m in good])) if good else float("nan")}
    for k in sorted(set(values[0]) - {"loss", "finite", "skipped", "learning_rate"}):
        rec[f"train_{k}"] = float(np.mean([m[k] for m in good])) if good else float("nan")
    rec.update({"learning_rate": values[-1]["learning_rate"], "images_per_sec": images_per_sec,
                "skipped_steps_window": skipped, "skipped_steps": skipped_before + skipped, "wall_time_sec": wall})
    return rec


def train_and_evaluate(config, workdir: str, *, stop_after_steps: Optional[int] = None) -> dict:
    """Train config.model on config.dataset in `workdir` (see `run`): the main job."""
    return run(build(config), workdir, stop_after_steps=stop_after_steps)
