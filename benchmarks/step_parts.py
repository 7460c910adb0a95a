"""Where a train step's time goes, part by part, beside PyTorch's same parts.

`python -m benchmarks.step_parts --models vgg11 --rounds 9`

For each of bench.py's train cases named, times in interleaved rounds:
  step      the whole train step (forward, loss, backward, SGD with momentum), as bench.py times it;
  grads     forward, loss and backward only: the gradients, no update;
  update    the SGD-with-momentum update alone, over the model's parameters;
  head      forward and backward of the dense layers alone (fc6, fc7, fc8 with ReLU and dropout),
            from the flattened features (models with a `fc_features` head only);
each in jaxcnn and in PyTorch (channels_last or contiguous, whichever is faster for the whole step), and
prints median ms per part and, per round, PyTorch's time over jaxcnn's (> 1: jaxcnn faster). A part that
is slower here than in PyTorch, while the others are level, is where the step's gap is.
"""

from __future__ import annotations

import argparse
import statistics

import jaxcnn.runtime

jaxcnn.runtime.configure()  # jaxcnn's XLA:CPU flags and allocator tuning, as every entry point applies them

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from benchmarks import steps  # noqa: E402
from benchmarks.timing import (  # noqa: E402
    Variant, calibrate, fmt_paired, interleaved, paired, stepping_variant, warm_up)
from jaxcnn.ops import linear  # noqa: E402
from jaxcnn.train import create_train_state  # noqa: E402


def _blocking(name, fn, *args):
    """A Variant calling jitted `fn(*args)` n times and blocking on the last result."""

    def run(n):
        out = None
        for _ in range(n):
            out = fn(*args)
        jax.block_until_ready(out)

    return Variant(name, run)


def jaxcnn_parts(case, batch) -> dict:
    model, strategy, tx = steps.jaxcnn_parts(case)
    state = create_train_state(model, tx, jax.random.key(0), case.input_shape)
    images, labels = jnp.asarray(batch["image"]), jnp.asarray(batch["label"])
    key = jax.random.key(1)

    @jax.jit
    def grads(params, batch_stats):
        def loss_fn(p):
            variables = {"params": p, **({"batch_stats": batch_stats} if batch_stats else {})}
            # state.apply_fn, as the train step: it adds the collections a model keeps fixed (LeNet-5's prototypes)
            logits, _ = state.apply_fn(variables, images, train=True, rngs={"dropout": key}, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        return jax.grad(loss_fn)(params)

    g = grads(state.params, state.batch_stats)

    def update(carry, g, _key):  # a "step" (carry, g, key) -> (carry, aux), as timing.stepping_variant runs one
        params, opt_state = carry
        updates, opt_state = tx.update(g, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    parts = {
        "step": steps.jaxcnn_variant(case, batch),
        "grads": _blocking("grads", grads, state.params, state.batch_stats),
        "update": stepping_variant("update", jax.jit(update, donate_argnums=0),
                                   (jax.tree.map(jnp.copy, state.params), state.opt_state), g, None),
    }
    head = _jaxcnn_head(model, state.params, case)
    if head is not None:
        parts["head"] = head
    return parts


def _jaxcnn_head(model, params, case):
    """fc6..fc8 forward and backward from a random flattened feature batch, as the model runs them."""
    if not hasattr(model, "fc_features"):
        return None
    names = sorted((k for k in params if k.startswith("fc")), key=lambda k: int(k[2:]))
    head = {k: params[k] for k in names}
    fin = head[names[0]]["kernel"].shape[0]
    x = jnp.asarray(np.random.default_rng(0).standard_normal((case.batch, fin), dtype=np.float32))
    labels = jnp.zeros((case.batch,), jnp.int32)
    rate = model.dropout_rate

    @jax.jit
    def head_grads(head, x, key):
        def loss_fn(head, x):
            h = x
            for i, k in enumerate(names):
                h = linear.dense(h, head[k]["kernel"]) + head[k]["bias"]  # as jaxcnn.layers.Dense computes it
                if i < len(names) - 1:
                    h = jax.nn.relu(h)
                    keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1 - rate, h.shape)
                    h = jnp.where(keep, h / (1 - rate), 0)
            return optax.softmax_cross_entropy_with_integer_labels(h, labels).mean()

        return jax.grad(loss_fn, argnums=(0, 1))(head, x)

    return _blocking("head", head_grads, head, x, jax.random.key(2))


def torch_parts(case, batch) -> dict:
    import torch
    import torch.nn.functional as F

    step, _ = steps.torch_variant(case, batch)
    model = step.model
    x, y = step.inputs
    opt = torch.optim.SGD(model.parameters(), lr=steps.LEARNING_RATE, momentum=steps.MOMENTUM)

    def grads(n):
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()

    grads(1)  # the gradients the update below applies
    opt.step()  # its momentum buffers

    def update(n):
        for _ in range(n):
            opt.step()

    parts = {"step": step, "grads": Variant("grads", grads), "update": Variant("update", update)}
    classifier = getattr(model, "classifier", None)
    if classifier is not None:
        fin = classifier[0].in_features
        h = torch.from_numpy(np.random.default_rng(0).standard_normal((case.batch, fin), dtype=np.float32))
        h.requires_grad_(True)

        def head(n):
            for _ in range(n):
                classifier.zero_grad(set_to_none=True)
                h.grad = None
                F.cross_entropy(classifier(h), y).backward()

        parts["head"] = Variant("head", head)
    return parts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vgg11", help="bench.py's train cases")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--target-s", type=float, default=0.5, help="seconds per timed call of the slowest variant")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    torch, why = steps.torch_available()
    if torch is None:
        raise SystemExit(f"error: {why}")
    print(f"torch threads {steps.torch_setup_threads()}; JAX devices {jax.devices()}")
    for case in steps.select_cases(False, args.models):
        print(f"\n== {case.label}", flush=True)
        batch = steps.make_batch(case, getattr(steps.jaxcnn_parts(case)[0], "num_classes", 10))
        ours, theirs = jaxcnn_parts(case, batch), torch_parts(case, batch)
        print(f"PyTorch layout: {theirs['step'].note}")
        variants = []
        for part in ours:
            ours[part].name, theirs[part].name = f"jaxcnn {part}", f"torch {part}"
            variants += [ours[part], theirs[part]]
        warm_up(variants)
        reps = calibrate(variants, args.target_s)
        interleaved(variants, args.rounds, reps)
        print(f"{'part':8} {'jaxcnn ms':>10} {'torch ms':>10}  torch/jaxcnn per round (quartiles)")
        for part in ours:
            a, b = ours[part].times, theirs[part].times
            print(f"{part:8} {1e3 * statistics.median(a):10.2f} {1e3 * statistics.median(b):10.2f}  "
                  f"{fmt_paired(paired(a, b))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
