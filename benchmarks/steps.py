"""The benchmarked train steps: jaxcnn's own, a plain Flax twin's, a torch twin's.

All three do the same work per step: forward in training mode (BatchNorm on
batch statistics, dropout on), mean softmax cross-entropy, backward, SGD with
momentum 0.9. Images NHWC float32 (torch: the same values as NCHW).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxcnn
from jaxcnn.data import augment
from jaxcnn.train import base_config, create_train_state, make_optimizer, make_strategy

from benchmarks.timing import Variant, stepping_variant
from benchmarks.twins_flax import flax_twin

LEARNING_RATE = 0.01
MOMENTUM = 0.9


@dataclass(frozen=True)
class TrainCase:
    """One benchmarked model: registry name, input (H, W, C), batch and create_model overrides."""

    model: str
    input_shape: tuple
    batch: int
    overrides: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        h, w, c = self.input_shape
        return f"{self.model} {h}x{w}x{c} b{self.batch}"


TRAIN_CASES = (
    TrainCase("lenet5", (32, 32, 1), 128),
    TrainCase("keras_cifar_cnn", (32, 32, 3), 128),
    TrainCase("resnet20", (32, 32, 3), 128),
    # VGG's classifier is built for VGG.image_size: at 64x64 fc6 sees 2x2x512.
    TrainCase("vgg11", (64, 64, 3), 32, {"num_classes": 10, "image_size": 64}),
    TrainCase("resnet50", (224, 224, 3), 16),
    TrainCase("resnet18", (112, 112, 3), 32),
    TrainCase("densenet_bc_100_12", (32, 32, 3), 64),
    TrainCase("alexnet", (227, 227, 3), 32),
)
# --quick: a smoke test. Tiny batches; VGG-11 at 32x32, a quarter as wide, with a narrow head; no ResNet-50, whose
# train step alone takes a minute or more to compile on a CPU (its twins are checked by
# tests/test_bench_twins.py; `--quick --models resnet50` runs it at 32x32).
QUICK_CASES = (
    TrainCase("lenet5", (32, 32, 1), 8),
    TrainCase("keras_cifar_cnn", (32, 32, 3), 8),
    TrainCase("resnet20", (32, 32, 3), 8),
    TrainCase("vgg11", (32, 32, 3), 2, {"num_classes": 10, "image_size": 32, "widths": (16, 32, 64, 128, 128),
                                        "fc_features": (64, 64)}),
)
QUICK_OPTIONAL = (TrainCase("resnet50", (32, 32, 3), 2),)


def select_cases(quick: bool, models=None, limit=None):
    """The benchmarked TrainCases: all (or the first `limit`), or those named in `models` ("a,b")."""
    cases = QUICK_CASES if quick else TRAIN_CASES
    if limit and not models:
        cases = cases[:limit]
    if models:
        cases = cases + (QUICK_OPTIONAL if quick else ())
        names = [m.strip() for m in models.split(",") if m.strip()]
        known = [c.model for c in cases]
        bad = [m for m in names if m not in known]
        if bad:
            raise SystemExit(f"error: --models {bad} not benchmarked; choose from {', '.join(known)}")
        cases = tuple(c for c in cases if c.model in names)
    return cases


def make_batch(case: TrainCase, num_classes: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"image": rng.standard_normal((case.batch,) + tuple(case.input_shape), dtype=np.float32),
            "label": rng.integers(0, num_classes, case.batch).astype(np.int32)}


def jaxcnn_optimizer():
    """SGD momentum 0.9 through the library's config path (constant rate, no weight decay)."""
    opt = base_config().optimizer
    opt.name, opt.learning_rate, opt.momentum, opt.nesterov = "sgd", LEARNING_RATE, MOMENTUM, False
    opt.weight_decay, opt.schedule, opt.warmup_steps = 0.0, "constant", 0
    return make_optimizer(opt, 1000)


# ---------------------------------------------------------------- jaxcnn


def jaxcnn_parts(case: TrainCase):
    """(model, strategy, tx) as scripts/train.py's loop builds them, parallel="none"."""
    model = jaxcnn.create_model(case.model, **case.overrides)
    tx, schedule = jaxcnn_optimizer()
    # Images arrive as float32 already; the loop's preprocess with mean 0, std 1 and no augmentation.
    strategy = make_strategy("none", preprocess=augment.make_preprocess(), learning_rate_fn=schedule)
    return model, strategy, tx


def jaxcnn_abstract(case: TrainCase):
    """(jitted step, abstract state, abstract batch, key) for lowering without allocating."""
    model, strategy, tx = jaxcnn_parts(case)
    state = jax.eval_shape(lambda k: create_train_state(model, tx, k, case.input_shape), jax.random.key(0))
    batch = {"image": jax.ShapeDtypeStruct((case.batch,) + tuple(case.input_shape), jnp.float32),
             "label": jax.ShapeDtypeStruct((case.batch,), jnp.int32)}
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    return strategy.train, state, batch, key


def jaxcnn_variant(case: TrainCase, batch: dict) -> Variant:
    model, strategy, tx = jaxcnn_parts(case)
    state = strategy.put_state(create_train_state(model, tx, jax.random.key(0), case.input_shape))
    key = np.asarray(jax.random.key_data(jax.random.key(1)))  # raw key data, as the loop passes it
    return stepping_variant("jaxcnn", strategy.train, state, strategy.put_batch(batch), key, items=case.batch)


# ---------------------------------------------------------------- plain Flax


def flax_step(model, tx):
    """A hand-written train step for a plain Flax model; state is a dict."""

    def step(state, batch, key):
        dropout_key = jax.random.fold_in(key, state["step"])

        def loss_fn(params):
            variables = {"params": params}
            if state["batch_stats"]:
                variables["batch_stats"] = state["batch_stats"]
            logits, updates = model.apply(variables, batch["image"], train=True, rngs={"dropout": dropout_key},
                                          mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
            return loss, updates.get("batch_stats", {})

        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        return {"step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
                "batch_stats": stats, "opt_state": opt_state}, loss

    return jax.jit(step, donate_argnums=0)


def flax_parts(case: TrainCase):
    model = flax_twin(case.model, jaxcnn.create_model(case.model, **case.overrides))
    tx = optax.sgd(LEARNING_RATE, momentum=MOMENTUM)
    return model, tx, flax_step(model, tx)


def flax_init(model, tx, case: TrainCase, key):
    variables = model.init(key, jnp.zeros((1,) + tuple(case.input_shape), jnp.float32), train=False)
    params = variables["params"]
    return {"step": jnp.zeros((), jnp.int32), "params": params, "batch_stats": variables.get("batch_stats", {}),
            "opt_state": tx.init(params)}


def flax_abstract(case: TrainCase):
    model, tx, step = flax_parts(case)
    state = jax.eval_shape(lambda k: flax_init(model, tx, case, k), jax.random.key(0))
    batch = {"image": jax.ShapeDtypeStruct((case.batch,) + tuple(case.input_shape), jnp.float32),
             "label": jax.ShapeDtypeStruct((case.batch,), jnp.int32)}
    return step, state, batch, jax.eval_shape(lambda: jax.random.key(1))


def flax_variant(case: TrainCase, batch: dict) -> Variant:
    model, tx, step = flax_parts(case)
    state = flax_init(model, tx, case, jax.random.key(0))
    return stepping_variant("flax", step, state, jax.device_put(batch), jax.random.key(1), items=case.batch)


# ---------------------------------------------------------------- PyTorch


def torch_available():
    """(torch module or None, why not). Torch runs on the kind of device JAX runs on: on a GPU
    backend without a CUDA build of torch the column is skipped rather than compare unlike devices."""
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install
        return None, f"torch does not import ({type(e).__name__}: {e}); the PyTorch column is skipped"
    backend = jax.default_backend()
    if backend == "gpu" and not torch.cuda.is_available():
        return None, f"JAX runs on GPU but torch {torch.__version__} has no CUDA device; the PyTorch column is skipped"
    if backend not in ("cpu", "gpu"):
        return None, f"no PyTorch counterpart of JAX's {backend} backend; the PyTorch column is skipped"
    return torch, ""


def torch_device() -> str:
    return "cuda" if jax.default_backend() == "gpu" else "cpu"


def torch_sync() -> None:
    import torch

    if torch_device() == "cuda":
        torch.cuda.synchronize()


def torch_setup_threads(n=None):
    """torch.set_num_threads(n or os.cpu_count()); returns the count in effect."""
    import os

    import torch

    torch.set_num_threads(n or os.cpu_count() or 1)
    return torch.get_num_threads()


def _torch_variant(case: TrainCase, batch: dict, channels_last: bool) -> Variant:
    import torch
    import torch.nn.functional as F

    from benchmarks.twins_torch import torch_twin

    torch.manual_seed(0)
    device = torch_device()
    model = torch_twin(case.model, jaxcnn.create_model(case.model, **case.overrides)).to(device)
    model.train()
    x = torch.from_numpy(np.ascontiguousarray(batch["image"].transpose(0, 3, 1, 2))).to(device)
    y = torch.from_numpy(batch["label"].astype(np.int64)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)

    def run(n):
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        torch_sync()

    fmt = "channels_last" if channels_last else "contiguous"
    v = Variant("torch", run, items=case.batch, note=fmt)
    v.model, v.inputs = model, (x, y)  # for benchmarks.step_parts, which times the same model's parts
    return v


def pick_memory_format(build, trials: int = 2):
    """Build a torch variant both ways (`build(channels_last)`), time `trials` steps of each after one
    untimed first step, keep the faster. Returns (variant, {format: seconds per step})."""
    measured, variants = {}, {}
    for cl in (False, True):
        v = build(cl)
        t0 = time.perf_counter()
        v.run(1)
        v.first_call_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        v.run(trials)
        measured[v.note] = (time.perf_counter() - t0) / trials
        variants[v.note] = v
    best = min(measured, key=measured.get)
    return variants[best], measured


def torch_variant(case: TrainCase, batch: dict, trials: int = 2):
    return pick_memory_format(functools.partial(_torch_variant, case, batch), trials)
