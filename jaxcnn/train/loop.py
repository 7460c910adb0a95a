"""The training loop: the only place with I/O (data loading, checkpoints,
metrics, progress). Everything it calls on devices is pure.

    final = train_and_evaluate(config, workdir)   # {'step', 'eval_accuracy', ...}

Resumes automatically from the latest checkpoint in `workdir/checkpoints`.
The batch of each step and the key of each step are pure functions of (seed,
step), so a run that is stopped and resumed ends with exactly the parameters
and metrics (bar images_per_sec) of a run that was never stopped.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.data import augment, datasets
from jaxcnn.data.sharding import batch_indices, process_slice
from jaxcnn.models import create_model, get_spec, module_fields
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.config import validate_config
from jaxcnn.train.optim import make_optimizer
from jaxcnn.train.parallel import PMAP_AXIS, PmapParallel, make_strategy
from jaxcnn.train.state import create_train_state
from jaxcnn.train.tensorboard import SummaryWriter


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN/Inf with nan_policy='stop'."""


def check_workdir(workdir: str) -> str:
    """Create `workdir` if needed and make sure it is writable (one-line error otherwise)."""
    workdir = os.path.abspath(os.path.expanduser(workdir))
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"workdir {workdir} is not writable ({e.strerror}); pass a --workdir you can write to.") \
            from None
    return workdir


def build_model(config, num_classes: int):
    """The registry model of config.model, with num_classes, dtype and (under pmap) bn_axis_name set."""
    name = config.model.name
    spec = get_spec(name)
    fields = set(module_fields(spec.module))
    overrides = {k: v for k, v in config.model.items() if k != "name"}
    if "num_classes" in fields:
        overrides.setdefault("num_classes", num_classes)
    if config.mixed_precision and "dtype" in fields:
        overrides["dtype"] = jnp.bfloat16
    if config.parallel == "pmap" and "bn_axis_name" in fields:
        overrides["bn_axis_name"] = PMAP_AXIS
    if "conv_mode" in overrides and "conv_mode" not in fields:
        overrides.pop("conv_mode")
    _check_field_types(spec, overrides)
    return create_model(name, **overrides)


def _check_field_types(spec, overrides) -> None:
    """A model field given a value of the wrong kind (e.g. a str for a float) is refused by name."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(spec.module)}
    defaults.update(spec.fields)
    for key, value in overrides.items():
        default = defaults.get(key, dataclasses.MISSING)
        for kind in (bool, int, float, str):
            if isinstance(default, kind):
                ok = isinstance(value, kind) if kind in (bool, str) else (
                    isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool))
                if not ok:
                    raise TypeError(f"config.model.{key} must be a {kind.__name__} (like {default!r}) for model "
                                    f"{spec.name!r}, got {value!r} ({type(value).__name__}).")
                break


def make_preprocess_fn(config, channels: int):
    p = config.preprocess
    mean, std = tuple(p.mean), tuple(p.std)
    if p.to_rgb:
        channels = 3
    if len(mean) == 1:
        mean, std = mean * channels, std * channels
    if len(mean) != channels:
        raise ValueError(f"config.preprocess.mean has {len(mean)} values for images of {channels} channels; "
                         "give one per channel.")
    return augment.make_preprocess(mean=mean, std=std, pad_to=p.pad_to or None, crop_padding=p.crop_padding,
                                   flip=p.flip, pca_jitter=p.pca_jitter, to_rgb=p.to_rgb)


def load_data(config):
    kw = dict(data_dir_path=config.data_dir or None, synthetic_shape=tuple(config.synthetic_shape),
              synthetic_size=config.synthetic_size, num_classes=config.num_classes, seed=config.seed)
    return (datasets.load(config.dataset, config.train_split, **kw),
            datasets.load(config.dataset, config.eval_split, **kw))


def _read_metrics(path: str, upto: int) -> list[str]:
    """The complete lines of metrics.jsonl with step <= upto (later ones belong to steps being redone)."""
    if not os.path.exists(path):
        return []
    kept = []
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if rec.get("step", upto + 1) <= upto:
                kept.append(json.dumps(rec) + "\n")
    return kept


def evaluate(strategy, state, data, eval_batch: int) -> dict:
    """eval_loss and eval_accuracy over the whole split (the last batch padded and masked)."""
    n = len(data)
    pi, pc = jax.process_index(), jax.process_count()
    sl = process_slice(eval_batch, pi, pc)
    totals = None
    for start in range(0, n, eval_batch):
        idx = np.arange(start, start + eval_batch)
        mask = (idx < n).astype(np.float32)
        idx = np.where(idx < n, idx, 0)[sl]
        batch = {"image": data.images[idx], "label": data.labels[idx], "mask": mask[sl]}
        sums = strategy.evaluate(state, strategy.put_batch(batch))
        totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
    totals = jax.tree_util.tree_map(np.asarray, jax.device_get(
        jax.tree_util.tree_map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, totals)))
    if isinstance(strategy, PmapParallel):
        totals = {k: v[0] for k, v in totals.items()}
    count = float(totals["count"])
    return {"eval_loss": float(totals["loss_sum"]) / count, "eval_accuracy": float(totals["correct"]) / count}


def train_and_evaluate(config, workdir: str, *, stop_after_steps: int | None = None) -> dict:
    """Train config.model on config.dataset; evaluate every config.eval_every
    steps and at the end; checkpoint every config.checkpoint_every steps and at
    the end. Returns the last metrics record (with eval_loss/eval_accuracy).

    Writes workdir/metrics.jsonl (one JSON object per logged step),
    workdir/tensorboard/events.out.tfevents.*, workdir/checkpoints/<step>/.
    Raises TrainingDiverged when the loss becomes NaN/Inf under nan_policy='stop'.

    stop_after_steps: return after this many steps of this call, without a
      final checkpoint, as a killed process would (for preemptible time slices
      and for testing resumption); calling again resumes from the last checkpoint.
    """
    validate_config(config)
    workdir = check_workdir(workdir)
    is_main = jax.process_index() == 0

    train_data, eval_data = load_data(config)
    model = build_model(config, train_data.num_classes)
    channels = train_data.images.shape[-1]
    preprocess = make_preprocess_fn(config, channels)
    sample = preprocess(jnp.asarray(train_data.images[:1]), None, False)
    tx, schedule = make_optimizer(config.optimizer, config.num_steps)
    strategy = make_strategy(config.parallel, preprocess=preprocess, label_smoothing=config.label_smoothing,
                             aux_weight=float(getattr(model, "aux_weight", 0.3)), learning_rate_fn=schedule)
    strategy.check_batch(config.batch_size, "batch_size")
    strategy.check_batch(config.eval_batch_size, "eval_batch_size")
    process_slice(config.batch_size, jax.process_index(), jax.process_count())

    init_key, train_key = jax.random.split(jax.random.key(config.seed))
    state = create_train_state(model, tx, init_key, sample.shape[1:])
    host_state = state.replace_arrays(
        jax.tree_util.tree_map(np.asarray, state.arrays()))
    train_key = np.asarray(jax.random.key_data(train_key))

    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints)
    start = 0
    if ckpt.latest_step() is not None:
        host_state = host_state.replace_arrays(ckpt.restore(host_state.arrays()))
        start = int(host_state.step)
    state = strategy.put_state(host_state)

    metrics_path = os.path.join(workdir, "metrics.jsonl")
    if is_main:
        kept = _read_metrics(metrics_path, start)
        with open(metrics_path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(metrics_path + ".tmp", metrics_path)
        skipped_total = sum(json.loads(l).get("skipped_steps_window", 0) for l in kept)
    else:
        skipped_total = 0
    tb = SummaryWriter(os.path.join(workdir, "tensorboard")) if is_main else None

    from tqdm.auto import tqdm

    bar = tqdm(total=config.num_steps, initial=start, disable=not (config.progress and is_main),
               desc=f"{config.model.name} [{config.parallel}, {strategy.num_devices} dev]", unit="step",
               dynamic_ncols=True)
    n_train = len(train_data)
    my_slice = process_slice(config.batch_size, jax.process_index(), jax.process_count())
    window, t0, record = [], time.perf_counter(), {"step": start}
    run_start = t0
    try:
        for step in range(start, config.num_steps):
            if stop_after_steps is not None and step - start >= stop_after_steps:
                break
            idx = batch_indices(config.seed, step, n_train, config.batch_size)[my_slice]
            batch = strategy.put_batch({"image": train_data.images[idx], "label": train_data.labels[idx]})
            state, metrics = strategy.train(state, batch, train_key)
            window.append(metrics)
            done = step + 1
            final = done == config.num_steps
            do_eval = final or (config.eval_every and done % config.eval_every == 0)
            do_ckpt = final or (config.checkpoint_every and done % config.checkpoint_every == 0)
            if not (final or do_eval or do_ckpt or done % config.log_every == 0):
                continue
            values = jax.device_get(window)
            if isinstance(strategy, PmapParallel):
                values = [{k: v[0] for k, v in m.items()} for m in values]
            elapsed = time.perf_counter() - t0
            first_bad = [done - len(values) + i + 1 for i, m in enumerate(values) if m["finite"] == 0]
            if first_bad and config.nan_policy == "stop":
                last = ckpt.latest_step()
                raise TrainingDiverged(
                    f"loss or gradients became NaN/Inf at step {first_bad[0]}; training stopped. Last good "
                    f"checkpoint: {'step ' + str(last) if last is not None else 'none'} in {ckpt.directory}. "
                    "Lower the learning rate, or set --config.nan_policy=skip to skip such updates.")
            good = [float(m["loss"]) for m in values if m["finite"] == 1]
            skipped = len(first_bad)
            skipped_total += skipped
            record = {"step": done,
                      "train_loss": float(np.mean(good)) if good else float("nan"),
                      "train_accuracy": float(np.mean([float(m["accuracy"]) for m in values if m["finite"] == 1]
                                                      or [np.nan])),
                      "learning_rate": float(values[-1]["learning_rate"]),
                      "images_per_sec": len(values) * config.batch_size / max(elapsed, 1e-9),
                      "skipped_steps_window": skipped, "skipped_steps": skipped_total,
                      "wall_time_sec": time.perf_counter() - run_start}
            window = []
            if do_eval:
                record.update(evaluate(strategy, state, eval_data, config.eval_batch_size))
            if is_main:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                tb.scalars(done, {k: v for k, v in record.items() if k != "step"})
                post = {"loss": f"{record['train_loss']:.4f}", "img/s": f"{record['images_per_sec']:.0f}"}
                if "eval_accuracy" in record:
                    post["eval_acc"] = f"{record['eval_accuracy']:.4f}"
                bar.set_postfix(post, refresh=False)
            bar.update(done - bar.n)
            if do_ckpt:
                ckpt.save(done, strategy.get_state(state).arrays())
            t0 = time.perf_counter()
    finally:
        bar.close()
        if tb is not None:
            tb.close()
        ckpt.close()
    record["state"] = strategy.get_state(state)
    return record
