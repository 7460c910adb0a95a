"""Optimizers and learning-rate schedules from a config, with optax."""

from __future__ import annotations

from typing import Callable

import optax

from jaxcnn._validation import check_choice

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("constant", "cosine", "step")


def make_schedule(opt, num_steps: int) -> Callable:
    """Learning rate as a function of the step: linear warm-up over
    `opt.warmup_steps`, then constant, cosine decay to 0 at `num_steps`, or a
    step decay multiplying by `opt.step_factor` at each of `opt.step_boundaries`
    (fractions of num_steps if < 1, else steps)."""
    check_choice("optimizer.schedule", opt.schedule, SCHEDULES)
    lr = float(opt.learning_rate)
    warmup = int(opt.warmup_steps)
    if opt.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif opt.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, max(1, num_steps - warmup))
    else:
        bounds = [int(b * num_steps) if b < 1 else int(b) for b in opt.step_boundaries]
        main = optax.piecewise_constant_schedule(lr, {max(1, b - warmup): float(opt.step_factor) for b in bounds})
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(opt, num_steps: int) -> tuple[optax.GradientTransformation, Callable]:
    """(optax transformation, schedule) for `opt.name` in sgd (momentum,
    nesterov, coupled L2 weight decay as in the classic papers), adamw
    (decoupled weight decay) or adam."""
    check_choice("optimizer.name", opt.name, OPTIMIZERS)
    schedule = make_schedule(opt, num_steps)
    wd = float(opt.weight_decay)
    if opt.name == "sgd":
        tx = optax.chain(
            optax.add_decayed_weights(wd) if wd else optax.identity(),
            optax.sgd(schedule, momentum=float(opt.momentum) or None, nesterov=bool(opt.nesterov)),
        )
    elif opt.name == "adamw":
        tx = optax.adamw(schedule, weight_decay=wd)
    else:
        tx = optax.adam(schedule)
    if opt.get("grad_clip_norm", 0.0):
        tx = optax.chain(optax.clip_by_global_norm(float(opt.grad_clip_norm)), tx)
    return tx, schedule
