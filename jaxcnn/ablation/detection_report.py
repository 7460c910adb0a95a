"""The detection and segmentation results of experiments/detection as tables and paired comparisons: the claims
of its results.json, scored by seed and written back (results.json, results.md and README.md's results block of
the folder given). experiments/detection/report.py draws the pictures and is the command line over it;
jaxcnn.ablation.rescore scores these claims in one family with every committed ablation.

    results = load_results("experiments/detection")
    refresh_table(results["table"])
    results["claims"] = score_claims(results["table"])   # unadjusted; family.apply_holm sets p_holm
    write_outputs(results, "experiments/detection")

Segmentation: `miou` is the mean IoU over all 11 classes, background (class 0) included, as the task's
eval_mean_iou; `miou_foreground` over the 10 garment classes, without background, both from the per-class IoUs
stored for every run. A row's `code_version` is the commit its runs recorded as trained and scored by (their
config.json and eval_test.json provenance); two rows of different code versions are not compared: the
comparison is listed as "not compared" and left out of the family.
"""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np

from jaxcnn.ablation.stats import compare, mean_std, p_text
from jaxcnn.train.records import replace_block, training_wall_seconds
from jaxcnn.train.workdir import write_atomic

MARKERS = ("<!-- results:start -->", "<!-- results:end -->")  # README.md's block of the tables
DETECTORS = [("rcnn", "R-CNN"), ("spp_net", "SPP-net"), ("fast_rcnn", "Fast R-CNN"), ("yolov1", "YOLOv1"),
             ("spp_net_stride4", "SPP-net, stride 4"), ("fast_rcnn_stride4", "Fast R-CNN, stride 4")]
SEGMENTERS = [("fcn32s", "FCN-32s"), ("fcn16s", "FCN-16s"), ("fcn8s", "FCN-8s"), ("segnet", "SegNet")]
DET_CLAIMS = [("fast_rcnn", "rcnn", "eval_map50"), ("spp_net", "rcnn", "eval_map50"),
              ("fast_rcnn", "yolov1", "eval_map50"), ("fast_rcnn", "spp_net", "eval_map50"),
              # the finer map (stride 4): does it lift the region-pooling methods, and past R-CNN?
              ("fast_rcnn_stride4", "fast_rcnn", "eval_map50"), ("spp_net_stride4", "spp_net", "eval_map50"),
              ("fast_rcnn_stride4", "rcnn", "eval_map50")]
SEG_CLAIMS = [("fcn16s", "fcn32s", "eval_mean_iou"), ("fcn8s", "fcn16s", "eval_mean_iou"),
              ("fcn8s", "fcn32s", "eval_mean_iou"), ("segnet", "fcn8s", "eval_mean_iou")]


def run_code_version(config_record, eval_record):
    """The code of one run: the commit that trained it (its config.json's provenance) and, when another
    commit scored it (eval_test.json's), "TRAIN scored at EVAL"; "+changes" after a commit whose checkout had
    uncommitted changes. None when neither record names a commit."""
    commits = []
    for rec in (config_record, eval_record):
        p = (rec or {}).get("provenance") or {}
        if p.get("git_commit"):
            commits.append(p["git_commit"] + ("+changes" if p.get("git_dirty") else ""))
    if not commits:
        return None
    return commits[0] if len(set(commits)) == 1 else f"{commits[0]} scored at {commits[1]}"


def row_code_version(runs, fallback):
    """A row's code version from its runs' own records: the one they share; "mixed: A, B" when its seeds ran on
    different code (such a row compares with no row but its equal); `fallback` (the checkout scoring them) for
    runs that recorded none."""
    versions = sorted({r.get("code_version") or fallback for r in runs})
    return versions[0] if len(versions) == 1 else "mixed: " + ", ".join(versions)


def runs_of(root, group, name):
    out = {}
    for wd in sorted(glob.glob(os.path.join(root, group, name, "seed*"))):
        path = os.path.join(wd, "eval_test.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            r = json.load(f)
        with open(os.path.join(wd, "metrics.jsonl")) as f:
            recs = [json.loads(line) for line in f if line.strip()]
        r["train_wall_seconds"] = training_wall_seconds(recs)  # every piece of a resumed run
        train = [x for x in recs if "train_loss" in x]
        r["curve"] = ([x["step"] for x in train], [x["train_loss"] for x in train])
        r["train_steps"] = max(x["step"] for x in recs)
        with open(os.path.join(wd, "config.json")) as f:
            r["config_record"] = json.load(f)
        r["code_version"] = run_code_version(r["config_record"], r)
        r["seed"] = int(re.sub(r"\D", "", os.path.basename(wd)))
        r["wd"] = wd
        out[r["seed"]] = r
    return out


CURVE_POINTS = 200  # loss curve points kept per model in results.json


ROW_KEYS = {"detection": {"map50": "eval_map50", "map": "eval_map", "seconds_per_image": "seconds_per_image",
                          "ap50_per_class": "eval_ap50_per_class"},
            "segmentation": {"mean_iou": "eval_mean_iou", "pixel_accuracy": "eval_accuracy",
                             "seconds_per_image": "seconds_per_image", "iou_per_class": "eval_iou_per_class"}}


def carried_runs(committed, group, name):
    """Per-seed records rebuilt from a committed results.json row (empty when it has none for this model)."""
    row = (committed or {}).get("table", {}).get(group, {}).get(name)
    if not row:
        return {}
    out = {}
    for i, seed in enumerate(row["seeds"]):
        r = {metric: row[key][i] for key, metric in ROW_KEYS[group].items() if key in row}
        r.update(seed=seed, train_wall_seconds=row["train_minutes"][i] * 60, train_steps=row["steps"],
                 carried=True, curve=None, stored_curve=row.get("curve"), wd=None,
                 code_version=row.get("code_version"))
        if group == "detection":
            r["cnn_passes_per_image"] = row["passes"]
        out[seed] = r
    return out


def mean_curve(rs):
    """(steps, mean, min, max) of the training loss over seeds, at most CURVE_POINTS points; a carried row's
    stored curve as it was."""
    if any(r.get("carried") for r in rs):
        return rs[0].get("stored_curve")
    n = min(len(r["curve"][0]) for r in rs)
    take = np.unique(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(int))
    loss = np.array([r["curve"][1][:n] for r in rs])[:, take]
    return {"steps": [int(x) for x in np.array(rs[0]["curve"][0][:n])[take]], "mean": loss.mean(0).tolist(),
            "min": loss.min(0).tolist(), "max": loss.max(0).tolist()}


def fmt(values, digits=3):
    if not values:
        return "n/a"
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def claims(all_runs, pairs, versions=None):
    """The paired comparisons "metric: a > b" (unadjusted: p value, verdict_unadjusted; verdict is the same
    until the family is scored). versions: {model: code_version}; models of different versions are not
    compared (kind "not compared", verdict says why)."""
    rows = []
    for a, b, metric in pairs:
        seeds = sorted(set(all_runs.get(a, {})) & set(all_runs.get(b, {})))
        va = [all_runs[a][s][metric] for s in seeds]
        vb = [all_runs[b][s][metric] for s in seeds]
        name = f"{metric}: {a} > {b}"
        va_, vb_ = (versions or {}).get(a), (versions or {}).get(b)
        if len(seeds) >= 2:
            c = compare(va, vb, ">")
            d = c["difference"]
            row = {"claim": name, "seeds": seeds, "mean_difference": d["mean"], "ci95": [d["low"], d["high"]],
                   "difference": d, "p_value": c["p_value"], "p_holm": None, "verdict": c["verdict_unadjusted"],
                   "verdict_unadjusted": c["verdict_unadjusted"], "kind": "claim"}
            if va_ and vb_ and va_ != vb_:
                why = f"not compared: trained by different code versions ({a} {va_[:7]}, {b} {vb_[:7]})"
                row.update(kind="not compared", verdict=why, verdict_unadjusted=why, p_value=None)
            rows.append(row)
        elif seeds:
            rows.append({"claim": name, "seeds": seeds, "mean_difference": va[0] - vb[0], "ci95": None,
                         "verdict": "one seed: no interval", "kind": "not compared", "p_value": None, "p_holm": None})
    return rows


def foreground_miou(iou_per_class) -> float:
    """The mean IoU over the garment classes 1..10, without background (class 0); None (a class absent from
    prediction and truth) left out."""
    values = [v for v in list(iou_per_class)[1:] if v is not None]
    return float(np.mean(values)) if values else 0.0


def build_table(det, seg, carried, version):
    """results.json's table from the runs (fresh and carried) of every model. version: the code version of
    fresh runs that recorded none (the checkout scoring them); carried rows keep theirs."""
    table = {"detection": {}, "segmentation": {}}
    for m, _ in DETECTORS:
        rs = list(det[m].values())
        if not rs:
            continue
        table["detection"][m] = {
            "map50": [r["eval_map50"] for r in rs], "map": [r["eval_map"] for r in rs],
            "seconds_per_image": [r["seconds_per_image"] for r in rs],
            "passes": float(np.mean([r["cnn_passes_per_image"] for r in rs])),
            "seeds": sorted(det[m]), "train_minutes": [r["train_wall_seconds"] / 60 for r in rs],
            "steps": rs[0]["train_steps"], "ap50_per_class": [r["eval_ap50_per_class"] for r in rs],
            "curve": mean_curve(rs), "carried": m in carried,
            "code_version": rs[0].get("code_version") if m in carried else row_code_version(rs, version)}
    for m, _ in SEGMENTERS:
        rs = list(seg[m].values())
        if not rs:
            continue
        table["segmentation"][m] = {
            "mean_iou": [r["eval_mean_iou"] for r in rs],
            "miou": [r["eval_mean_iou"] for r in rs],
            "miou_foreground": [foreground_miou(r["eval_iou_per_class"]) for r in rs],
            "pixel_accuracy": [r["eval_accuracy"] for r in rs],
            "seconds_per_image": [r["seconds_per_image"] for r in rs], "seeds": sorted(seg[m]),
            "train_minutes": [r["train_wall_seconds"] / 60 for r in rs], "steps": rs[0]["train_steps"],
            "iou_per_class": [r["eval_iou_per_class"] for r in rs], "curve": mean_curve(rs),
            "carried": m in carried,
            "code_version": rs[0].get("code_version") if m in carried else row_code_version(rs, version)}
    return table


def refresh_table(table) -> None:
    """Fields a table written by an earlier report lacks, from what it stores: a segmentation row's miou (its
    mean_iou: 11 classes, background included) and miou_foreground (from its per-class IoUs)."""
    for row in table.get("segmentation", {}).values():
        row.setdefault("miou", list(row["mean_iou"]))
        if "iou_per_class" in row:
            row["miou_foreground"] = [foreground_miou(ious) for ious in row["iou_per_class"]]


def score_claims(table):
    """The paired comparisons (unadjusted) from results.json's table alone: per-seed values by seed."""
    def runs(group, key, metric):
        return {m: {s: {metric: v} for s, v in zip(row["seeds"], row[key])} for m, row in table[group].items()}

    versions = {m: row.get("code_version") for g in table.values() for m, row in g.items()}
    return (claims(runs("detection", "map50", "eval_map50"), DET_CLAIMS, versions)
            + claims(runs("segmentation", "mean_iou", "eval_mean_iou"), SEG_CLAIMS, versions))


def short(v) -> str:
    """A code version for a table: a commit as 7 characters, "+" for uncommitted changes; "A (scored B)"; a
    mixed row as it is."""
    if not v or v.startswith("mixed"):
        return v or "?"
    one = lambda c: c[:7] + ("+" if c.endswith("+changes") else "")  # noqa: E731
    trained, _, scored = v.partition(" scored at ")
    return one(trained) + (f" (scored {one(scored)})" if scored else "")


def render(results) -> str:
    """The Markdown tables of results.json's content: detection, segmentation (mIoU with and without
    background), the paired comparisons (p, p_holm, both verdicts), hardware and the marks."""
    table, cl = results["table"], results["claims"]
    mark = lambda row: " †" if row.get("carried") else ""  # noqa: E731
    test_ms = lambda row: f"{np.median(row['seconds_per_image']) * 1000:.1f} ms"  # noqa: E731

    def run_cells(row):  # the cells both tables end with: seeds, steps, training minutes per run, code version
        return (f"{','.join(map(str, row['seeds']))} | {row['steps']} | {np.mean(row['train_minutes']):.1f} | "
                f"{short(row.get('code_version'))} |")

    lines = ["## Detection (test split: 2,000 canvases)", "",
             "| model | mAP@0.5 | mAP@[.5:.95] | test s / image | CNN passes / image | seeds | steps | train min / run "
             "| code |", "|---|---|---|---|---|---|---|---|---|"]
    for m, label in DETECTORS:
        row = table["detection"].get(m)
        if row:
            lines.append(f"| {label}{mark(row)} | {fmt(row['map50'])} | {fmt(row['map'])} | {test_ms(row)} | "
                         f"{row['passes']:.1f} | {run_cells(row)}")
    lines += ["", "## Segmentation (test split: 2,000 canvases, 11 classes: background and 10 garments)", "",
              "| model | mIoU (11 classes, with background) | mIoU (10 garment classes, without) | pixel accuracy | "
              "test s / image | seeds | steps | train min / run | code |", "|---|---|---|---|---|---|---|---|---|"]
    for m, label in SEGMENTERS:
        row = table["segmentation"].get(m)
        if row:
            lines.append(f"| {label}{mark(row)} | {fmt(row.get('miou', row['mean_iou']))} | "
                         f"{fmt(row['miou_foreground']) if 'miou_foreground' in row else 'n/a'} | "
                         f"{fmt(row['pixel_accuracy'])} | {test_ms(row)} | {run_cells(row)}")
    lines += ["", "## Paired comparisons (difference of the means paired by seed, 95% CI from Student's t; p: "
                  "two-sided paired t; p_holm: Holm over the whole family, experiments/README.md)", "",
              "| claim | seeds | mean difference | 95% CI | p | p_holm | verdict (Holm, family) "
              "| verdict (unadjusted) |",
              "|---|---|---|---|---|---|---|---|"]
    for c in cl:
        ci = f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c.get("ci95") else "n/a"
        lines.append(f"| {c['claim']} | {','.join(map(str, c['seeds']))} | {c['mean_difference']:+.3f} | {ci} | "
                     f"{p_text(c.get('p_value'))} | {p_text(c.get('p_holm'))} | {c['verdict']} | "
                     f"{c.get('verdict_unadjusted', '')} |")
    loads, hw = results.get("load_average_range"), results.get("hardware", "")
    if loads:
        lines += ["", f"Hardware: {hw}. 1-minute load average at the evaluations: {loads[0]:.1f} .. {loads[1]:.1f} "
                      "(a run's own threads count: about 2 here)."]
    if any(row.get("carried") for g in table.values() for row in g.values()):
        lines += ["", "† per-seed numbers carried from the committed results.json (their workdirs were not on the "
                      "machine that wrote this table); paired with the others by seed."]
    if len({row.get("code_version") for g in table.values() for row in g.values()}) > 1:
        lines += ["", "code: the commit of the code that trained and scored the row. Rows of different code "
                      "versions are not compared (\"not compared\" above, outside the family of claims); "
                      "rerunning them on one version would compare them."]
    return "\n".join(lines)


BEFORE = "results_design1.json"  # design I's record (the papers' recipes not yet followed), outside the family
BEFORE_METRICS = {"detection": [("map50", "mAP@0.5"), ("map", "mAP@[.5:.95]")],
                  "segmentation": [("miou", "mIoU (11 classes)"), ("miou_foreground", "mIoU (10 garments)")]}


def render_before_after(before, after) -> str:
    """Design I ("before") beside design II ("after") for every model rerun since: mean ± sd over seeds of each
    headline metric and the code version of each. Not a claim: the two differ in recipe and in code, so the
    rows are shown side by side and never paired. "" while no model has been rerun (every row of `after`
    trained by the code of its `before` row)."""
    lines = []
    for group, metrics in BEFORE_METRICS.items():
        names = DETECTORS if group == "detection" else SEGMENTERS
        rows = []
        for m, label in names:
            b, a = before["table"].get(group, {}).get(m), after["table"].get(group, {}).get(m)
            if not b or not a or a.get("code_version") == b.get("code_version"):
                continue
            if group == "segmentation":
                b = dict(b)  # a copy: design I's record stores no miou fields; refresh_table derives them
                refresh_table({"segmentation": {m: b}})
            cells = [f"{fmt(b[k]) if k in b else 'n/a'} → {fmt(a[k]) if k in a else 'n/a'}" for k, _ in metrics]
            code = f"{short(b.get('code_version'))} → {short(a.get('code_version'))}"
            rows.append(f"| {label} | {' | '.join(cells)} | {len(b['seeds'])} → {len(a['seeds'])} | "
                        f"{b['steps']} → {a['steps']} | {code} |")
        if rows:
            lines += [f"| {group} model | " + " | ".join(f"{t}, before → after" for _, t in metrics)
                      + " | seeds | steps | code |", "|---" * (len(metrics) + 4) + "|"] + rows + [""]
    if not lines:
        return ""
    return "\n".join(["## Before and after: design I's recipes → design II's (the papers')", "",
                      "Each model's mean ± sd over its seeds, design I (" + BEFORE + ", results_design1.md) beside "
                      "design II (the tables above). Not compared: the designs differ in recipe and in code, so "
                      "no difference here is a claim.", ""] + lines[:-1])


def write_outputs(results, detection_dir: str) -> None:
    """results.json, results.md and README.md's results block under `detection_dir` from `results` (table,
    claims, loads, hardware); with design I's record (results_design1.json) in the folder, the before/after
    table of the models rerun since (render_before_after)."""
    text = render(results)
    if os.path.exists(os.path.join(detection_dir, BEFORE)):
        extra = render_before_after(load_results(detection_dir, BEFORE), results)
        if extra:
            text += "\n\n" + extra
    write_atomic(os.path.join(detection_dir, "results.md"), text + "\n")
    replace_block(os.path.join(detection_dir, "README.md"), MARKERS,
                  text.replace("\n## ", "\n### ").replace("## ", "### ", 1))
    write_atomic(os.path.join(detection_dir, "results.json"), json.dumps(results, indent=1) + "\n")


def load_results(detection_dir: str, name: str = "results.json") -> dict:
    """detection_dir/results.json (or another record of the folder, e.g. design I's BEFORE)."""
    with open(os.path.join(detection_dir, name)) as f:
        return json.load(f)
