"""The train step of every ablation's arms, as the ablation runs it.

`python -m benchmarks.ablation_steps --rounds 5 --json OUT.json` builds each
ablation's arms from experiments/ablations (the shared config, then the arm's
overrides: model, batch size, input shape, preprocessing, optimizer, as
`scripts/ablate.py` trains them), keeps one arm per distinct train step (arms
that differ only in the seed, a rate or another number the step takes as data
time alike) and times the engine's own step (`setup.strategy.train` on a real
training batch, the state carried from call to call) in interleaved rounds.
Prints the median ms per step of each arm, the first call (compilation
included) and the arm's images per second.

It imports only what every version of the engine since the oneDNN
convolutions has (`jaxcnn.train.setup.build`, `train_key`,
`jaxcnn.ablation.spec.arm_config`, `jaxcnn.data.sharding.batch_indices`,
`jaxcnn.train.provenance.git_state`, `benchmarks.timing`), so
a copy of this file runs in an older checkout too:

    git worktree add /tmp/before 9e97509   # before the native BatchNorm, pooling, dense and bias kernels
    cp benchmarks/ablation_steps.py /tmp/before/benchmarks/
    (cd /tmp/before && python -m jaxcnn.ops.native.build)
    benchmarks/ablation_steps.sh /tmp/before .   # alternates the two checkouts, ablation by ablation

Ablations whose runs are not plain engine runs (transfer fine-tunes) are
listed as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jaxcnn.runtime

jaxcnn.runtime.configure()  # XLA:CPU flags and allocator tuning, as every entry point applies them

from benchmarks.timing import round_order, stepping_variant, warm_up  # noqa: E402
from jaxcnn.ablation.spec import arm_config, arms_of  # noqa: E402
from jaxcnn.data.sharding import batch_indices  # noqa: E402
from jaxcnn.train.cli import load_config  # noqa: E402
from jaxcnn.train.provenance import git_state  # noqa: E402
from jaxcnn.train.setup import build, train_key  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABLATIONS = os.path.join(ROOT, "experiments", "ablations")

# What makes two arms' train steps differ. Numbers the step reads as data (learning rate, seed, dropout rate
# on a fixed graph) are not here; everything that changes the traced graph or the batch is.
_STEP_KEYS = ("model", "batch_size", "preprocess", "dataset", "synthetic_shape", "task", "parallel",
              "augment", "mixup_alpha", "cutmix_alpha", "ema_decay", "grad_accum_steps", "label_smoothing")


def _signature(c) -> str:
    parts = {k: (c[k].to_dict() if hasattr(c[k], "to_dict") else c[k]) for k in _STEP_KEYS if k in c}
    opt = c.optimizer.to_dict() if hasattr(c.optimizer, "to_dict") else dict(c.optimizer)
    parts["optimizer"] = {k: v for k, v in opt.items() if k in ("name", "momentum", "nesterov", "weight_decay")}
    return json.dumps(parts, sort_keys=True, default=str)


def _arm_variant(label: str, c):
    """The engine's train step of one arm's config as a timing.Variant (state carried from call to call),
    with the config kept on it."""
    setup = build(c)
    strategy = setup.strategy
    idx = batch_indices(c.seed, 0, len(setup.train_data), c.batch_size)
    v = stepping_variant(label, strategy.train, strategy.put_state(setup.init_state()),
                         strategy.put_batch(setup.train_data.take(idx)), train_key(c), items=c.batch_size)
    v.config = c
    return v


def arms_to_time(name: str, directory: str = ABLATIONS):
    """(label, config) of each distinct train step of ablation `name`, and a reason when it has none."""
    config = load_config(os.path.join(directory, name + ".py"))
    if config.ablation.get("finetune"):
        return [], "fine-tuning runs (jaxcnn.finetune), not the engine's train step"
    seen, out = {}, []
    for arm in arms_of(config):
        c = arm_config(config, arm, int(config.ablation.seeds[0]))
        sig = _signature(c)
        if sig in seen:
            continue
        seen[sig] = arm.label
        out.append((arm.label, c))
    return out, ""


def compare(path: str) -> str:
    """A markdown table of the JSON lines in `path` from two checkouts: each arm's median ms per step in
    the older and the newer (runs of one checkout pooled by median), and older / newer (> 1: faster now)."""
    rows = [json.loads(line) for line in open(path) if line.strip()]
    versions = list(dict.fromkeys(r["version"] for r in rows))
    if len(versions) != 2:
        raise SystemExit(f"{path} holds the versions {versions}; compare needs exactly two (older first).")
    old, new = versions
    cell: dict = {}
    for r in rows:
        cell.setdefault((r["ablation"], r["arm"], r["model"], r["batch_size"]), {}).setdefault(
            r["version"], []).append(r["median_ms"])
    out = [f"| ablation | arm | model | batch | {old} ms/step | {new} ms/step | {old} / {new} |",
           "|---|---|---|---|---|---|---|"]
    for (ablation, arm, model, batch), by in cell.items():
        a = statistics.median(by[old]) if old in by else None
        b = statistics.median(by[new]) if new in by else None
        ratio = f"{a / b:.2f}" if a and b else "—"
        out.append(f"| {ablation} | {arm} | {model} | {batch} | {f'{a:.1f}' if a else '—'} | "
                   f"{f'{b:.1f}' if b else '—'} | {ratio} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ablations", default="", help="comma-separated names (default: every file in "
                                                   "experiments/ablations)")
    p.add_argument("--dir", default=ABLATIONS, help="directory of the ablation configs (default: this "
                                                    "checkout's experiments/ablations; give the newer "
                                                    "checkout's to time the same arms in an older one)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.5, help="about how long each arm runs per round")
    p.add_argument("--json", default="", help="append one JSON line per arm to this file")
    p.add_argument("--compare", default="", metavar="JSONL", help="print the table of a --json file "
                                                                   "written by two checkouts, and stop")
    args = p.parse_args(argv)
    if args.compare:
        print(compare(args.compare))
        return 0
    names = [n for n in args.ablations.split(",") if n] or sorted(
        f[:-3] for f in os.listdir(args.dir) if f.endswith(".py") and not f.startswith("_"))
    commit = git_state()[0]
    version = commit[:7] if commit else "unknown"
    for name in names:
        if not os.path.exists(os.path.join(args.dir, name + ".py")):
            print(f"{name}: not in {args.dir}")
            continue
        try:
            todo, why = arms_to_time(name, args.dir)
        except Exception as e:  # an older checkout that lacks a config key the newer config sets
            todo, why = [], f"its config does not load here: {type(e).__name__}: {str(e).splitlines()[0]}"
        if not todo:
            print(f"{name}: skipped: {why}")
            continue
        arms = [_arm_variant(label, c) for label, c in todo]
        warm_up(arms)  # compiles; first_call_s
        reps = []
        for a in arms:  # steps per round from one timed step (not from the call that compiled)
            t0 = time.perf_counter()
            a.run(1)
            reps.append(max(1, round(args.seconds / max(time.perf_counter() - t0, 1e-4))))
        for r in range(args.rounds):
            for a, n in round_order(zip(arms, reps), r):
                t0 = time.perf_counter()
                a.run(n)
                a.times.append((time.perf_counter() - t0) / n)
        for a in arms:
            med = statistics.median(a.times)
            model = str(a.config.model.name)
            row = {"version": version, "ablation": name, "arm": a.name, "model": model,
                   "batch_size": int(a.config.batch_size), "median_ms": 1e3 * med,
                   "min_ms": 1e3 * min(a.times), "max_ms": 1e3 * max(a.times), "rounds": len(a.times),
                   "first_call_s": a.first_call_s, "images_per_s": a.config.batch_size / med}
            print(f"{name:16s} {a.name:28s} {model:14s} b{row['batch_size']:<4d} "
                  f"{row['median_ms']:8.2f} ms ({row['min_ms']:.2f}..{row['max_ms']:.2f})  "
                  f"first call {a.first_call_s:5.1f} s  [{version}]", flush=True)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(row) + "\n")
        del arms
    return 0


if __name__ == "__main__":
    sys.exit(main())
