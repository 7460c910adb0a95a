"""The detection and segmentation tables, the paired comparisons and the sample pictures, from the workdirs
that experiments/detection/run.sh trained and scored.

    PYTHONPATH=$PWD python experiments/detection/report.py [--runs runs]
    PYTHONPATH=$PWD python experiments/detection/report.py --rescore   # the tables again from results.json

Writes experiments/detection/results.md (and the same tables into README.md's results block), results.json,
curves.png (training loss over steps), detections.png
and segmentation.png. Then every claim of experiments/results and of this report is scored as one family
(Holm's step-down, jaxcnn.ablation.rescore): each comparison has its p value, p_holm and both verdicts.

Segmentation: `miou` is the mean IoU over all 11 classes, background (class 0) included, as the task's
eval_mean_iou; `miou_foreground` over the 10 garment classes, without background, both from the per-class IoUs
stored for every run. Each row records `code_version`, the commit of the code that trained and scored it (the
checkout that ran this report, for runs scored here; kept from results.json for carried rows). Two rows of
different code versions are not compared: the comparison is listed as "not compared" and left out of the family.

A model with no workdir under --runs keeps the per-seed numbers (and the loss curve, where recorded) of the
committed results.json, marked † in the tables: runs added later (a new variant, more seeds) are then compared
with the committed ones by seed without training those again. The pictures of sample predictions are drawn from
workdirs only: when some models are carried, the new models' samples go to detections_NAME_... .png and the
committed pictures stay.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

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


def runs_of(root, group, name):
    from jaxcnn.train.records import training_wall_seconds

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
    from jaxcnn.ablation.stats import mean_std

    if not values:
        return "n/a"
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def claims(all_runs, pairs, versions=None):
    """The paired comparisons "metric: a > b" (unadjusted: p value, verdict_unadjusted; verdict is the same
    until the family is scored). versions: {model: code_version}; models of different versions are not
    compared (kind "not compared", verdict says why)."""
    from jaxcnn.ablation.stats import compare

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


def code_version() -> str:
    """The commit of this checkout (the code that scores the runs found here), with "+changes" when it has
    uncommitted changes under jaxcnn/ or experiments/; "unknown" without git."""
    import subprocess

    def git(*args):
        try:
            r = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    if not head:
        return "unknown"
    dirty = git("status", "--porcelain", "--", "jaxcnn", "experiments/configs")
    return head + ("+changes" if dirty else "")


def draw_curves(table, path):
    """Training loss over steps per model (mean over seeds, the band min..max): the curves that say whether a
    budget let a model flatten. Models carried without a recorded curve are named in the panel's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (title, names) in zip(axes, (("detection", DETECTORS), ("segmentation", SEGMENTERS))):
        missing = []
        for m, label in names:
            row = table[title].get(m)
            if not row:
                continue
            c = row.get("curve")
            if not c:
                missing.append(label)
                continue
            line, = ax.plot(c["steps"], c["mean"], label=f"{label} ({len(row['seeds'])} seeds)")
            ax.fill_between(c["steps"], c["min"], c["max"], color=line.get_color(), alpha=0.2)
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("training loss (log scale; each model its own loss)")
        ax.set_title(title + (f"\n(no curve recorded for {', '.join(missing)}:\nsee curves_{title}_first.png)"
                              if missing else ""), fontsize=9 if missing else None)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw_detections(all_runs, names, path, k=4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxcnn.data import datasets
    from jaxcnn.data.fashion_mnist import CLASS_NAMES

    test = datasets.load("fashion_mnist_detection", "test")
    fig, axes = plt.subplots(len(names), k, figsize=(2.6 * k, 2.7 * len(names)), squeeze=False)
    for row, (m, label) in enumerate(names):
        s = np.load(os.path.join(all_runs[m][0]["wd"], "samples_test.npz"))
        for j in range(k):
            ax = axes[row, j]
            ax.imshow(test.images[j, :, :, 0], cmap="gray", vmin=0, vmax=255)
            for b, c in zip(test.labels["boxes"][j], test.labels["classes"][j]):
                if c >= 0:
                    ax.add_patch(plt.Rectangle((b[0] - 0.5, b[1] - 0.5), b[2] - b[0], b[3] - b[1], fill=False,
                                               ec="lime", lw=1.2, ls="--"))
            keep = s["det_keep"][j] & (s["det_scores"][j] >= 0.5)
            for b, sc, c in zip(s["det_boxes"][j][keep], s["det_scores"][j][keep], s["det_classes"][j][keep]):
                ax.add_patch(plt.Rectangle((b[0] - 0.5, b[1] - 0.5), b[2] - b[0], b[3] - b[1], fill=False, ec="red",
                                           lw=1.2))
                ax.text(b[0], b[1] - 1, f"{CLASS_NAMES[int(c)].split('/')[0]} {sc:.2f}", color="red", fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label)
    fig.suptitle("test canvases, seed 0: ground truth (green, dashed), detections with score >= 0.5 (red)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw_segmentation(all_runs, names, path, k=5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from jaxcnn.data import datasets

    test = datasets.load("fashion_mnist_segmentation", "test")
    cmap = ListedColormap(["black"] + [plt.get_cmap("tab10")(i) for i in range(10)])
    rows = 2 + len(names)
    fig, axes = plt.subplots(rows, k, figsize=(2.2 * k, 2.2 * rows), squeeze=False)
    for j in range(k):
        axes[0, j].imshow(test.images[j, :, :, 0], cmap="gray", vmin=0, vmax=255)
        axes[1, j].imshow(test.labels[j], cmap=cmap, vmin=0, vmax=10, interpolation="nearest")
    for r, (m, label) in enumerate(names, start=2):
        pred = np.load(os.path.join(all_runs[m][0]["wd"], "samples_test.npz"))["prediction"]
        for j in range(k):
            axes[r, j].imshow(pred[j], cmap=cmap, vmin=0, vmax=10, interpolation="nearest")
    for r, label in enumerate(["image", "truth"] + [lab for _, lab in names]):
        axes[r, 0].set_ylabel(label)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("test canvases, seed 0: per-pixel classes (black background, one colour per garment class)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def pictures(all_runs, table_group, names, stem):
    """(names, path) of the sample picture to draw: the committed picture's own path when every model of the
    table has its seed-0 workdir here, else a new file for the models that have one (the committed one stays)."""
    have = [(m, label) for m, label in names if 0 in all_runs.get(m, {}) and not all_runs[m][0].get("carried")]
    if not have:
        return [], None
    if len(have) == len([m for m, _ in names if m in table_group]):
        return have, os.path.join(HERE, f"{stem}.png")
    return have, os.path.join(HERE, f"{stem}_{'_'.join(m for m, _ in have)}.png")


def build_table(det, seg, carried, version):
    """results.json's table from the runs (fresh and carried) of every model."""
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
            "code_version": rs[0].get("code_version") if m in carried else version}
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
            "carried": m in carried, "code_version": rs[0].get("code_version") if m in carried else version}
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


def render(results) -> str:
    """The Markdown tables of results.json's content: detection, segmentation (mIoU with and without
    background), the paired comparisons (p, p_holm, both verdicts), hardware and the marks."""
    from jaxcnn.ablation.report import p_text

    table, cl = results["table"], results["claims"]
    short = lambda v: (v or "?")[:7] + ("+" if v and v.endswith("+changes") else "")  # noqa: E731
    mark = lambda row: " †" if row.get("carried") else ""  # noqa: E731
    lines = ["## Detection (test split: 2,000 canvases)", "",
             "| model | mAP@0.5 | mAP@[.5:.95] | test s / image | CNN passes / image | seeds | steps | train min / run "
             "| code |", "|---|---|---|---|---|---|---|---|---|"]
    for m, label in DETECTORS:
        row = table["detection"].get(m)
        if row:
            lines.append(f"| {label}{mark(row)} | {fmt(row['map50'])} | {fmt(row['map'])} | "
                         f"{np.median(row['seconds_per_image']) * 1000:.1f} ms | {row['passes']:.1f} | "
                         f"{','.join(map(str, row['seeds']))} | {row['steps']} | {np.mean(row['train_minutes']):.1f} | "
                         f"{short(row.get('code_version'))} |")
    lines += ["", "## Segmentation (test split: 2,000 canvases, 11 classes: background and 10 garments)", "",
              "| model | mIoU (11 classes, with background) | mIoU (10 garment classes, without) | pixel accuracy | "
              "test s / image | seeds | steps | train min / run | code |", "|---|---|---|---|---|---|---|---|---|"]
    for m, label in SEGMENTERS:
        row = table["segmentation"].get(m)
        if row:
            lines.append(f"| {label}{mark(row)} | {fmt(row.get('miou', row['mean_iou']))} | "
                         f"{fmt(row['miou_foreground']) if 'miou_foreground' in row else 'n/a'} | "
                         f"{fmt(row['pixel_accuracy'])} | {np.median(row['seconds_per_image']) * 1000:.1f} ms | "
                         f"{','.join(map(str, row['seeds']))} | {row['steps']} | "
                         f"{np.mean(row['train_minutes']):.1f} | {short(row.get('code_version'))} |")
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


def write_outputs(results) -> None:
    """results.json, results.md and README.md's results block from `results` (table, claims, loads, hardware)."""
    from jaxcnn.train.records import replace_block
    from jaxcnn.train.workdir import write_atomic

    text = render(results)
    write_atomic(os.path.join(HERE, "results.md"), text + "\n")
    replace_block(os.path.join(HERE, "README.md"), MARKERS, text.replace("\n## ", "\n### ").replace("## ", "### ", 1))
    write_atomic(os.path.join(HERE, "results.json"), json.dumps(results, indent=1) + "\n")


def load_results():
    with open(os.path.join(HERE, "results.json")) as f:
        return json.load(f)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--runs", default=os.path.join(ROOT, "runs"))
    p.add_argument("--no-carry", action="store_true",
                   help="use the workdirs under --runs only (ignore the committed results.json)")
    p.add_argument("--rescore", action="store_true",
                   help="no workdirs: the comparisons and tables again from the committed results.json, and the "
                        "family of claims scored again (python scripts/ablate.py --rescore does the same)")
    args = p.parse_args(argv)
    if args.rescore:
        return _rescore_family()
    committed = None
    if not args.no_carry and os.path.exists(os.path.join(HERE, "results.json")):
        committed = load_results()
    det = {m: runs_of(args.runs, "detection", m) for m, _ in DETECTORS}
    seg = {m: runs_of(args.runs, "segmentation", m) for m, _ in SEGMENTERS}
    for group, runs in (("detection", det), ("segmentation", seg)):
        for m in runs:
            if not runs[m]:
                runs[m] = carried_runs(committed, group, m)
    carried = sorted({m for g in (det, seg) for m, rs in g.items() if any(r.get("carried") for r in rs.values())})
    table = build_table(det, seg, carried, code_version())
    fresh = [r for g in (det, seg) for m in g.values() for r in m.values() if not r.get("carried")]
    loads = [r.get("load_average_before", [0])[0] for r in fresh] + [r.get("load_average_after", [0])[0]
                                                                      for r in fresh]
    if carried and (committed or {}).get("load_average_range"):
        loads += committed["load_average_range"]
    hw = next((r["hardware"] for r in fresh), (committed or {}).get("hardware", ""))
    results = {"table": table, "claims": score_claims(table),
               "load_average_range": [min(loads), max(loads)] if loads else None, "hardware": hw}
    write_outputs(results)
    draw_curves(table, os.path.join(HERE, "curves.png"))
    names, path = pictures(det, table["detection"], DETECTORS, "detections")
    if path:
        draw_detections(det, names, path)
    names, path = pictures(seg, table["segmentation"], SEGMENTERS, "segmentation")
    if path:
        draw_segmentation(seg, names, path)
    return _rescore_family()


def _rescore_family() -> int:
    """Every claim of experiments/results and of results.json as one family (jaxcnn.ablation.rescore)."""
    from jaxcnn.ablation.rescore import rescore_all

    rescore_all(os.path.join(ROOT, "experiments", "results"), HERE,
                command="python experiments/detection/report.py --rescore", log=print)
    print(render(load_results()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
