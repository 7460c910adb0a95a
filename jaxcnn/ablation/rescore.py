"""Scoring committed results again without training: every claim of experiments/results/NAME/ recomputed from
its committed per-seed values (results.csv) and the claims it was run with (run.json), then Holm's step-down
over the whole family (jaxcnn.ablation.family), and claims.csv, table.md and run.json's claim sections written
again. scripts/ablate.py --rescore runs it (with the detection claims in the family: jaxcnn.ablation.detection_report).

    scored = score_result("experiments/results/skip")       # unadjusted rows, analyses
    family.apply_holm([row for s in all_scored for row in s["claims"]] + detection_rows)
    write_result(scored)

A result whose config names `ablation.supersedes` takes those claims of an earlier result out of the family
(family.mark_superseded): they are scored and listed, not counted.

A result is scored against the claims in its run.json. `adopt` (a config) replaces them with the config's
claims and rules (its arms and seeds must be the result's): the run.json then records that the claims were
adopted after the results, with the config's commit, and the overview says so.
"""

from __future__ import annotations

import csv
import json
import os
import time
from types import SimpleNamespace

import ml_collections

from jaxcnn.ablation import detection_report, family
from jaxcnn.ablation.config import section as ablation_section
from jaxcnn.ablation.design import design_commit
from jaxcnn.ablation.protocol import checked_arms_of, extra_metrics, extras_of
from jaxcnn.ablation.report import claims_record, json_safe, write_claims, write_table
from jaxcnn.ablation.runner import PER_SEED_METRICS, score_claims
from jaxcnn.ablation.spec import parse_claim, rules_of
from jaxcnn.train.workdir import to_jsonable, write_atomic

# The engine's per-seed columns of results.csv (those the runner writes); every registered extra's metrics
# (Extra.metrics) are read too.
PER_SEED = {m: f"{m}_per_seed" for m in ("eval_accuracy",) + PER_SEED_METRICS}
_INT = ("params", "macs", "seeds", "steps", "batch_size", "eval_examples")


def read_rows(path: str) -> list[dict]:
    """results.csv as row dicts with numbers where the writer wrote numbers (an empty cell stays "")."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if v in ("", None) or k in ("arm", "model", "field") or k.endswith("_per_seed"):
                continue
            r[k] = int(float(v)) if k in _INT else float(v)
    return rows


def per_seed_values(rows: list[dict]) -> dict:
    """{(arm, metric): [per-seed values]} from results.csv rows ("inf": a censored steps_to_target)."""
    out, columns = {}, {**PER_SEED, **{m: f"{m}_per_seed" for m in extra_metrics()}}
    for r in rows:
        for metric, col in columns.items():
            if r.get(col):
                out[(r["arm"], metric)] = [float(x) for x in str(r[col]).split()]
        if (r["arm"], "eval_accuracy") in out:
            out[(r["arm"], "eval_error")] = [1.0 - x for x in out[(r["arm"], "eval_accuracy")]]
    return out


def score_result(outdir: str, adopt=None) -> dict:
    """The unadjusted claim rows and analyses of one committed result (see the module docstring)."""
    with open(os.path.join(outdir, "run.json")) as f:
        run = json.load(f)
    rows = read_rows(os.path.join(outdir, "results.csv"))
    values = per_seed_values(rows)
    labels = [r["arm"] for r in rows]
    name = run.get("ablation") or os.path.basename(outdir)
    stand_in, extras = _stand_in(run, labels)
    twin_arms = tuple(checked_arms_of(extras, stand_in) or ()) or None
    added = [row for e in extras for row in e.rescore(stand_in, run)]  # the extras' own rows (the twin check)
    own = {r["claim"] for r in added}
    adopted = None
    if adopt is not None:
        ab = adopt.ablation
        if [a["label"] for a in ab.arms] != labels or list(ab.seeds) != list(run["seeds"]):
            raise ValueError(f"{name}: the config's arms and seeds are not the result's; its claims cannot be "
                             "adopted (run the new design instead).")
        texts, rules = [str(t) for t in ab.claims], rules_of(adopt)
        adopted = {"claims_adopted_after_results": True, "config": design_commit(
            os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(outdir))), "ablations", f"{name}.py")),
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    else:
        texts = [c["claim"] for c in run["claims"] if c["claim"] not in own]
        rules = [(r["cell"], tuple(r["recommended"]), tuple(r["others"])) for r in run.get("rules", ())]
    claims = [parse_claim(t, set(labels), name) for t in texts]

    def get(arm, metric):
        return values[(arm, metric)]

    stored = {c["claim"]: c for c in run["claims"]}
    complete = [c for c in claims if (c.a, c.metric) in values and (c.b, c.metric) in values]
    scored = score_claims(complete, get, rules, twin_arms)
    by_text = {r["claim"]: r for r in scored["claims"]}
    for c in claims:
        if str(c) not in by_text:  # an older results.csv without this metric's per-seed values
            if str(c) not in stored:
                raise ValueError(f"{outdir}/results.csv has no per-seed {c.metric} for {c.a!r} or {c.b!r}, and "
                                 f"run.json no difference for {str(c)!r}: it cannot be scored again.")
            by_text[str(c)] = family.summary_row(c, stored[str(c)])
    scored["claims"] = [by_text[str(c)] for c in claims] + added
    # the claims of earlier results this one's design replaces (ablation.supersedes; family.mark_superseded)
    supersedes = list(stand_in.config.ablation.supersedes) if stand_in is not None else []
    return {"outdir": outdir, "run": run, "name": name, "supersedes": supersedes, "rows": rows, "adopted": adopted,
            **scored}


def _stand_in(run: dict, labels: list):
    """(a stand-in run with the committed config over the section's defaults and the arm labels, the extras that
    config uses), or (None, []) for a run.json without its ablation section."""
    stored = run.get("config") or {}
    if "ablation" not in stored:
        return None, []
    config = ml_collections.ConfigDict(_merged({"ablation": ablation_section().to_dict()}, stored))
    return SimpleNamespace(config=config, arms=[SimpleNamespace(label=label) for label in labels]), extras_of(config)


def _merged(defaults: dict, stored: dict) -> dict:
    """`stored` over `defaults`, nested dicts merged key by key (a run.json written before a key existed)."""
    out = dict(defaults)
    for key, value in stored.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def finish_rules(scored: dict) -> None:
    """The rule cells' family-wise verdicts, once apply_holm has set the claims' verdicts."""
    if scored.get("rules"):
        rules = [(r["cell"], tuple(r["recommended"]), tuple(r["others"])) for r in scored["rules"]]
        fw = family.rule_verdicts(rules, scored["claims"], key="verdict")
        un = family.rule_verdicts(rules, scored["claims"], key="verdict_unadjusted")
        scored["rules"] = [dict(f, verdict_unadjusted=u["verdict_unadjusted"]) for f, u in zip(fw, un)]


def write_result(scored: dict, family_info: dict, command: str) -> list[str]:
    """claims.csv, table.md and run.json's claim sections of one scored result, written again."""
    outdir, run = scored["outdir"], dict(scored["run"])
    finish_rules(scored)
    result = {"claims": scored["claims"], "family": family_info, "gap_parts": scored.get("gap_parts"),
              "steps_ratios": scored.get("steps_ratios"), "rules": scored.get("rules")}
    for key in ("gap_parts", "steps_ratios", "rules"):
        run.pop(key, None)
    run.update(claims_record(result))
    if scored.get("adopted"):
        run["claims_adopted"] = scored["adopted"]
    run["rescored"] = {"command": command, "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_claims(outdir, scored["claims"])
    write_table(os.path.join(outdir, "table.md"), scored["rows"], scored["claims"], run.get("tuning"),
                scored.get("rules") or (), {k: scored.get(k) for k in ("gap_parts", "steps_ratios")})
    write_atomic(os.path.join(outdir, "run.json"), json.dumps(json_safe(to_jsonable(run)), indent=2) + "\n")
    return [os.path.join(outdir, f) for f in ("claims.csv", "table.md", "run.json")]


def committed_results(results_dir: str) -> list[str]:
    """The folders under results_dir that hold a committed (not quick) result."""
    out = []
    for name in sorted(os.listdir(results_dir)):
        path = os.path.join(results_dir, name, "run.json")
        if os.path.exists(path):
            with open(path) as f:
                if json.load(f).get("quick") is False:
                    out.append(os.path.join(results_dir, name))
    return out


def rescore_all(results_dir: str, detection_dir: str | None = None, adopt: dict | None = None, command: str = "",
                log=print) -> dict:
    """Score every committed result under results_dir and the detection comparisons (detection_dir/results.json,
    when there) as one family, and write them all again. adopt: {name: config} whose claims replace the
    result's (see the module docstring). Returns {"size", "rows", "results"}."""
    adopt = adopt or {}
    unknown = sorted(set(adopt) - {os.path.basename(d) for d in committed_results(results_dir)})
    if unknown:
        raise ValueError(f"no committed result to adopt claims for: {unknown}.")
    scored = [score_result(d, adopt.get(os.path.basename(d))) for d in committed_results(results_dir)]
    det_results = None
    if detection_dir and os.path.exists(os.path.join(detection_dir, "results.json")):
        det_results = detection_report.load_results(detection_dir)
        detection_report.refresh_table(det_results["table"])
        det_results["claims"] = detection_report.score_claims(det_results["table"])
    family.mark_superseded({s["name"]: s["claims"] for s in scored}, {s["name"]: s["supersedes"] for s in scored})
    rows = [r for s in scored for r in s["claims"]] + (det_results["claims"] if det_results else [])
    size = family.apply_holm(rows)
    info = {"alpha": family.ALPHA, "method": "Holm's step-down", "size": size, "members": family.FAMILY,
            "checks": sum(r.get("kind") == family.CHECK for r in rows),
            "not_compared": sum(r.get("kind") == family.NOT_COMPARED for r in rows),
            "superseded": sum(r.get("kind") == family.SUPERSEDED for r in rows)}
    for s in scored:
        for path in write_result(s, info, command):
            log(f"wrote {path}")
    if det_results is not None:
        det_results["family"] = info
        detection_report.write_outputs(det_results, detection_dir)
        log(f"wrote {os.path.join(detection_dir, 'results.json')} and its tables")
    return {"size": size, "rows": rows, "results": scored, "family": info}
