"""The fine-tuning job: phases that are successive runs of the training engine
on one workdir, each with its own trainable mask and optimizer.

    final = run_finetune(config, workdir)     # config.finetune: source, path, head/full steps and rates

* "head" (steps 1 .. head_steps): the pretrained network with a new classifier
  for the dataset's classes; only the classifier trains (the backbone and its
  BatchNorm statistics are frozen), at head_learning_rate;
* "full" (head_steps+1 .. head_steps+full_steps): every weight (or, with
  finetune.train_layers, the head and those layers, BatchNorm statistics
  frozen), at full_learning_rate, from where the head phase ended;
* source "none" instead trains the same network from scratch for head_steps +
  full_steps at head_learning_rate (the baseline, one phase "scratch").

Each phase gets the engine's parallel strategies, NaN policy, checkpoints,
exact resume, metrics and progress. A crashed run started again goes on in
whichever phase its latest checkpoint falls; a finished one returns its final
record.
"""

from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np

from jaxcnn.finetune.head import create_finetune_state, finetune_optimizer, head_name, replace_head, unfreeze
from jaxcnn.models import get_spec, module_fields
from jaxcnn.pretrained import load_checkpoint_weights, load_torchvision_weights
from jaxcnn.train.config import validate_config
from jaxcnn.train.engine import run
from jaxcnn.train.optim import make_optimizer
from jaxcnn.train.setup import build, build_model, input_shape, load_data, load_test
from jaxcnn.train.workdir import Workdir


def _phase_config(config, end: int, learning_rate: float):
    c = config.copy_and_resolve_references()
    with c.unlocked():
        c.num_steps = int(end)
        c.optimizer.learning_rate = float(learning_rate)
    return c


def _host(state):
    return state.replace_arrays(jax.tree_util.tree_map(np.asarray, state.arrays()))


def check_finetune(config, workdir: str) -> None:
    """One-line refusals of a fine-tuning config that cannot run (beyond validate_config)."""
    ft = config.finetune
    if ft.head_steps + ft.full_steps <= 0:
        raise ValueError("config.finetune.head_steps + full_steps must be positive.")
    if ft.source == "none":
        return
    if not ft.path:
        raise ValueError(f"config.finetune.path is empty; give the {ft.source} weights to start from "
                         "(a .pth/.safetensors file, or a scripts/train.py --workdir).")
    here = os.path.realpath(os.path.expanduser(workdir))
    there = os.path.realpath(os.path.expanduser(ft.path))
    if here == there or here.startswith(there + os.sep):
        raise ValueError(f"config.finetune.path {ft.path} is the fine-tuning --workdir itself (or contains it); "
                         "fine-tune into a new --workdir so the pretrained run is never overwritten.")


def _pretrained(config, num_classes: int, key, input_shape):
    """(model with a new classifier for num_classes, its variables) from config.finetune's weights."""
    ft = config.finetune
    overrides = {k: v for k, v in config.model.items() if k != "name"}
    spec = get_spec(config.model.name)
    pretrained_classes = int(ft.pretrained_num_classes or spec.fields.get(
        "num_classes", getattr(spec.module, "num_classes", num_classes)))
    overrides["num_classes"] = pretrained_classes
    if ft.source == "torchvision":
        variables = load_torchvision_weights(config.model.name, ft.path, **overrides)
    else:
        variables = load_checkpoint_weights(config.model.name, ft.path, input_shape=input_shape, **overrides)
    pretrained_model = build_model(config, pretrained_classes)
    return replace_head(pretrained_model, variables, num_classes, key)


def run_finetune(config, workdir: str, *, stop_after_steps: Optional[int] = None) -> dict:
    """Run config's fine-tuning phases in `workdir` (see the module docstring); the final record, with
    "phase", "eval_accuracy", "num_classes" and "state"."""
    validate_config(config)
    check_finetune(config, workdir)
    if stop_after_steps is not None and int(stop_after_steps) < 0:
        raise ValueError(f"stop_after_steps must be >= 0 or None, got {stop_after_steps}.")
    ft = config.finetune
    train_data, eval_data = load_data(config)
    num_classes = train_data.num_classes
    head_end, full_end = ft.head_steps, ft.head_steps + ft.full_steps
    k_head = jax.random.split(jax.random.key(config.seed), 3)[1]
    data = dict(train_data=train_data, eval_data=eval_data, test_data=load_test(config, streamed=False))

    if ft.source == "none":
        c = _phase_config(config, full_end, ft.head_learning_rate)
        setups = [lambda prev: build(c, **data, phase="scratch")]
        model = build_model(c, num_classes)
    else:
        model, variables = _pretrained(config, num_classes, k_head, input_shape(config, train_data))
        head_cfg = _phase_config(config, head_end, ft.head_learning_rate)
        full_cfg = _phase_config(config, full_end, ft.full_learning_rate)
        setups = []
        if ft.head_steps:
            tx, schedule = make_optimizer(head_cfg.optimizer, head_end, config.grad_accum_steps)
            head_tx = finetune_optimizer(tx, variables["params"], head_name(model), "head")
            setups.append(lambda prev: build(
                head_cfg, **data, model=model, optimizer=(head_tx, schedule), phase="head",
                init_state=lambda: _host(create_finetune_state(model, variables, head_tx, mode="head"))))
        if ft.full_steps:
            def full(prev):
                tx, schedule = make_optimizer(full_cfg.optimizer, ft.full_steps, config.grad_accum_steps)
                if prev is None:  # no head phase: start from the pretrained network
                    prev = create_finetune_state(model, variables, tx, mode="full")
                state = _host(unfreeze(prev, model, tx, layers=tuple(ft.train_layers)))
                return build(full_cfg, **data, model=model, optimizer=(state.tx, schedule), phase="full",
                             first_step=head_end, init_state=lambda: state)
            setups.append(full)

    fields = {f: getattr(model, f) for f in module_fields(type(model))}
    left = None if stop_after_steps is None else int(stop_after_steps)
    with Workdir(workdir, config, fields, owner=jax.process_index() == 0) as wd:
        prev, record = None, None
        for make in setups:
            setup = make(prev)
            record = run(setup, wd, stop_after_steps=left)
            if record.get("stopped"):
                return {**record, "phase": setup.phase, "num_classes": num_classes}
            if left is not None:
                left -= record.get("steps_run", 0)
            # The next phase starts from this one's final state; when that phase has checkpoints of its own,
            # this state only gives it its structure (the restore replaces every array).
            prev = record["state"] if record.get("state") is not None else setup.init_state()
        wd.mark_finished(full_end)
    return {**record, "num_classes": num_classes, "model": model}
