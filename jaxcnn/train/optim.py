"""Optimizers and learning-rate schedules from a config, with optax."""

from __future__ import annotations

from typing import Callable

import optax

from jaxcnn._validation import check_choice

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("constant", "cosine", "step", "onecycle")


def make_schedule(opt, num_steps: int) -> Callable:
    """Learning rate as a function of the step: linear warm-up over
    `opt.warmup_steps` (or `opt.warmup_fraction` of num_steps, when > 0), then
    constant, cosine decay to 0 at `num_steps`, or a step decay multiplying by
    `opt.step_factor` at each of `opt.step_boundaries` (fractions of num_steps
    if < 1, else steps).

    "onecycle" (Smith & Topin 2017, as PyTorch's OneCycleLR): a cosine rise over
    the warm-up from lr / div_factor to lr, then a cosine fall to
    lr / (div_factor * final_div_factor) at `num_steps`."""
    check_choice("optimizer.schedule", opt.schedule, SCHEDULES)
    lr = float(opt.learning_rate)
    fraction = float(opt.get("warmup_fraction", 0.0))
    warmup = round(fraction * num_steps) if fraction else int(opt.warmup_steps)
    if opt.schedule == "onecycle":
        if not fraction and not 1 <= warmup < num_steps:
            raise ValueError(f"config.optimizer.schedule='onecycle' rises over optimizer.warmup_steps, which must be "
                             f"in 1..{num_steps - 1} (num_steps={num_steps}), got {warmup}; e.g. "
                             f"--config.optimizer.warmup_steps={max(1, num_steps // 4)} (or warmup_fraction=0.25).")
        return optax.cosine_onecycle_schedule(num_steps, lr, pct_start=fraction or warmup / num_steps,
                                              div_factor=float(opt.div_factor),
                                              final_div_factor=float(opt.final_div_factor))
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


def make_optimizer(opt, num_steps: int, grad_accum_steps: int = 1) -> tuple[optax.GradientTransformation, Callable]:
    """(optax transformation, schedule) for `opt.name` in sgd (momentum,
    nesterov, coupled L2 weight decay as in the classic papers), adamw
    (decoupled weight decay) or adam.

    grad_accum_steps > 1: optax.MultiSteps averages the gradients of that many
    steps and updates the parameters once at the last of them (the effective
    batch is grad_accum_steps times larger). The schedule still counts steps
    (warm-up, boundaries and num_steps alike); the k-th update uses the rate of
    the step that starts its group. The returned schedule gives the rate in
    effect at each step."""
    check_choice("optimizer.name", opt.name, OPTIMIZERS)
    k = int(grad_accum_steps)
    if k < 1:
        raise ValueError(f"config.grad_accum_steps must be >= 1 (1 = no accumulation), got {k}; e.g. 4.")
    if num_steps % k:
        raise ValueError(f"config.grad_accum_steps={k} does not divide the {num_steps} steps (the last update "
                         f"would be cut short); set num_steps to a multiple of {k}.")
    schedule = make_schedule(opt, num_steps)
    # The inner optimizer counts updates; update u starts at step u * k.
    inner = schedule if k == 1 else (lambda count: schedule(count * k))
    wd = float(opt.weight_decay)
    if opt.name == "sgd":
        tx = optax.chain(
            optax.add_decayed_weights(wd) if wd else optax.identity(),
            optax.sgd(inner, momentum=float(opt.momentum) or None, nesterov=bool(opt.nesterov)),
        )
    elif opt.name == "adamw":
        tx = optax.adamw(inner, weight_decay=wd)
    else:
        tx = optax.adam(inner)
    if opt.get("grad_clip_norm", 0.0):
        tx = optax.chain(optax.clip_by_global_norm(float(opt.grad_clip_norm)), tx)
    if k == 1:
        return tx, schedule
    return optax.MultiSteps(tx, every_k_schedule=k).gradient_transformation(), lambda step: schedule((step // k) * k)
