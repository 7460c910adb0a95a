"""Ablations: train every arm of a one-field ablation with the same seeds
and budget, and tabulate what the papers claim.

An ablation is a config file experiments/ablations/NAME.py whose
`get_config()` returns an `ml_collections.ConfigDict` with

  name, title, claim      what is tested and what the paper says
  field                   the model field the arms flip (a str; a tuple when a
                          registered variant flips several switches together)
  arms                    a list of dicts {label, model, overrides}: arms with
                          the same `model` differ only in `field`
  model_overrides         fields every arm shares (num_classes, widths, ...)
  dataset, preprocess     data ("fashion_mnist_offline" or "synthetic") and
                          its preprocessing (mean, std, pad_to, resize_to, to_rgb)
  optimizer               as jaxcnn.train.base_config().optimizer
  train                   steps, batch_size, seeds, eval_examples, curve_every
  quick                   overrides of `train` for `--quick`
  extras                  optional analyses: "grad_norms" (per-layer gradient
                          norms at initialisation), "twin_flip" (the second arm
                          starts from the first arm's kernels flipped), "kernels"
                          (picture of the learned first-layer kernels)

    cfg = load_ablation("skip")
    result = run_ablation(cfg, quick=True)
    write_results(result, "experiments/results/skip", command="scripts/ablate.py skip --quick")

Images are NHWC and kernels HWIO throughout.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib.util
import json
import math
import os
import platform
import time
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxcnn.data.augment import make_preprocess
from jaxcnn.data.sharding import batch_indices
from jaxcnn.models.registry import create_model, get_spec
from jaxcnn.params import count_params
from jaxcnn.summary import summary
from jaxcnn.train.optim import make_optimizer
from jaxcnn.train.state import create_train_state
from jaxcnn.train.step import cross_entropy, eval_step, train_step

ABLATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "ablations")
EXTRAS = ("grad_norms", "twin_flip", "kernels")
TRAIN_KEYS = ("steps", "batch_size", "seeds", "eval_examples", "curve_every")


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm: registered `model` with `overrides` on top of the config's model_overrides."""

    label: str
    model: str
    overrides: dict

    def fields(self, common: dict) -> dict:
        """Every field of the module this arm builds (registry variant, then common, then arm overrides)."""
        return {**get_spec(self.model).fields, **common, **self.overrides}


# ---------------------------------------------------------------------------------------------- configs

def list_ablations(directory: str = ABLATIONS_DIR) -> list[str]:
    """Names of the ablation configs in `directory` (files NAME.py with get_config)."""
    return sorted(f[:-3] for f in os.listdir(directory) if f.endswith(".py") and not f.startswith("_"))


def load_ablation(name: str, directory: str = ABLATIONS_DIR) -> ml_collections.ConfigDict:
    """`get_config()` of experiments/ablations/NAME.py; ValueError naming the known ones."""
    path = os.path.join(directory, f"{name}.py")
    if not os.path.exists(path):
        raise ValueError(f"unknown ablation {name!r}; known: {', '.join(list_ablations(directory))}")
    spec = importlib.util.spec_from_file_location(f"jaxcnn_ablation_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = mod.get_config()
    validate_ablation(cfg)
    return cfg


def arms_of(cfg) -> list[Arm]:
    return [Arm(str(a["label"]), str(a["model"]), dict(a.get("overrides", {}))) for a in cfg.arms]


def flipped_fields(a: Arm, b: Arm, common: dict) -> set:
    """The fields whose values differ between two arms' modules."""
    fa, fb = a.fields(common), b.fields(common)
    return {k for k in set(fa) | set(fb) if fa.get(k, _MISSING) != fb.get(k, _MISSING)}


_MISSING = object()


def validate_ablation(cfg) -> None:
    """Arms with the same model must differ exactly in `cfg.field` (one field, or the declared tuple)."""
    field = (cfg.field,) if isinstance(cfg.field, str) else tuple(cfg.field)
    arms = arms_of(cfg)
    if len(arms) < 2:
        raise ValueError(f"ablation {cfg.name!r} needs at least two arms")
    if len({a.label for a in arms}) != len(arms):
        raise ValueError(f"ablation {cfg.name!r}: arm labels must be unique")
    common = dict(cfg.model_overrides)
    bad = sorted(set(cfg.get("extras", ())) - set(EXTRAS))
    if bad:
        raise ValueError(f"ablation {cfg.name!r}: unknown extras {bad}; allowed: {EXTRAS}")
    bad = sorted(set(cfg.get("facts", ())) - set(FACTS))
    if bad:
        raise ValueError(f"ablation {cfg.name!r}: unknown facts {bad}; allowed: {sorted(FACTS)}")
    if len(cfg.train.seeds) < 3:
        raise ValueError(f"ablation {cfg.name!r}: at least 3 seeds, got {tuple(cfg.train.seeds)}")
    for a in arms:
        create_model(a.model, **common, **a.overrides)  # unknown fields raise here
    groups: dict = {}
    for a in arms:
        groups.setdefault(_group_key(a, field), []).append(a)
    for members in groups.values():
        for other in members[1:]:
            diff = flipped_fields(members[0], other, common)
            if diff != set(field):
                raise ValueError(f"ablation {cfg.name!r}: arms {members[0].label!r} and {other.label!r} differ in "
                                 f"{sorted(diff)}, not exactly in the ablated field {list(field)}")


def _group_key(arm: Arm, field: tuple) -> str:
    # Arms compared with each other: same model, unless the ablated fields are a variant's switches.
    return "" if len(field) > 1 else arm.model


def train_settings(cfg, quick: bool) -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict(cfg.train.to_dict())
    if quick:
        for k, v in cfg.quick.items():
            t[k] = v
    return t


# ------------------------------------------------------------------------------------------------- data

def load_data(cfg) -> tuple:
    """(train, test) ArrayDatasets of cfg.dataset (NHWC uint8)."""
    from jaxcnn.data.datasets import load

    kw = dict(synthetic_shape=tuple(cfg.get("synthetic_shape", (28, 28, 1))),
              synthetic_size=int(cfg.get("synthetic_size", 512)))
    return load(cfg.dataset, "train", **kw), load(cfg.dataset, "test", **kw)


def make_arm_preprocess(p) -> Callable:
    """jaxcnn.data.augment.make_preprocess, plus `resize_to` (bilinear, before normalising) for
    nets that need a larger input than the data has (AlexNet-style strides)."""
    p = dict(p)
    resize_to = int(p.pop("resize_to", 0) or 0)
    pad_to = int(p.pop("pad_to", 0) or 0) or None
    base = make_preprocess(mean=tuple(p.get("mean", (0.0,))), std=tuple(p.get("std", (1.0,))), pad_to=pad_to,
                           to_rgb=bool(p.get("to_rgb", False)))
    if not resize_to:
        return base

    def preprocess(images, key, train: bool):
        x = images.astype(jnp.float32)
        n, _, _, c = x.shape
        x = jax.image.resize(x, (n, resize_to, resize_to, c), "bilinear")
        return base(x / 255.0 if jnp.issubdtype(images.dtype, jnp.integer) else x, key, train)

    return preprocess


# -------------------------------------------------------------------------------------------- analyses

def flip_kernels(params):
    """Every 4-D (HWIO) kernel flipped on its two spatial axes; dense kernels and biases untouched.
    A "convolution" net with these weights computes what the "cross_correlation" net does."""
    return jax.tree_util.tree_map(lambda w: jnp.flip(w, (0, 1)) if w.ndim == 4 else w, params)


def conv_layers(module, input_shape) -> list[str]:
    """Paths ('stage1/block0/conv1') of the layers with a 4-D kernel, in the order the forward pass calls them."""
    rows = summary(module, tuple(input_shape)).rows
    return [r.name for r in rows if r.params and "conv" in r.layer_type.lower()]


def _get_path(tree, path: str):
    for part in path.split("/"):
        tree = tree[part]
    return tree


def grad_norms_at_init(model, input_shape, images, labels, key) -> list[tuple[str, float]]:
    """(layer path, ||dL/dW|| of its kernel) for every convolution at initialisation, in forward order,
    on one training batch (images NHWC, already preprocessed)."""
    variables = model.init({"params": key, "dropout": key}, jnp.zeros((1, *input_shape)), train=False)
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}

    def loss(p):
        logits, _ = model.apply({"params": p, **rest}, images, train=True, rngs={"dropout": key},
                                mutable=["batch_stats", "intermediates"])
        return cross_entropy(logits, labels, logits.shape[-1])

    grads = jax.jit(jax.grad(loss))(params)
    out = []
    for path in conv_layers(model, input_shape):
        g = _get_path(grads, path)
        k = g["kernel"] if "kernel" in g else next(v for v in g.values() if getattr(v, "ndim", 0) == 4)
        out.append((path, float(jnp.linalg.norm(k))))
    return out


def first_kernel(params, module, input_shape) -> np.ndarray:
    """The first convolution's kernel (HWIO) as numpy."""
    g = _get_path(params, conv_layers(module, input_shape)[0])
    return np.asarray(g["kernel"] if "kernel" in g else next(v for v in g.values() if v.ndim == 4))


def fact_inception4a_5x5() -> dict:
    """Seed 001's arithmetic from the real model: multiply-adds of GoogLeNet's inception 4a 5x5 branch
    (input 14x14x480, 48 maps) without and with its 16-map 1x1 reduction, and the whole net's totals at 224."""
    out = {}
    for b in (True, False):
        s = summary(create_model("googlenet", bottleneck=b), (224, 224, 3))
        branch = sum(r.macs for r in s.rows if r.name in ("inception4a/branch3_reduce", "inception4a/branch3"))
        key = "with_1x1" if b else "without_1x1"
        out[key] = {"inception4a_5x5_branch_macs": branch, "googlenet_224_params": s.trainable_params,
                    "googlenet_224_macs": s.total_macs}
    return out


def fact_vgg_stack() -> dict:
    """Weights per (input, output) channel pair of each stage's stack (two 3x3: 18; one 5x5: 25) and VGG-16's
    totals at 224 under both kernel plans, from the models' own kernels and summaries."""
    out = {}
    for plan in ("3x3", "large"):
        m = create_model("minivgg", kernel_plan=plan)
        params = jax.eval_shape(m.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
        per_pair = {}
        for name in conv_layers(m, (32, 32, 3)):
            k = params[name]["kernel"].shape
            stage = name.split("_")[0]
            per_pair[stage] = per_pair.get(stage, 0) + k[0] * k[1]
        s = summary(create_model("vgg16", kernel_plan=plan), (224, 224, 3))
        out[plan] = {"weights_per_channel_pair_per_stage": per_pair, "vgg16_224_params": s.trainable_params,
                     "vgg16_224_macs": s.total_macs}
    return out


FACTS = {"inception4a_5x5": fact_inception4a_5x5, "vgg_stack": fact_vgg_stack}


# ----------------------------------------------------------------------------------------------- runner

def _stats(values) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def run_ablation(cfg, *, quick: bool = False, data: Optional[tuple] = None,
                 log: Callable[[str], None] = print) -> dict:
    """Train every arm of `cfg` for every seed with the same budget; return the table and curves.

    Returns a dict with
      rows: one dict per arm (label, model, the ablated field's value, params, macs,
        step_time_ms median, final train error and test accuracy mean and std over seeds,
        per-seed test accuracies),
      curves: {label: array (seeds, points)} of running training error,
      curve_steps: the steps the curve points stand for,
      grad_norms: {label: [(layer, norm), ...]} (extras "grad_norms"),
      kernels: {label: HWIO array} learned first-layer kernels of seed 0 (extras "kernels"),
      twin_max_diff: max |loss difference| between the twin arms (extras "twin_flip").
    """
    t = train_settings(cfg, quick)
    seeds = [int(s) for s in t.seeds]
    steps, bs = int(t.steps), int(t.batch_size)
    every = max(1, min(int(t.curve_every), steps))
    extras = set(cfg.get("extras", ()))
    common = dict(cfg.model_overrides)
    train_ds, test_ds = data if data is not None else load_data(cfg)
    n_eval = min(int(t.eval_examples), len(test_ds))
    test_images, test_labels = test_ds.images[:n_eval], test_ds.labels[:n_eval]
    preprocess = make_arm_preprocess(cfg.preprocess)
    input_shape = tuple(jax.eval_shape(lambda x: preprocess(x, None, False),
                                       jax.ShapeDtypeStruct((1, *train_ds.images.shape[1:]),
                                                            train_ds.images.dtype)).shape[1:])
    tx, schedule = make_optimizer(cfg.optimizer, steps)
    step_fn = jax.jit(functools.partial(train_step, preprocess=preprocess, learning_rate_fn=schedule))
    eval_fn = jax.jit(functools.partial(eval_step, preprocess=preprocess))
    field = cfg.field
    result = {"rows": [], "curves": {}, "losses": {}, "curve_steps": None, "grad_norms": {}, "kernels": {},
              "input_shape": input_shape, "train": t.to_dict(), "seeds": seeds}
    first_params = {}
    for ai, arm in enumerate(arms_of(cfg)):
        model = create_model(arm.model, **common, **arm.overrides)
        summ = summary(model, input_shape)
        n_params = summ.trainable_params
        curves, losses, accs, times, train_errs = [], [], [], [], []
        for seed in seeds:
            key = jax.random.key(seed)
            state = create_train_state(model, tx, key, input_shape)
            if n_params != count_params({"params": state.params}):
                raise AssertionError("summary and count_params disagree")
            if "twin_flip" in extras and ai == 1:
                params = flip_kernels(first_params[seed])
                state = state.replace(params=params, opt_state=tx.init(params))
            if ai == 0:
                first_params[seed] = state.params
            data_key = jax.random.key_data(jax.random.fold_in(key, 1))
            step_losses, step_accs = [], []
            for s in range(steps):
                idx = batch_indices(seed, s, len(train_ds), bs)
                batch = {"image": jnp.asarray(train_ds.images[idx]), "label": jnp.asarray(train_ds.labels[idx])}
                t0 = time.perf_counter()
                state, m = step_fn(state, batch, data_key)
                m["loss"].block_until_ready()
                if s > 0:  # step 0 compiles (once per arm)
                    times.append(time.perf_counter() - t0)
                step_losses.append(m["loss"])
                step_accs.append(m["accuracy"])
            loss_arr = np.asarray(jnp.stack(step_losses), np.float64)
            err_arr = 1.0 - np.asarray(jnp.stack(step_accs), np.float64)
            # running training error over windows of `every` steps
            n_pts = steps // every
            curves.append(err_arr[:n_pts * every].reshape(n_pts, every).mean(1))
            losses.append(loss_arr)
            train_errs.append(curves[-1][-1])
            correct = count = 0.0
            for i in range(0, n_eval, 500):
                b = {"image": jnp.asarray(test_images[i:i + 500]), "label": jnp.asarray(test_labels[i:i + 500])}
                r = eval_fn(state, b)
                correct += float(r["correct"])
                count += float(r["count"])
            accs.append(correct / count)
            if "kernels" in extras and seed == seeds[0]:
                result["kernels"][arm.label] = first_kernel(state.params, model, input_shape)
            log(f"  {arm.label} seed {seed}: train error {train_errs[-1]:.4f}, test accuracy {accs[-1]:.4f}, "
                f"final loss {loss_arr[-1]:.4f}")
        if "grad_norms" in extras:
            idx = batch_indices(seeds[0], 0, len(train_ds), bs)
            images = preprocess(jnp.asarray(train_ds.images[idx]), None, False)
            result["grad_norms"][arm.label] = grad_norms_at_init(model, input_shape, images,
                                                                 jnp.asarray(train_ds.labels[idx]),
                                                                 jax.random.key(seeds[0]))
        result["curves"][arm.label] = np.stack(curves)
        result["losses"][arm.label] = np.stack(losses)
        result["curve_steps"] = (np.arange(len(curves[0])) + 1) * every
        acc_m, acc_s = _stats(accs)
        err_m, err_s = _stats(train_errs)
        value = {f: arm.fields(common).get(f) for f in ((field,) if isinstance(field, str) else field)}
        result["rows"].append({
            "arm": arm.label, "model": arm.model,
            "field": ";".join(f"{k}={v}" for k, v in value.items()),
            "params": n_params, "macs": summ.total_macs,
            "step_time_ms": 1e3 * float(np.median(times)) if times else float("nan"),
            "train_error_mean": err_m, "train_error_std": err_s,
            "test_accuracy_mean": acc_m, "test_accuracy_std": acc_s,
            "test_accuracy_per_seed": " ".join(f"{a:.4f}" for a in accs),
            "seeds": len(seeds), "steps": steps, "batch_size": bs,
        })
    result["extra_facts"] = {f: FACTS[f]() for f in cfg.get("facts", ())}
    if "twin_flip" in extras:
        labels = [a.label for a in arms_of(cfg)]
        a, b = result["losses"][labels[0]], result["losses"][labels[1]]
        result["twin_max_diff"] = float(np.max(np.abs(a - b)))
        result["twin_max_rel_diff"] = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)))
    return result


# ------------------------------------------------------------------------------------------------ output

CSV_COLUMNS = ("arm", "model", "field", "params", "macs", "step_time_ms", "train_error_mean", "train_error_std",
               "test_accuracy_mean", "test_accuracy_std", "test_accuracy_per_seed", "seeds", "steps", "batch_size")


def pm(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    """'mean ± std' (in percent by default)."""
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def write_csv(rows: Sequence[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def markdown_table(rows: Sequence[dict]) -> str:
    """The results as a Markdown table (errors and accuracies in %, mean ± std over seeds)."""
    lines = ["| arm | params | multiply-adds / image | step time (ms, median) | train error % | test accuracy % |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['params']:,} | {r['macs']:,} | {r['step_time_ms']:.1f} | "
                     f"{pm(r['train_error_mean'], r['train_error_std'])} | "
                     f"{pm(r['test_accuracy_mean'], r['test_accuracy_std'])} |")
    return "\n".join(lines)


def environment() -> dict:
    import flax
    import optax

    return {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
            "optax": optax.__version__, "numpy": np.__version__, "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "devices": [str(d) for d in jax.devices()], "backend": jax.default_backend(),
            "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def plot_curves(result: dict, path: str, title: str) -> None:
    """Running training error (mean over seeds, band = ± std) per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = result["curve_steps"]
    for label, c in result["curves"].items():
        m, s = c.mean(0), c.std(0, ddof=1) if len(c) > 1 else np.zeros(c.shape[1])
        ax.plot(x, 100 * m, label=label)
        ax.fill_between(x, 100 * (m - s), 100 * (m + s), alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel("training error % (running, mean ± std over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_grad_norms(grad_norms: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, rows in grad_norms.items():
        ax.semilogy(np.arange(1, len(rows) + 1), [n for _, n in rows], marker=".", label=label)
    ax.set_xlabel("convolution layer (input → output)")
    ax.set_ylabel("||dL/dW|| at initialisation")
    ax.set_title("Per-layer gradient norms at initialisation (one batch, seed 0)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_kernels(kernels: dict, path: str) -> None:
    """Rows: each arm's learned first-layer kernels (HWIO, first input channel), then the second arm's
    flipped on both spatial axes (equal to the first row when the arms are twins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(kernels)
    rows = [(lab, kernels[lab]) for lab in labels]
    if len(labels) == 2:
        rows.append((f"{labels[1]}, flipped", np.flip(kernels[labels[1]], (0, 1))))
    n = kernels[labels[0]].shape[-1]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.5, 1.25 * len(rows) + 0.4), squeeze=False)
    vmax = max(float(np.abs(k).max()) for _, k in rows)
    for i, (lab, k) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(k[:, :, 0, j], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(lab, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("Learned first-layer kernels (seed 0)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(result: dict, outdir: str, *, cfg, command: str, wall_time_s: float,
                  quick: bool) -> list[str]:
    """results.csv, curves.csv, the plots and run.json under `outdir`; returns the files written."""
    os.makedirs(outdir, exist_ok=True)
    files = []
    p = os.path.join(outdir, "results.csv")
    write_csv(result["rows"], p)
    files.append(p)
    p = os.path.join(outdir, "curves.csv")
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "step", "train_error_mean", "train_error_std"])
        for label, c in result["curves"].items():
            std = c.std(0, ddof=1) if len(c) > 1 else np.zeros(c.shape[1])
            for s, m, sd in zip(result["curve_steps"], c.mean(0), std):
                w.writerow([label, int(s), f"{m:.6g}", f"{sd:.6g}"])
    files.append(p)
    p = os.path.join(outdir, "training_error.png")
    plot_curves(result, p, cfg.title)
    files.append(p)
    if result["grad_norms"]:
        p = os.path.join(outdir, "grad_norms.png")
        plot_grad_norms(result["grad_norms"], p)
        files.append(p)
        p = os.path.join(outdir, "grad_norms.csv")
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["arm", "layer_index", "layer", "grad_norm"])
            for label, rows in result["grad_norms"].items():
                for i, (name, g) in enumerate(rows, 1):
                    w.writerow([label, i, name, f"{g:.6g}"])
        files.append(p)
    if result["kernels"]:
        p = os.path.join(outdir, "kernels.png")
        plot_kernels(result["kernels"], p)
        files.append(p)
    p = os.path.join(outdir, "table.md")
    with open(p, "w") as f:
        f.write(markdown_table(result["rows"]) + "\n")
    files.append(p)
    run = {"ablation": cfg.name, "command": command, "quick": quick, "wall_time_s": round(wall_time_s, 1),
           "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "input_shape": list(result["input_shape"]), "train": result["train"],
           "optimizer": cfg.optimizer.to_dict(), "dataset": cfg.dataset, "preprocess": cfg.preprocess.to_dict(),
           "model_overrides": dict(cfg.model_overrides), "arms": [dict(a) for a in cfg.arms],
           "environment": environment(), "note": "step times were measured on a shared CPU; compare arms "
                                                 "within one run only"}
    for k in ("twin_max_diff", "twin_max_rel_diff"):
        if k in result:
            run[k] = result[k]
    for k, v in result.get("extra_facts", {}).items():
        run[k] = v
    p = os.path.join(outdir, "run.json")
    with open(p, "w") as f:
        json.dump(run, f, indent=2, default=str)
    files.append(p)
    return files


def ablation_config(name: str, *, title: str, claim: str, field, arms: Sequence[dict],
                    model_overrides: Optional[dict] = None) -> ml_collections.ConfigDict:
    """The skeleton every experiments/ablations/NAME.py fills in: Fashion-MNIST, SGD with momentum,
    3 seeds; `train` is the full budget and `quick` the few-minutes-on-a-CPU one."""
    c = ml_collections.ConfigDict()
    c.name, c.title, c.claim = name, title, claim
    c.field = field
    c.arms = [dict(a) for a in arms]
    c.model_overrides = dict(model_overrides or {"num_classes": 10})
    c.dataset = "fashion_mnist_offline"
    c.synthetic_shape = (28, 28, 1)
    c.synthetic_size = 512
    c.preprocess = ml_collections.ConfigDict({"mean": (0.2860,), "std": (0.3530,), "pad_to": 0, "resize_to": 0,
                                              "to_rgb": False})
    c.optimizer = ml_collections.ConfigDict({
        "name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4,
        "schedule": "cosine", "warmup_steps": 50, "step_boundaries": (0.5, 0.75), "step_factor": 0.1,
        "grad_clip_norm": 0.0})
    c.train = ml_collections.ConfigDict({"steps": 3000, "batch_size": 128, "seeds": (0, 1, 2),
                                         "eval_examples": 10000, "curve_every": 50})
    c.quick = ml_collections.ConfigDict({"steps": 300, "batch_size": 64, "eval_examples": 2000, "curve_every": 10})
    c.extras = ()
    c.facts = ()
    return c
