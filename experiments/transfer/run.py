"""Transfer between the two halves of Fashion-MNIST's classes, with few labels.

Source task: classes 0-4 (T-shirt/top, Trouser, Pullover, Dress, Coat), all
30,000 training images. Target task: classes 5-9 (Sandal, Shirt, Sneaker,
Bag, Ankle boot), `--per-class` labelled training images each, evaluated on
all 5,000 test images of those classes. Per seed:

    pretrain   fashion_cnn_small on the source task (AdamW, cosine)
    head       new 5-way classifier on the pretrained backbone, backbone frozen
               (zero updates, BatchNorm in inference mode)
    full       the head phase, then every weight at a 10x smaller learning rate
    scratch    the same network from a random initialisation, trained on the
               target labels for as many steps as head + full together

Writes results.csv (one row per seed and method), summary.csv (mean and
sample std over seeds) and transfer.png into --out.

    PYTHONPATH=. python experiments/transfer/run.py --seeds 0 1 2 --out experiments/transfer
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time

import jax
import numpy as np
import optax

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import jaxcnn  # noqa: E402
from jaxcnn.data import datasets, make_preprocess  # noqa: E402
from jaxcnn.finetune import class_subset, create_finetune_state, replace_head, train_steps, unfreeze  # noqa: E402
from jaxcnn.train import create_train_state, make_strategy  # noqa: E402
from jaxcnn.train.loop import evaluate  # noqa: E402

SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
METHODS = ("head", "full", "scratch")


def adamw(lr, steps, warmup=0):
    sched = optax.cosine_decay_schedule(lr, steps) if not warmup else optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup, steps)
    return optax.adamw(sched, weight_decay=1e-4)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--per-class", type=int, nargs="+", default=[10, 100])
    p.add_argument("--model", default="fashion_cnn_small")
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--pretrain-lr", type=float, default=2e-3)
    p.add_argument("--head-steps", type=int, default=50)
    p.add_argument("--head-lr", type=float, default=1e-2)
    p.add_argument("--full-steps", type=int, default=50)
    p.add_argument("--full-lr", type=float, default=1e-3)
    p.add_argument("--scratch-lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = p.parse_args(argv)
    t_start = time.time()

    train = datasets.load("fashion_mnist_offline", "train")
    test = datasets.load("fashion_mnist_offline", "test")
    preprocess = make_preprocess(mean=(0.2860,), std=(0.3530,))
    strategy = make_strategy("none", preprocess=preprocess)
    source = class_subset(train, SOURCE)
    source_test = class_subset(test, SOURCE)
    target_test = class_subset(test, TARGET)
    shape = train.images.shape[1:]
    rows = []
    # One model and one optimizer object per phase for all seeds: jit then compiles each phase once
    # (the TrainState's apply_fn and tx are static parts of its tree).
    model = jaxcnn.create_model(args.model, num_classes=len(SOURCE))
    pre_tx = adamw(args.pretrain_lr, args.pretrain_steps, 50)
    head_tx, full_tx = adamw(args.head_lr, args.head_steps), adamw(args.full_lr, args.full_steps)
    scratch_steps = args.head_steps + args.full_steps
    scratch_tx = adamw(args.scratch_lr, scratch_steps, 20)
    templates = {}

    def like(kind, st):
        """`st` with the apply_fn and tx of the first state of this kind (so its compiled steps are reused)."""
        t = templates.setdefault(kind, st)
        return st.replace(apply_fn=t.apply_fn, tx=t.tx, opt_state=t.tx.init(st.params))

    def target_eval(st):
        return evaluate(strategy, strategy.put_state(st), target_test, 1000)["eval_accuracy"]

    for seed in args.seeds:
        key = jax.random.key(seed)
        k_init, k_train, k_head, k_scratch = jax.random.split(key, 4)

        t0 = time.time()
        state = create_train_state(model, pre_tx, k_init, shape)
        state = train_steps(strategy, like("pretrain", state), source, num_steps=args.pretrain_steps,
                            batch_size=128, seed=seed, key=k_train)
        src_acc = evaluate(strategy, strategy.put_state(state), source_test, 1000)["eval_accuracy"]
        print(f"seed {seed}: pretrained on classes 0-4, test accuracy {src_acc:.4f} ({time.time() - t0:.0f}s)",
              flush=True)
        pretrained = {"params": state.params, "batch_stats": state.batch_stats}
        new_model, variables = replace_head(model, pretrained, len(TARGET), k_head)
        for per_class in args.per_class:
            target = class_subset(train, TARGET, per_class=per_class, seed=seed)
            bs = min(args.batch_size, len(target))
            st = like("head", create_finetune_state(new_model, variables, head_tx, mode="head"))
            st = train_steps(strategy, st, target, num_steps=args.head_steps, batch_size=bs, seed=seed, key=k_train)
            results = {"head": target_eval(st)}
            st = like("full", unfreeze(st, new_model, full_tx))
            st = train_steps(strategy, st, target, num_steps=args.full_steps, batch_size=bs, seed=seed, key=k_train)
            results["full"] = target_eval(st)
            st = like("scratch", create_train_state(new_model, scratch_tx, k_scratch, shape))
            st = train_steps(strategy, st, target, num_steps=scratch_steps, batch_size=bs, seed=seed, key=k_train)
            results["scratch"] = target_eval(st)
            steps = {"head": args.head_steps, "full": scratch_steps, "scratch": scratch_steps}
            for m in METHODS:
                rows.append({"seed": seed, "method": m, "per_class": per_class, "steps": steps[m],
                             "target_accuracy": results[m], "source_accuracy": src_acc})
            print(f"seed {seed}, {per_class}/class: " + ", ".join(f"{m} {results[m]:.4f}" for m in METHODS) +
                  f" ({time.time() - t0:.0f}s)", flush=True)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    summary = []
    for pc in args.per_class:
        for m in METHODS:
            acc = np.array([r["target_accuracy"] for r in rows if r["method"] == m and r["per_class"] == pc])
            sd = acc.std(ddof=1) if len(acc) > 1 else 0.0
            summary.append({"per_class": pc, "method": m, "seeds": len(acc),
                            "steps": next(r["steps"] for r in rows if r["method"] == m),
                            "mean_accuracy": f"{acc.mean():.4f}", "std_accuracy": f"{sd:.4f}",
                            "mean_pm_std": f"{100 * acc.mean():.2f} ± {100 * sd:.2f}"})
    with open(os.path.join(args.out, "summary.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    labels = {"head": "head only (frozen backbone)", "full": "head, then full fine-tune", "scratch": "from scratch"}
    width = 0.8 / len(METHODS)
    for i, m in enumerate(METHODS):
        for j, pc in enumerate(args.per_class):
            acc = np.array([r["target_accuracy"] for r in rows if r["method"] == m and r["per_class"] == pc]) * 100
            x = j + (i - (len(METHODS) - 1) / 2) * width
            ax.bar(x, acc.mean(), width * 0.95, yerr=acc.std(ddof=1) if len(acc) > 1 else 0, capsize=4,
                   color=f"C{i}", alpha=0.85, label=labels[m] if j == 0 else None)
            ax.scatter(x + np.linspace(-width / 4, width / 4, len(acc)), acc, color="k", s=8, zorder=3)
    ax.set_xticks(range(len(args.per_class)), [f"{pc} labels / class" for pc in args.per_class])
    accs = [r["target_accuracy"] * 100 for r in rows]
    ax.set_ylim(max(0, min(accs) - 8), min(100, max(accs) + 4))
    ax.set_ylabel("test accuracy on classes 5-9 (%)")
    ax.set_title(f"Fashion-MNIST: pretrained on classes 0-4, transferred to 5-9 ({len(args.seeds)} seeds)",
                 fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "transfer.png"), dpi=120)

    meta = {"command": "PYTHONPATH=. python experiments/transfer/run.py " + " ".join(sys.argv[1:] if argv is None
                                                                                    else argv),
            "args": vars(args), "wall_time_sec": round(time.time() - t_start, 1),
            "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
                        f"(shared), jax {jax.__version__} on {jax.devices()[0].platform}"}
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
