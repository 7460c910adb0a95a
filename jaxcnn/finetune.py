"""Fine-tuning and transfer learning on top of jaxcnn.train.

The two regimes of practice (seed 002): when the new data are like the old,
retrain only the classifier; when only the task is alike, retrain every
weight, starting from the pretrained ones.

    model, variables = replace_head(model, variables, num_classes=5, key=key)
    state = create_finetune_state(model, variables, optax.adam(1e-3), mode="head")
    ... jaxcnn.train.train_step(state, batch, key, preprocess=...) ...   # only the head moves
    state = unfreeze(state, model, optax.adam(1e-4))                      # then everything, at a smaller rate

mode="head": the backbone is frozen. Its parameters get zero updates
(optax.multi_transform: the head's optimizer for the head, set_to_zero for
the rest, which keeps no optimizer state for it), and the network runs in
inference mode even in training (`FrozenBackbone` wraps apply with
train=False), so BatchNorm normalises with its running statistics and never
updates them, and dropout is off: the backbone computes exactly the
features it computed before. mode="full": the usual training of every
parameter and BatchNorm statistic.

The state is a plain jaxcnn.train.TrainState: jaxcnn.train.train_step and
eval_step (and the parallel strategies) run it unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn._validation import check_choice
from jaxcnn.train.state import TrainState

MODES = ("head", "full")
TRAINABLE, FROZEN = "trainable", "frozen"


def head_name(model, params=None) -> str:
    """The top-level `params` key of `model`'s classifier (the dense layer whose width is num_classes).

    Known families name it: AlexNet/VGG fc8 (fc{6 + len(fc_features)}), ResNet
    fc, DenseNet classifier, FashionCNN fc5. For another model, `params` is
    searched for the one top-level dense layer with num_classes outputs.
    """
    family = type(model).__name__
    if family in ("AlexNet", "VGG"):
        return f"fc{6 + len(model.fc_features)}"
    known = {"ResNet": "fc", "DenseNet": "classifier", "FashionCNN": "fc5"}
    if family in known:
        return known[family]
    if params is None:
        raise ValueError(f"cannot tell the classifier of {family}; pass params (or head=...) to find it.")
    n = getattr(model, "num_classes", None)
    found = [k for k, v in params.items()
             if hasattr(v, "get") and v.get("kernel") is not None and np.ndim(v["kernel"]) == 2
             and np.shape(v["kernel"])[-1] == n]
    if len(found) != 1:
        raise ValueError(f"cannot tell the classifier of {family} (top-level dense layers with {n} outputs: "
                         f"{found}); pass head=<its name in params>.")
    return found[0]


def _check_head(params, head: str) -> None:
    if head not in params:
        raise ValueError(f"head {head!r} is not a top-level entry of params; entries: {sorted(params)}.")


def replace_head(model, variables: dict, num_classes: int, key, *, head: Optional[str] = None):
    """(model with `num_classes` outputs, variables with a fresh classifier and every other variable kept).

    The new classifier is initialised as the models initialise theirs
    (flax.linen.Dense: LeCun-normal kernel, zero bias) from `key`.
    """
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")
    params = variables["params"]
    head = head or head_name(model, params)
    _check_head(params, head)
    in_features = np.shape(params[head]["kernel"])[0]
    new_head = nn.Dense(int(num_classes), dtype=getattr(model, "dtype", None)).init(
        key, jnp.zeros((1, in_features), jnp.float32))["params"]
    new_model = model.clone(num_classes=int(num_classes))
    new_params = {k: (new_head if k == head else v) for k, v in params.items()}
    return new_model, {**variables, "params": new_params}


def param_labels(params, head: str, mode: str = "head"):
    """A pytree like `params` of 'trainable' / 'frozen' (for optax.multi_transform)."""
    check_choice("fine-tuning mode", mode, MODES)
    _check_head(params, head)
    return {k: jax.tree_util.tree_map(lambda _: TRAINABLE if (mode == "full" or k == head) else FROZEN, v)
            for k, v in params.items()}


def finetune_optimizer(tx: optax.GradientTransformation, params, head: str,
                       mode: str = "head") -> optax.GradientTransformation:
    """`tx` for the trainable parameters, zero updates (and no optimizer state) for the frozen ones."""
    labels = param_labels(params, head, mode)
    if mode == "full":
        return tx
    return optax.multi_transform({TRAINABLE: tx, FROZEN: optax.set_to_zero()}, labels)


@dataclasses.dataclass(frozen=True)
class FrozenBackbone:
    """`apply_fn` run in inference mode whatever `train` says: BatchNorm uses
    (and keeps) its running statistics and dropout is off. Hashable, so a
    TrainState holding it is a valid static jit argument."""

    apply_fn: Callable

    def __call__(self, variables, *args, train: bool = False, **kwargs):
        return self.apply_fn(variables, *args, train=False, **kwargs)


def create_finetune_state(model, variables: dict, tx: optax.GradientTransformation, *, mode: str = "head",
                          head: Optional[str] = None) -> TrainState:
    """A jaxcnn.train.TrainState that trains the head alone (mode='head') or every parameter (mode='full')."""
    check_choice("fine-tuning mode", mode, MODES)
    params = variables["params"]
    head = head or head_name(model, params)
    tx = finetune_optimizer(tx, params, head, mode)
    apply_fn = FrozenBackbone(model.apply) if mode == "head" else model.apply
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(params), apply_fn=apply_fn, tx=tx)


def unfreeze(state: TrainState, model, tx: optax.GradientTransformation) -> TrainState:
    """The same parameters and statistics, now all trained by `tx` (usually a smaller learning rate),
    BatchNorm in training mode; a fresh optimizer state; the step count goes on."""
    return state.replace(opt_state=tx.init(state.params), apply_fn=model.apply, tx=tx)


# ---------------------------------------------------------------------------------------------------------
# Data: a class subset with few labels.


def class_subset(dataset, classes: Sequence[int], per_class: Optional[int] = None, seed: int = 0):
    """The examples of `classes` only, relabelled 0..len(classes)-1 in the order given; with
    `per_class`, that many examples of each (drawn with `seed`). Returns a jaxcnn.data.ArrayDataset."""
    from jaxcnn.data import ArrayDataset

    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct class ids, got {classes}.")
    bad = [c for c in classes if not 0 <= c < dataset.num_classes]
    if bad:
        raise ValueError(f"classes {bad} are not in the dataset's 0..{dataset.num_classes - 1}.")
    rng = np.random.default_rng(seed)
    picks = []
    for c in classes:
        idx = np.flatnonzero(dataset.labels == c)
        if per_class is not None:
            if per_class > len(idx):
                raise ValueError(f"class {c} has {len(idx)} examples, fewer than per_class={per_class}.")
            idx = np.sort(rng.choice(idx, per_class, replace=False))
        picks.append(idx)
    idx = np.sort(np.concatenate(picks))
    remap = np.full(dataset.num_classes, -1, np.int32)
    remap[classes] = np.arange(len(classes), dtype=np.int32)
    return ArrayDataset(dataset.images[idx], remap[dataset.labels[idx]], len(classes))


def train_steps(strategy, state: TrainState, data, *, num_steps: int, batch_size: int, seed: int,
                key, on_step: Optional[Callable[[int, dict], Any]] = None) -> TrainState:
    """Run `num_steps` of jaxcnn.train.train_step through `strategy` (jaxcnn.train.make_strategy), the
    batch of each step a pure function of (seed, step) as in the training loop. Host state in and out."""
    from jaxcnn.data.sharding import batch_indices

    key = np.asarray(jax.random.key_data(key)) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    start = int(state.step)
    # Host copies: the compiled step donates its input state, and the caller's arrays must outlive it.
    dev_state = strategy.put_state(state.replace_arrays(jax.tree_util.tree_map(np.array, state.arrays())))
    for step in range(start, start + num_steps):
        idx = batch_indices(seed, step, len(data), batch_size)
        batch = strategy.put_batch({"image": data.images[idx], "label": data.labels[idx]})
        dev_state, metrics = strategy.train(dev_state, batch, key)
        if on_step is not None:
            on_step(step + 1, metrics)
    return strategy.get_state(dev_state)


# ---------------------------------------------------------------------------------------------------------
# The fine-tuning job (scripts/finetune.py).

SOURCES = ("torchvision", "checkpoint", "none")


def finetune_config():
    """jaxcnn.train.base_config() plus the `finetune` section; every key with its default."""
    import ml_collections

    from jaxcnn.train.config import base_config

    c = base_config()
    c.finetune = ml_collections.ConfigDict({
        "source": "checkpoint",  # "torchvision" (a state-dict file), "checkpoint" (a scripts/train.py workdir), "none"
        "path": "",  # the weights file or the training workdir
        "pretrained_num_classes": 0,  # classes of the pretrained classifier; 0 = the registry default
        "classes": (),  # train and evaluate on these class ids only, relabelled 0..; () = all
        "train_examples_per_class": 0,  # few labels: this many training images per class; 0 = all
        "head_steps": 300,
        "head_learning_rate": 1e-2,
        "full_steps": 300,  # 0 = stop after the head
        "full_learning_rate": 1e-3,
    })
    c.optimizer.warmup_steps = 0
    return c


def validate_finetune_config(config, *, require_weights: bool = True) -> None:
    """One-line error for any unknown key or bad value of a fine-tuning config.

    require_weights=False accepts an empty finetune.path (a config file whose
    path is given on the command line)."""
    from jaxcnn.train.config import validate_config

    if "finetune" not in config:
        raise ValueError("config.finetune is missing; start the config from jaxcnn.finetune.finetune_config().")
    import ml_collections

    full = config.copy_and_resolve_references()
    ft = full.finetune
    validate_config(ml_collections.ConfigDict({k: v for k, v in full.items() if k != "finetune"}))
    defaults = finetune_config().finetune
    for key in ft:
        if key not in defaults:
            from jaxcnn._validation import suggest

            raise ValueError(f"unknown config key 'finetune.{key}'." + suggest(key, list(defaults)))
    check_choice("config.finetune.source", ft.source, SOURCES)
    if require_weights and ft.source != "none" and not ft.path:
        raise ValueError(f"config.finetune.path is empty; give the {ft.source} weights to start from "
                         "(a .pth/.safetensors file, or a scripts/train.py --workdir).")
    for key in ("head_steps", "full_steps", "pretrained_num_classes", "train_examples_per_class"):
        if int(ft[key]) < 0:
            raise ValueError(f"config.finetune.{key} must be >= 0, got {ft[key]}.")
    if ft.head_steps + ft.full_steps <= 0:
        raise ValueError("config.finetune.head_steps + full_steps must be positive.")
    for key in ("head_learning_rate", "full_learning_rate"):
        if ft[key] <= 0:
            raise ValueError(f"config.finetune.{key} must be positive, got {ft[key]}.")


def run_finetune(config, workdir: str, *, stop_after_steps: Optional[int] = None) -> dict:
    """Load the pretrained weights, replace the classifier for the dataset's classes, train the head with
    the backbone frozen (finetune.head_steps), then everything at finetune.full_learning_rate
    (finetune.full_steps). finetune.source="none" trains the same network from scratch for
    head_steps + full_steps (the baseline).

    Writes workdir/metrics.jsonl (one record per phase, with eval_accuracy) and checkpoints of the whole
    state (params, batch_stats, opt_state, step) to workdir/checkpoints every config.checkpoint_every
    steps and at the end of each phase; the last is loadable with jaxcnn.load_checkpoint_weights.
    Returns the last record.

    Resumes like the training loop: run again with the same workdir and it goes on from the latest
    checkpoint, in whichever phase that falls, and ends bit-identical to an uninterrupted run (every
    batch and dropout mask is a function of (seed, step)). A finished run returns its final record.

    stop_after_steps: return after this many steps of this call without evaluating, as a killed process
      would (checkpoints already written stay); the record then has "stopped": True.
    """
    import json
    import os
    import time

    from jaxcnn.models import get_spec
    from jaxcnn.pretrained import load_checkpoint_weights, load_torchvision_weights
    from jaxcnn.train.checkpoint import Checkpointer
    from jaxcnn.train.loop import _read_metrics, build_model, check_workdir, evaluate, load_data, make_preprocess_fn
    from jaxcnn.train.optim import make_optimizer
    from jaxcnn.train.parallel import make_strategy
    from jaxcnn.train.state import create_train_state

    validate_finetune_config(config)
    if stop_after_steps is not None and int(stop_after_steps) < 0:
        raise ValueError(f"stop_after_steps must be >= 0 or None, got {stop_after_steps}.")
    ft = config.finetune
    workdir = check_workdir(workdir)
    train_data, eval_data = load_data(config)
    if ft.classes:
        train_data = class_subset(train_data, ft.classes, ft.train_examples_per_class or None, seed=config.seed)
        eval_data = class_subset(eval_data, ft.classes)
    elif ft.train_examples_per_class:
        train_data = class_subset(train_data, range(train_data.num_classes), ft.train_examples_per_class,
                                  seed=config.seed)
    num_classes = train_data.num_classes
    batch_size = min(config.batch_size, len(train_data))
    preprocess = make_preprocess_fn(config, train_data.images.shape[-1])
    sample = preprocess(train_data.images[:1], None, False)
    strategy = make_strategy(config.parallel, preprocess=preprocess, label_smoothing=config.label_smoothing)
    key = jax.random.key(config.seed)
    k_init, k_head, k_train = jax.random.split(key, 3)

    def optimizer(lr, steps):
        opt = config.optimizer.copy_and_resolve_references()
        with opt.unlocked():
            opt.learning_rate = float(lr)
        return make_optimizer(opt, steps)[0]

    # The phases: (name, the step it ends at, its initial state from the previous phase's final state).
    target_model = build_model(config, num_classes)
    if ft.source == "none":
        steps = ft.head_steps + ft.full_steps
        phases = [("scratch", steps, lambda _: create_train_state(
            target_model, optimizer(ft.head_learning_rate, steps), k_init, sample.shape[1:]))]
    else:
        overrides = {k: v for k, v in config.model.items() if k != "name"}
        spec = get_spec(config.model.name)
        overrides["num_classes"] = int(ft.pretrained_num_classes or spec.fields.get(
            "num_classes", getattr(spec.module, "num_classes", num_classes)))
        if ft.source == "torchvision":
            variables = load_torchvision_weights(config.model.name, ft.path, **overrides)
        else:
            variables = load_checkpoint_weights(config.model.name, ft.path, **overrides)
        pretrained_model = build_model(config, overrides["num_classes"])
        model, variables = replace_head(pretrained_model, variables, num_classes, k_head)
        head_state = create_finetune_state(model, variables, optimizer(ft.head_learning_rate, max(ft.head_steps, 1)),
                                           mode="head")
        phases = [("head", ft.head_steps, lambda _: head_state)] if ft.head_steps else []
        if ft.full_steps:
            phases.append(("full", ft.head_steps + ft.full_steps, lambda s: unfreeze(
                s if s is not None else head_state, model, optimizer(ft.full_learning_rate, ft.full_steps))))

    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    every = int(config.checkpoint_every)
    host = lambda st: jax.tree_util.tree_map(np.asarray, st.arrays())  # noqa: E731
    t0 = time.time()
    try:
        resume = ckpt.latest_step()
        kept = _read_metrics(metrics_path, resume or 0)  # records of steps about to be redone are dropped
        with open(metrics_path + ".tmp", "w") as f:
            f.writelines(kept)
        os.replace(metrics_path + ".tmp", metrics_path)
        done = {(r["phase"], r["step"]): r for r in map(json.loads, kept) if "phase" in r}
        left = None if stop_after_steps is None else int(stop_after_steps)
        state, record = None, None
        for name, end, make_state in phases:
            state = make_state(state)
            begin = int(state.step)
            if resume is not None and begin < resume <= end:
                state = state.replace_arrays(ckpt.restore(host(state)))
            elif resume is not None and resume > end:  # a finished phase: its state only shapes the next
                record = done.get((name, end))
                continue
            while int(state.step) < end:
                step = int(state.step)
                stop = min(end, (step // every + 1) * every if every > 0 else end)
                n = stop - step if left is None else min(stop - step, left)
                if n == 0:
                    return {"phase": name, "step": step, "stopped": True, "state": state,
                            "num_classes": num_classes}
                state = train_steps(strategy, state, train_data, num_steps=n, batch_size=batch_size,
                                    seed=config.seed, key=k_train)
                left = None if left is None else left - n
                if int(state.step) < end and every > 0 and int(state.step) % every == 0:
                    ckpt.save(int(state.step), host(state))
            record = done.get((name, end))
            if record is None:
                record = {"phase": name, "step": end, "wall_time_sec": time.time() - t0,
                          **evaluate(strategy, strategy.put_state(state), eval_data, config.eval_batch_size)}
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if ckpt.latest_step() != end:
                ckpt.save(end, host(state))
    finally:
        ckpt.close()
    final = dict(record)
    final["state"] = state
    final["num_classes"] = num_classes
    return final
