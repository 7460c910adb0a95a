"""What an ablation writes into its output folder:

    results.csv      one row per arm: parameters, multiply-adds, step time, train error / loss, test
                     accuracy, steps to the target training error (and the generalisation gap when
                     measured): mean and std over seeds, and the per-seed values
    claims.csv       one row per claim: the paired mean difference, its 95% CI and the verdict
    table.md         both tables in Markdown
    curves.csv       training error per logged step (mean and std over seeds) per arm
    training_error.png, grad_norms.png/.csv, kernels.png   plots and extras
    tuning.csv       with ablation.tune: every arm x value's tuning metric and the chosen value
    run.json         the exact command, quick (false for every committed result), seeds, eval_examples
                     (the first arm's; eval_examples_per_arm: each arm's), num_steps, batch_size, arms,
                     verdict, the extras, hardware, versions, provenance (jaxcnn.train.provenance), wall time (train_wall_time_s: every run's
                     training, pretrain_wall_time_s: of which pretraining) and load average, and
                     carried_runs (those taken from records of an earlier invocation)
    runs/ARM/seedN.json   written by the runner as each run finishes (jaxcnn.ablation.carried): its config,
                     training log and test score, so that another machine finishes the ablation
"""

from __future__ import annotations

import csv
import os
import platform
import time

import jax
import numpy as np

from jaxcnn.ablation.plots import plot_curves, plot_grad_norms, plot_kernels
from jaxcnn.ablation.tuning import tuning_table, value_slug
from jaxcnn.train.workdir import to_jsonable, write_atomic

ROW_COLUMNS = ("arm", "model", "field", "params", "macs", "step_time_ms", "train_error_mean", "train_error_std",
               "train_loss_mean", "train_loss_std", "eval_accuracy_mean", "eval_accuracy_std",
               "eval_accuracy_per_seed", "train_error_per_seed", "steps_to_target_mean", "steps_to_target_std",
               "steps_to_target_per_seed", "generalization_gap_mean", "generalization_gap_std",
               "generalization_gap_per_seed", "seeds", "steps", "batch_size", "eval_examples")


def pm(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    """'mean ± std' (in percent by default)."""
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


# Columns beyond training error and test accuracy, shown when a claim is drawn on them: (header, scale, digits)
EXTRA_COLUMNS = {"steps_to_target": ("steps to target", 1.0, 0),
                 "generalization_gap": ("generalisation gap %", 100.0, 2), "train_loss": ("train loss", 1.0, 4)}


def markdown_table(rows, claims=()) -> str:
    """The arms as a Markdown table (errors and accuracies in %, mean ± std over seeds), with a column for each
    further metric that one of `claims` (result["claims"]) is drawn on."""
    claimed = {str(c["claim"]).split(":", 1)[0] for c in claims}
    extra = [m for m in EXTRA_COLUMNS if m in claimed and rows and f"{m}_mean" in rows[0]]
    lines = ["| arm | params | multiply-adds / image | step time (ms, median) | train error % | test accuracy % |"
             + "".join(f" {EXTRA_COLUMNS[m][0]} |" for m in extra),
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(extra)]
    for r in rows:
        cells = "".join(f" {pm(r[f'{m}_mean'], r[f'{m}_std'], EXTRA_COLUMNS[m][1], EXTRA_COLUMNS[m][2])} |"
                        for m in extra)
        lines.append(f"| {r['arm']} | {r['params']:,} | {r['macs']:,} | {r['step_time_ms']:.1f} | "
                     f"{pm(r['train_error_mean'], r['train_error_std'])} | "
                     f"{pm(r['eval_accuracy_mean'], r['eval_accuracy_std'])} |{cells}")
    return "\n".join(lines)


def difference_text(claim: str, d: dict, display: str = "") -> str:
    """'+1.23 pp [+0.45, +2.01]': a paired mean difference (A - B) with its 95% CI, in percentage points for
    accuracies and errors, as is for losses and step counts; `display` (the twin check's own words) wins."""
    if display:
        return display
    raw = claim.startswith(("train_loss", "steps_to_target"))
    scale, unit = (1.0, "") if raw else (100.0, " pp")
    return f"{d['mean'] * scale:+.2f}{unit} [{d['low'] * scale:+.2f}, {d['high'] * scale:+.2f}]"


def claims_table(claims) -> str:
    """The claims as a Markdown table: paired mean difference (A - B) with its 95% CI, and the verdict."""
    lines = ["| claim | mean difference (A - B), 95% CI | seeds | verdict |", "|---|---:|---:|---|"]
    for c in claims:
        lines.append(f"| {c['claim']} | {difference_text(c['claim'], c['difference'], c.get('display', ''))} | "
                     f"{c['difference']['n']} | {c['verdict']} |")
    return "\n".join(lines)


def overview_table(results_dir: str, order=()) -> str:
    """One Markdown table over every committed (not quick) result under results_dir (NAME/run.json): the
    paper's claim | ours: each claim's paired difference and 95% CI | its verdict | the budget and the
    training time. `order` lists names to put first (the rest follow alphabetically)."""
    import json

    names = sorted((n for n in os.listdir(results_dir) if os.path.exists(os.path.join(results_dir, n, "run.json"))),
                   key=lambda n: (list(order).index(n) if n in order else len(order), n))
    lines = ["| ablation: claim (paper) | ours: difference A - B, 95% CI (paired by seed) | verdict | "
             "budget; training time |", "|---|---|---|---|"]
    for name in names:
        with open(os.path.join(results_dir, name, "run.json")) as f:
            run = json.load(f)
        if run.get("quick") is not False:
            continue
        ours = "<br>".join(f"`{c['claim']}`: {difference_text(c['claim'], c, c.get('display', ''))}"
                           for c in run["claims"])
        verdicts = "<br>".join(f"**{c['verdict']}**" for c in run["claims"])
        steps = run["num_steps"] if isinstance(run["num_steps"], int) else max(run["num_steps"])
        hours = run.get("train_wall_time_s", run["wall_time_s"]) / 3600
        loads = run.get("load_average_1_5_15min", {})
        load = "-".join(f"{loads[k][0]:.1f}" for k in ("before", "after") if loads.get(k))
        counts = sorted(set((run.get("eval_examples_per_arm") or {}).values()) or {run["eval_examples"]})
        images = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}-{counts[-1]:,} (by arm)"
        lines.append(f"| **{name}**: {run['claim']} | {ours} | {verdicts} | {run['title']}; {len(run['arms'])} arms "
                     f"x {len(run['seeds'])} seeds x {steps:,} steps x {run['batch_size']}, "
                     f"{images} test images; {hours:.1f} h training on "
                     f"{run['environment'].get('cpu_count', '?')} CPU cores (load {load}) |")
    return "\n".join(lines)


def environment() -> dict:
    import flax
    import optax

    return {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
            "optax": optax.__version__, "numpy": np.__version__, "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "devices": [str(d) for d in jax.devices()], "backend": jax.default_backend()}


def load_average() -> list:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def _csv(path: str, columns, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def write_results(result: dict, outdir: str, *, config, command: str, wall_time_s: float, quick: bool,
                  load_before: list) -> list[str]:
    """Every file of the module docstring under `outdir`; returns their paths."""
    from jaxcnn.train.provenance import provenance

    os.makedirs(outdir, exist_ok=True)
    ab = config.ablation
    files = []

    def out(name):
        files.append(os.path.join(outdir, name))
        return files[-1]

    _csv(out("results.csv"), ROW_COLUMNS, result["rows"])
    claim_rows = [{"claim": c["claim"], **c["difference"], "verdict": c["verdict"]} for c in result["claims"]]
    _csv(out("claims.csv"), ("claim", "mean", "low", "high", "std", "n", "verdict"), claim_rows)
    with open(out("curves.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "step", "train_error_mean", "train_error_std"])
        for label, (steps, c) in result["curves"].items():
            std = c.std(0, ddof=1) if len(c) > 1 else np.zeros(c.shape[1])
            for s, m, sd in zip(steps, c.mean(0), std):
                w.writerow([label, int(s), f"{m:.6g}", f"{sd:.6g}"])
    plot_curves(result["curves"], out("training_error.png"), ab.title, panels=ab.get("panels", ()))
    extras = result["extras"]
    if extras.get("grad_norms"):
        plot_grad_norms(extras["grad_norms"], out("grad_norms.png"))
        with open(out("grad_norms.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["arm", "layer_index", "layer", "grad_norm"])
            for label, rows in extras["grad_norms"].items():
                for i, (name, g) in enumerate(rows, 1):
                    w.writerow([label, i, name, f"{g:.6g}"])
    if extras.get("kernels"):
        plot_kernels(extras["kernels"], out("kernels.png"))
    tuning = result.get("tuning") or {}
    if tuning:
        with open(out("tuning.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["arm", "key", "value", "metric", "metric_value", "train_loss", "diverged", "chosen"])
            for label, t in tuning.items():
                for trial in t["trials"]:
                    w.writerow([label, t["key"], value_slug(trial["value"]), t["metric"],
                                "" if trial["diverged"] else f"{trial['metric']:g}",
                                "" if trial["diverged"] else f"{trial['train_loss']:.6g}", trial["diverged"],
                                trial["value"] == t["chosen"]])
    parts = [markdown_table(result["rows"], result["claims"])]
    parts += ([claims_table(result["claims"])] if result["claims"] else []) + ([tuning_table(tuning)] if tuning else [])
    text = "\n\n".join(parts) + "\n"
    with open(out("table.md"), "w") as f:
        f.write(text)
    first = result["rows"][0]
    run = {
        "ablation": ab.name, "title": ab.title, "claim": ab.claim, "command": command, "quick": bool(quick),
        "seeds": list(result["seeds"]), "eval_examples": first["eval_examples"],
        # arms may score different test splits (transfer's cells): each arm's count
        "eval_examples_per_arm": {r["arm"]: r["eval_examples"] for r in result["rows"]},
        "num_steps": sorted({r["steps"] for r in result["rows"]})[-1] if len({r["steps"] for r in result["rows"]})
        == 1 else [r["steps"] for r in result["rows"]],
        "batch_size": first["batch_size"],
        "arms": [{"label": a["label"], "overrides": {**dict(a.get("overrides", {})), **(
            {tuning[a["label"]]["key"]: tuning[a["label"]]["chosen"]} if tuning else {})}} for a in ab.arms],
        "field": ab.field, "verdict": {c["claim"]: c["verdict"] for c in result["claims"]},
        "claims": [{"claim": c["claim"], **c["difference"], "verdict": c["verdict"],
                    **({"display": c["display"]} if "display" in c else {})} for c in result["claims"]],
        "extras": {k: v for k, v in extras.items() if k in ("twin", "facts")},
        **({"tuning": tuning} if tuning else {}),
        "config": to_jsonable(config), "environment": environment(), "provenance": provenance(),
        "wall_time_s": round(wall_time_s, 1),
        # the training time of every run (tuning included) over all the pieces a resumed ablation ran in
        "train_wall_time_s": round(float(result.get("train_wall_s", 0.0)), 1),
        # of which the pretraining runs that fine-tuning arms start from (ablation.pretrain)
        **({"pretrain_wall_time_s": round(float(result["pretrain_wall_s"]), 1)} if result.get("pretrain_wall_s")
           else {}),
        # runs taken from the records of an earlier invocation (jaxcnn.ablation.carried), with where they ran
        "carried_runs": list(result.get("carried_runs", [])),
        "load_average_1_5_15min": {"before": load_before, "after": load_average()},
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": "step times were measured on a shared CPU; compare arms within one run only",
    }
    import json

    previous = os.path.join(outdir, "run.json")
    if result.get("trained_runs") == 0 and os.path.exists(previous):
        # every run had finished before: this invocation only wrote the files again, so the wall time and the
        # load of the invocation that trained stay
        with open(previous) as f:
            before = json.load(f)
        if before.get("quick") == bool(quick):
            run.update({k: before[k] for k in ("wall_time_s", "load_average_1_5_15min", "finished_utc") if k in before})
            run["regenerated_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_atomic(out("run.json"), json.dumps(to_jsonable(run), indent=2) + "\n")
    return files


def replace_block(path: str, markers: tuple, text: str) -> None:
    """Write `text` between the lines markers[0] and markers[1] of the file at `path` (a generated table in a
    hand-written README); ValueError naming the markers when the file lacks them. Two writers of one file take
    turns (a lock per file), so neither block is lost."""
    from jaxcnn._locks import target_lock

    with target_lock(path, f"the blocks of {path}", wait=True):
        with open(path) as f:
            old = f.read()
        start, end = markers
        if start not in old or end not in old or old.index(start) > old.index(end):
            raise ValueError(f"{path} has no block between the lines {start} and {end}; add them where the table "
                             "goes.")
        head, rest = old.split(start, 1)
        _, tail = rest.split(end, 1)
        write_atomic(path, f"{head}{start}\n{text}\n{end}{tail}")
