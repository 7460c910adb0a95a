"""What an ablation writes into its output folder:

    results.csv      one row per arm: parameters, multiply-adds, step time, train error / loss, test
                     accuracy, steps to the target training error (and the generalisation gap when
                     measured): mean and std over seeds, and the per-seed values
    claims.csv       one row per claim: the paired mean difference, its 95% CI, its p value, p_holm (Holm over
                     the whole family: jaxcnn.ablation.family), the family-wise verdict, verdict_unadjusted, the
                     kind ("claim", or "check": cannot fail, not counted), the method and censored runs
    table.md         both tables in Markdown
    curves.csv       training error per logged step (mean and std over seeds) per arm
    training_error.png   the training error per arm over the steps
    the extras' own files (Extra.report: jaxcnn.ablation.extras): grad_norms.png/.csv, kernels.png, and with
                     ablation.tune tuning.csv (every arm x value's tuning metric and the chosen value)
    run.json         the exact command, quick (false for every committed result), seeds, eval_examples
                     (the first arm's; eval_examples_per_arm: each arm's), num_steps, batch_size, arms,
                     verdict, the extras (what each keeps: Extra.recorded), hardware, versions, provenance
                     (jaxcnn.train.provenance), wall time (train_wall_time_s: every run's training,
                     pretrain_wall_time_s: of which pretraining) and load average, and
                     carried_runs (those taken from records of an earlier invocation)
    runs/ARM/seedN.json   written by the runner as each run finishes (jaxcnn.ablation.carried): its config,
                     training log and test score, so that another machine finishes the ablation
"""

from __future__ import annotations

import csv
import math
import os
import platform
import time
import warnings

import jax
import numpy as np

from jaxcnn.ablation import design
from jaxcnn.ablation.family import apply_holm, by_kind
from jaxcnn.ablation.plots import plot_curves
from jaxcnn.ablation.protocol import extra_metrics, extras_of
from jaxcnn.ablation.stats import p_text as _p_text
from jaxcnn.ablation.tuning import tuning_table
from jaxcnn.train import provenance as _provenance
from jaxcnn.train import records
from jaxcnn.train.workdir import to_jsonable, write_atomic

ROW_COLUMNS = ("arm", "model", "field", "params", "macs", "step_time_ms", "train_error_mean", "train_error_std",
               "train_loss_mean", "train_loss_std", "eval_accuracy_mean", "eval_accuracy_std",
               "eval_accuracy_per_seed", "train_error_per_seed", "steps_to_target_mean", "steps_to_target_std",
               "steps_to_target_per_seed", "generalization_gap_mean", "generalization_gap_std",
               "generalization_gap_per_seed", "seeds", "steps", "batch_size", "eval_examples",
               "train_error_eval_mean", "train_error_eval_std", "train_error_eval_per_seed",
               "steps_to_target_censored")


def row_columns() -> tuple:
    """results.csv's columns: ROW_COLUMNS, then those of any registered extra's metrics (Extra.metrics) that
    ROW_COLUMNS does not list yet."""
    more = [f"{m}_{part}" for m in extra_metrics() for part in ("mean", "std", "per_seed", "censored")]
    return ROW_COLUMNS + tuple(c for c in more if c not in ROW_COLUMNS)
CLAIM_COLUMNS = ("claim", "mean", "low", "high", "std", "n", "verdict", "verdict_unadjusted", "p_value", "p_holm",
                 "kind", "method", "censored")


def pm(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    """'mean ± std' (in percent by default)."""
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


# Columns beyond training error and test accuracy, shown when a claim is drawn on them: (header, scale, digits)
EXTRA_COLUMNS = {"train_error_eval": ("train error, eval mode %", 100.0, 2),
                 "steps_to_target": ("steps to target", 1.0, 0),
                 "generalization_gap": ("generalisation gap %", 100.0, 2), "train_loss": ("train loss", 1.0, 4)}


def markdown_table(rows, claims=()) -> str:
    """The arms as a Markdown table (errors and accuracies in %, mean ± std over seeds), with a column for each
    further metric that one of `claims` (result["claims"]) is drawn on."""
    claimed = {str(c["claim"]).split(":", 1)[0] for c in claims}
    extra = [m for m in EXTRA_COLUMNS if m in claimed and rows and f"{m}_mean" in rows[0]]
    lines = ["| arm | params | multiply-adds / image | step time (ms, median) | train error % | test accuracy % |"
             + "".join(f" {EXTRA_COLUMNS[m][0]} |" for m in extra),
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(extra)]
    def cell(r, m):
        if r.get(f"{m}_censored"):
            return f"not reached in {int(r[f'{m}_censored'])} of {r['seeds']} runs"
        return pm(r[f"{m}_mean"], r[f"{m}_std"], EXTRA_COLUMNS[m][1], EXTRA_COLUMNS[m][2])

    for r in rows:
        cells = "".join(f" {cell(r, m)} |" for m in extra)
        lines.append(f"| {r['arm']} | {r['params']:,} | {r['macs']:,} | {r['step_time_ms']:.1f} | "
                     f"{pm(r['train_error_mean'], r['train_error_std'])} | "
                     f"{pm(r['eval_accuracy_mean'], r['eval_accuracy_std'])} |{cells}")
    return "\n".join(lines)


def difference_text(claim: str, d: dict, display: str = "", row: dict | None = None) -> str:
    """'+1.23 pp [+0.45, +2.01]': a paired mean difference (A - B) with its 95% CI, in percentage points for
    accuracies and errors, as is for losses and step counts; `display` (the twin check's own words) wins. With
    the claim's row: a ratio claim shows its ratio and CI, a censored comparison its sign test."""
    row = row or {}
    if display:
        return display
    if row.get("ratio") and " / " in claim.split(":", 1)[1]:
        r = row["ratio"]
        return f"ratio {r['ratio']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"
    if d.get("mean") is None:
        s = row.get("sign_test") or {}
        return (f"censored runs {sum(row.get('censored') or [])}: no interval; sign test A later in "
                f"{s.get('a_larger', '?')}, B later in {s.get('b_larger', '?')} of {d.get('n', '?')} pairs")
    raw = claim.startswith(("train_loss", "steps_to_target"))
    scale, unit = (1.0, "") if raw else (100.0, " pp")
    return f"{d['mean'] * scale:+.2f}{unit} [{d['low'] * scale:+.2f}, {d['high'] * scale:+.2f}]"


def claims_table(claims, rules=()) -> str:
    """The claims as a Markdown table: paired mean difference (A - B) with its 95% CI, p, p_holm, the
    family-wise verdict and the unadjusted one; the checks (claims that cannot fail) apart below; the rule
    cells' verdicts (ablation.rules) after them."""
    counted, checks, superseded = by_kind(claims)
    lines = ["| claim | mean difference (A - B), 95% CI | seeds | p | p_holm | verdict (Holm, family) | "
             "verdict (unadjusted) |", "|---|---:|---:|---:|---:|---|---|"]
    for c in counted:
        lines.append(f"| {c['claim']} | {difference_text(c['claim'], c['difference'], c.get('display', ''), c)} | "
                     f"{c['difference']['n']} | {_p_text(c.get('p_value'))} | {_p_text(c.get('p_holm'))} | "
                     f"{c['verdict']} | {c.get('verdict_unadjusted', c['verdict'])} |")
    if checks:
        lines += ["", "Checks (cannot fail, not counted among the claims):", "",
                  "| check | result | seeds | holds | why it cannot fail |", "|---|---:|---:|---|---|"]
        for c in checks:
            lines.append(f"| {c['claim']} | {difference_text(c['claim'], c['difference'], c.get('display', ''), c)} | "
                         f"{c['difference']['n']} | {c.get('verdict_unadjusted', c['verdict'])} | "
                         f"{c.get('check_reason', '')} |")
    if superseded:
        lines += ["", "Superseded (replaced in the family by a larger design, fixed before its runs; not counted):", "",
                  "| claim | mean difference (A - B), 95% CI | seeds | p | verdict alone | replaced by |",
                  "|---|---:|---:|---:|---|---|"]
        for c in superseded:
            lines.append(f"| {c['claim']} | {difference_text(c['claim'], c['difference'], c.get('display', ''), c)} | "
                         f"{c['difference']['n']} | {_p_text(c.get('p_value'))} | "
                         f"{c.get('verdict_unadjusted', c['verdict'])} | {c.get('superseded_by', '')} |")
    if rules:
        lines += ["", "The rule's cells (reproduced where a recommended arm beats every other arm):", "",
                  "| cell | recommended | verdict (Holm, family) | verdict (unadjusted) |", "|---|---|---|---|"]
        for r in rules:
            lines.append(f"| {r['cell']} | {', '.join(r['recommended'])} | {r['verdict']} | "
                         f"{r.get('verdict_unadjusted', r['verdict'])} |")
    return "\n".join(lines)


def overview_table(results_dir: str, order=(), design_of=None) -> str:
    """One Markdown table over every committed (not quick) result under results_dir (NAME/run.json): the
    paper's claim | ours: each claim's paired difference and 95% CI, with p and p_holm | the family-wise verdict
    (Holm over the whole family) | the unadjusted verdict | the budget and the training time | whether the design
    was committed before the results. Checks (claims that cannot fail) are listed apart in the same cell, marked
    "check". `order` lists names to put first (the rest follow alphabetically); design_of(name, run) says whether
    its design preceded its results (default: jaxcnn.ablation.design.design_status from git)."""
    import json

    design_of = design_of or (lambda name, run: design.design_status(name, run, results_dir))
    names = sorted((n for n in os.listdir(results_dir) if os.path.exists(os.path.join(results_dir, n, "run.json"))),
                   key=lambda n: (list(order).index(n) if n in order else len(order), n))
    lines = ["| ablation: claim (paper) | ours: difference A - B, 95% CI (paired by seed); p, p_holm | verdict "
             "(Holm over the family) | verdict (unadjusted) | budget; training time | design fixed before the "
             "results |", "|---|---|---|---|---|---|"]
    for name in names:
        with open(os.path.join(results_dir, name, "run.json")) as f:
            run = json.load(f)
        if run.get("quick") is not False:
            continue
        claims, checks, superseded = by_kind(run["claims"])
        ours = [f"`{c['claim']}`: {difference_text(c['claim'], c, c.get('display', ''), c)}"
                + (f"; p {_p_text(c['p_value'])}, p_holm {_p_text(c.get('p_holm'))}" if c.get("p_value") is not None
                   else "") for c in claims]
        ours += [f"check `{c['claim']}`: {difference_text(c['claim'], c, c.get('display', ''), c)}" for c in checks]
        ours += [f"superseded by **{c.get('superseded_by', '?')}** `{c['claim']}`: "
                 f"{difference_text(c['claim'], c, c.get('display', ''), c)}" for c in superseded]
        ours += [f"rule cell *{r['cell']}* (recommended: {', '.join(r['recommended'])})" for r in run.get("rules", ())]
        verdicts = [f"**{c['verdict']}**" for c in claims] + [f"check: {c['verdict']}" for c in checks]
        verdicts += ["superseded (not counted)" for c in superseded]
        verdicts += [f"cell: **{r['verdict']}**" for r in run.get("rules", ())]
        unadjusted = [c.get("verdict_unadjusted", c["verdict"]) for c in claims] + \
            [f"check: {c.get('verdict_unadjusted', c['verdict'])}" for c in checks] + \
            [f"superseded: {c.get('verdict_unadjusted', c['verdict'])}" for c in superseded] + \
            [f"cell: {r.get('verdict_unadjusted', r['verdict'])}" for r in run.get("rules", ())]
        steps = run["num_steps"] if isinstance(run["num_steps"], int) else max(run["num_steps"])
        hours = run.get("train_wall_time_s", run["wall_time_s"]) / 3600
        loads = run.get("load_average_1_5_15min", {})
        load = "-".join(f"{loads[k][0]:.1f}" for k in ("before", "after") if loads.get(k))
        counts = sorted(set((run.get("eval_examples_per_arm") or {}).values()) or {run["eval_examples"]})
        images = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}-{counts[-1]:,} (by arm)"
        lines.append(f"| **{name}**: {run['claim']} | {'<br>'.join(ours)} | {'<br>'.join(verdicts)} | "
                     f"{'<br>'.join(unadjusted)} | {run['title']}; {len(run['arms'])} arms "
                     f"x {len(run['seeds'])} seeds x {steps:,} steps x {run['batch_size']}, "
                     f"{images} test images; {hours:.1f} h training on "
                     f"{run['environment'].get('cpu_count', '?')} CPU cores (load {load}) | {design_of(name, run)} |")
    return "\n".join(lines)


CLAIM_KEYS = ("verdict", "verdict_unadjusted", "p_value", "p_holm", "kind", "method", "censored", "check_reason",
              "superseded_by",
              "ratio", "sign_test", "display", "worst", "a", "b")


def json_safe(value):
    """`value` with every non-finite float (a censored step count: inf; a missing mean: nan) as None, so
    run.json is strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _finite(value):
    """A claim's per-seed values for JSON: a censored value (inf: never reached the target) as None."""
    if isinstance(value, list):
        return [None if isinstance(v, float) and not math.isfinite(v) else v for v in value]
    return value


def claims_record(result: dict) -> dict:
    """run.json's claim sections from a result's claims: verdict (family-wise) and verdict_unadjusted by claim,
    the claims (difference, p values, kinds, per-seed values), the family, and the analyses beside the claims
    (gap_parts, steps_ratios, rules)."""
    claims = result["claims"]
    return {"verdict": {c["claim"]: c["verdict"] for c in claims},
            "verdict_unadjusted": {c["claim"]: c.get("verdict_unadjusted", c["verdict"]) for c in claims},
            "claims": [{"claim": c["claim"], **c["difference"], **{k: _finite(c[k]) for k in CLAIM_KEYS if k in c}}
                       for c in claims],
            "family": result.get("family", {}),
            **{k: result[k] for k in ("gap_parts", "steps_ratios", "rules") if result.get(k)}}


def write_claims(outdir: str, claims, rules=()) -> str:
    """claims.csv (atomically): one row per claim and check."""
    rows = [{"claim": c["claim"], **c["difference"], **{k: c.get(k) for k in CLAIM_COLUMNS[6:]}} for c in claims]
    for r in rows:
        r["censored"] = " ".join(map(str, r["censored"])) if r.get("censored") else ""
    path = os.path.join(outdir, "claims.csv")
    _csv(path, CLAIM_COLUMNS, rows)
    return path


def analyses_text(gap_parts=(), steps_ratios=()) -> str:
    """The analyses beside the claims in words: a generalisation gap's change split into its training and test
    accuracy parts, and a steps-to-target ratio with its CI."""
    lines = []
    for g in gap_parts or ():
        tr, te = g["train_accuracy"], g["test_accuracy"]
        lines.append(f"- `{g['claim']}` split (A - B, paired, 95% CI): training accuracy in eval mode "
                     f"{difference_text('eval_accuracy', tr)}, test accuracy {difference_text('eval_accuracy', te)}; "
                     f"the gap's change {100 * g['gap']:+.2f} pp = train - test.")
    for r in steps_ratios or ():
        if "low" in r:
            lines.append(f"- `{r['claim']}`: steps to the target, ratio {r['of']} (of geometric means over seeds) "
                         f"{r['ratio']:.2f} [{r['low']:.2f}, {r['high']:.2f}] (95% CI: exp of the paired t interval "
                         "of log ratios).")
        else:
            lines.append(f"- `{r['claim']}`: {r['censored']} runs never reached the target: no ratio interval.")
    return "\n".join(x for x in lines if x)


def write_table(path: str, rows, claims, tuning=None, rules=(), analyses=None) -> None:
    """table.md: the arms, the claims (with the checks and the rule's cells), the analyses beside them
    (analyses_text) and the tuning runs."""
    parts = [markdown_table(rows, claims)]
    parts += ([claims_table(claims, rules)] if claims else [])
    text = analyses_text(**(analyses or {}))
    parts += ([text] if text else []) + ([tuning_table(tuning)] if tuning else [])
    write_atomic(path, "\n\n".join(parts) + "\n")


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
    import io

    f = io.StringIO(newline="")
    w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else "" if v is None else v) for k, v in r.items()})
    write_atomic(path, f.getvalue())


def write_results(result: dict, outdir: str, *, config, command: str, wall_time_s: float, quick: bool,
                  load_before: list) -> list[str]:
    """Every file of the module docstring under `outdir`; returns their paths."""
    os.makedirs(outdir, exist_ok=True)
    ab = config.ablation
    files = []

    def out(name):
        files.append(os.path.join(outdir, name))
        return files[-1]

    _csv(out("results.csv"), row_columns(), result["rows"])
    if any(c.get("kind", "claim") == "claim" and c.get("p_holm") is None for c in result["claims"]):
        # until the family is scored (scripts/ablate.py --rescore over experiments/results), the family is this
        # result's own claims
        apply_holm(result["claims"])
        result.setdefault("family", {"scope": "this result's claims alone (python scripts/ablate.py --rescore "
                                              "scores the whole family)"})
    write_claims(outdir, result["claims"], result.get("rules", ()))
    files.append(os.path.join(outdir, "claims.csv"))
    with open(out("curves.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "step", "train_error_mean", "train_error_std"])
        for label, (steps, c) in result["curves"].items():
            std = c.std(0, ddof=1) if len(c) > 1 else np.zeros(c.shape[1])
            for s, m, sd in zip(steps, c.mean(0), std):
                w.writerow([label, int(s), f"{m:.6g}", f"{sd:.6g}"])
    plot_curves(result["curves"], out("training_error.png"), ab.title, panels=ab.get("panels", ()))
    extras = extras_of(config)
    for extra in extras:
        extra.report(result, out)
    tuning = result.get("tuning") or {}
    write_table(out("table.md"), result["rows"], result["claims"], tuning, result.get("rules", ()),
                {k: result.get(k) for k in ("gap_parts", "steps_ratios")})
    first = result["rows"][0]
    run = {
        "ablation": ab.name, "title": ab.title, "claim": ab.claim, "command": command, "quick": bool(quick),
        "seeds": list(result["seeds"]), "eval_examples": first["eval_examples"],
        # arms may score different test splits (transfer's cells): each arm's count
        "eval_examples_per_arm": {r["arm"]: r["eval_examples"] for r in result["rows"]},
        "num_steps": sorted({r["steps"] for r in result["rows"]})[-1] if len({r["steps"] for r in result["rows"]})
        == 1 else [r["steps"] for r in result["rows"]],
        "batch_size": first["batch_size"],
        # the arms as run (an arm tuned by ablation.tune: at its chosen value)
        "arms": result.get("arms") or [{"label": a["label"], "overrides": dict(a.get("overrides", {}))}
                                       for a in ab.arms],
        "field": ab.field, **claims_record(result),
        "extras": {k: v for e in extras for k, v in e.recorded(result).items()},
        # the commit of the ablation's config when the run started (scripts/ablate.py): the design fixed before
        # the runs (experiments/README.md)
        **({"design": result["design"]} if result.get("design") else {}),
        **({"tuning": tuning} if tuning else {}),
        "config": to_jsonable(config), "environment": environment(), "provenance": _provenance.provenance(),
        "wall_time_s": round(wall_time_s, 1),
        # the training time of every run (tuning included) over all the pieces a resumed ablation ran in
        "train_wall_time_s": round(float(result.get("train_wall_s", 0.0)), 1),
        # of which the pretraining runs that fine-tuning arms start from (ablation.pretrain)
        **({"pretrain_wall_time_s": round(float(result["pretrain_wall_s"]), 1)} if result.get("pretrain_wall_s")
           else {}),
        # runs taken from the records of an earlier invocation (jaxcnn.ablation.carried), with where they ran
        "carried_runs": list(result.get("carried_runs", [])),
        # the processes the runs trained in, with the cores of each (jaxcnn.ablation.lanes); absent: one process
        **({"lanes": result["lanes"]} if result.get("lanes") else {}),
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
    write_atomic(out("run.json"), json.dumps(json_safe(to_jsonable(run)), indent=2) + "\n")
    return files


def replace_block(path: str, markers: tuple, text: str) -> None:
    """Deprecated: jaxcnn.train.records.replace_block (shared by every report)."""
    warnings.warn("jaxcnn.ablation.report.replace_block moved to jaxcnn.train.records.replace_block; import it "
                  "from there (the old path goes in the next release).", DeprecationWarning, stacklevel=2)
    records.replace_block(path, markers, text)


def p_text(p) -> str:
    """Deprecated: jaxcnn.ablation.stats.p_text (shared by every report)."""
    warnings.warn("jaxcnn.ablation.report.p_text moved to jaxcnn.ablation.stats.p_text; import it from there (the "
                  "old path goes in the next release).", DeprecationWarning, stacklevel=2)
    return _p_text(p)
