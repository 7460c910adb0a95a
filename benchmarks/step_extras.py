"""What each extra of jaxcnn's train step costs: the NaN/Inf guard, its lax.cond, metrics, preprocessing.

    python -m benchmarks.step_extras --model resnet20 --batch 8 --rounds 12

Times, interleaved, jaxcnn's own step (`make_strategy("none").train`), steps built here with one extra
left out at a time, a bare step with none of them, and the plain Flax twin's step; prints each one's
per-round speed relative to the Flax twin. A small batch makes any fixed per-step cost visible.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import steps
from benchmarks.timing import (Variant, calibrate, fmt_ms, fmt_paired, interleaved, paired, stepping_variant, summary,
                               warm_up)
from jaxcnn.data import augment
from jaxcnn.train import create_train_state
from jaxcnn.train.step import _all_finite, cross_entropy


def build_step(guard: str = "leaves", cond: bool = True, metrics: bool = True, preprocess: bool = True):
    """A train step with the chosen extras. guard: "leaves" (every gradient leaf checked, as jaxcnn does),
    "loss" (the loss only). cond: keep the old state when not finite. metrics: accuracy and the flag."""
    pre = augment.make_preprocess()

    def step(state, batch, key):
        key = jax.random.wrap_key_data(key)
        aug_key, dropout_key = jax.random.split(jax.random.fold_in(key, state.step))
        images = pre(batch["image"], aug_key, True) if preprocess else batch["image"]
        labels = batch["label"]

        def loss_fn(params):
            variables = {"params": params, **({"batch_stats": state.batch_stats} if state.batch_stats else {})}
            logits, upd = state.apply_fn(variables, images, train=True, rngs={"dropout": dropout_key},
                                         mutable=["batch_stats", "intermediates"])
            return cross_entropy(logits, labels, logits.shape[-1]), (logits, upd.get("batch_stats", {}))

        (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        new = (optax.apply_updates(state.params, updates), stats, opt_state)
        finite = jnp.isfinite(loss) & (_all_finite(grads) if guard == "leaves" else True)
        if cond:
            new = jax.lax.cond(finite, lambda: new, lambda: (state.params, state.batch_stats, state.opt_state))
        out = {"loss": loss}
        if metrics:
            out.update(accuracy=jnp.mean(jnp.argmax(logits, -1) == labels), finite=finite.astype(jnp.float32))
        return state.replace(step=state.step + 1, params=new[0], batch_stats=new[1], opt_state=new[2]), out

    return jax.jit(step, donate_argnums=0)


def extras_variant(name: str, case: steps.TrainCase, batch: dict, **extras) -> Variant:
    model, _, tx = steps.jaxcnn_parts(case)
    state = create_train_state(model, tx, jax.random.key(0), case.input_shape)
    key = np.asarray(jax.random.key_data(jax.random.key(1)))
    return stepping_variant(name, build_step(**extras), state, jax.device_put(batch), key, items=case.batch)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet20", choices=[c.model for c in steps.TRAIN_CASES])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=12)
    args = p.parse_args(argv)
    base = next(c for c in steps.TRAIN_CASES if c.model == args.model)
    case = steps.TrainCase(base.model, base.input_shape, args.batch, base.overrides)
    batch = steps.make_batch(case, 10)
    variants = [steps.jaxcnn_variant(case, batch),
                extras_variant("no cond", case, batch, cond=False),
                extras_variant("guard: loss only", case, batch, guard="loss"),
                extras_variant("bare", case, batch, guard="loss", cond=False, metrics=False, preprocess=False),
                steps.flax_variant(case, batch)]
    warm_up(variants)
    interleaved(variants, args.rounds, calibrate(variants, 0.5))
    flax_times = variants[-1].times
    print(f"{case.label}, {args.rounds} rounds; per-round speed relative to plain Flax, median (quartiles):")
    for v in variants:
        print(f"  {v.name:17s} {fmt_ms(summary(v.times))}  {fmt_paired(paired(v.times, flax_times))}")


if __name__ == "__main__":
    main()
