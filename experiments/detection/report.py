"""The detection and segmentation tables, the paired comparisons and the sample pictures, from the workdirs
that experiments/detection/run.sh trained and scored.

    PYTHONPATH=$PWD python experiments/detection/report.py [--runs runs]

Writes experiments/detection/results.md (and the same tables into README.md's results block), results.json,
curves.png (training loss over steps), detections.png
and segmentation.png.

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
    from jaxcnn.ablation.runner import training_wall_seconds

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
                 carried=True, curve=None, stored_curve=row.get("curve"), wd=None)
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


def claims(all_runs, pairs):
    from jaxcnn.ablation.stats import paired_difference, verdict

    rows = []
    for a, b, metric in pairs:
        seeds = sorted(set(all_runs.get(a, {})) & set(all_runs.get(b, {})))
        va = [all_runs[a][s][metric] for s in seeds]
        vb = [all_runs[b][s][metric] for s in seeds]
        if len(seeds) >= 2:
            d = paired_difference(va, vb)
            rows.append({"claim": f"{metric}: {a} > {b}", "seeds": seeds, "mean_difference": d["mean"],
                         "ci95": [d["low"], d["high"]], "verdict": verdict(d, ">")})
        elif seeds:
            rows.append({"claim": f"{metric}: {a} > {b}", "seeds": seeds, "mean_difference": va[0] - vb[0],
                         "ci95": None, "verdict": "one seed: no interval"})
    return rows


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--runs", default=os.path.join(ROOT, "runs"))
    p.add_argument("--no-carry", action="store_true",
                   help="use the workdirs under --runs only (ignore the committed results.json)")
    args = p.parse_args(argv)
    committed = None
    if not args.no_carry and os.path.exists(os.path.join(HERE, "results.json")):
        with open(os.path.join(HERE, "results.json")) as f:
            committed = json.load(f)
    det = {m: runs_of(args.runs, "detection", m) for m, _ in DETECTORS}
    seg = {m: runs_of(args.runs, "segmentation", m) for m, _ in SEGMENTERS}
    for group, runs in (("detection", det), ("segmentation", seg)):
        for m in runs:
            if not runs[m]:
                runs[m] = carried_runs(committed, group, m)
    carried = sorted({m for g in (det, seg) for m, rs in g.items() if any(r.get("carried") for r in rs.values())})
    mark = lambda m: " †" if m in carried else ""  # noqa: E731
    lines = ["## Detection (test split: 2,000 canvases)", "",
             "| model | mAP@0.5 | mAP@[.5:.95] | test s / image | CNN passes / image | seeds | steps | train min / run |",
             "|---|---|---|---|---|---|---|---|"]
    table = {"detection": {}, "segmentation": {}}
    for m, label in DETECTORS:
        rs = list(det[m].values())
        if not rs:
            continue
        row = {"map50": [r["eval_map50"] for r in rs], "map": [r["eval_map"] for r in rs],
               "seconds_per_image": [r["seconds_per_image"] for r in rs],
               "passes": float(np.mean([r["cnn_passes_per_image"] for r in rs])),
               "seeds": sorted(det[m]), "train_minutes": [r["train_wall_seconds"] / 60 for r in rs],
               "steps": rs[0]["train_steps"], "ap50_per_class": [r["eval_ap50_per_class"] for r in rs],
               "curve": mean_curve(rs), "carried": m in carried}
        table["detection"][m] = row
        lines.append(f"| {label}{mark(m)} | {fmt(row['map50'])} | {fmt(row['map'])} | "
                     f"{np.median(row['seconds_per_image']) * 1000:.1f} ms | {row['passes']:.1f} | "
                     f"{','.join(map(str, row['seeds']))} | {row['steps']} | {np.mean(row['train_minutes']):.1f} |")
    lines += ["", "## Segmentation (test split: 2,000 canvases, 11 classes)", "",
              "| model | mean IoU | pixel accuracy | test s / image | seeds | steps | train min / run |",
              "|---|---|---|---|---|---|---|"]
    for m, label in SEGMENTERS:
        rs = list(seg[m].values())
        if not rs:
            continue
        row = {"mean_iou": [r["eval_mean_iou"] for r in rs], "pixel_accuracy": [r["eval_accuracy"] for r in rs],
               "seconds_per_image": [r["seconds_per_image"] for r in rs], "seeds": sorted(seg[m]),
               "train_minutes": [r["train_wall_seconds"] / 60 for r in rs], "steps": rs[0]["train_steps"],
               "iou_per_class": [r["eval_iou_per_class"] for r in rs], "curve": mean_curve(rs),
               "carried": m in carried}
        table["segmentation"][m] = row
        lines.append(f"| {label}{mark(m)} | {fmt(row['mean_iou'])} | {fmt(row['pixel_accuracy'])} | "
                     f"{np.median(row['seconds_per_image']) * 1000:.1f} ms | {','.join(map(str, row['seeds']))} | "
                     f"{row['steps']} | {np.mean(row['train_minutes']):.1f} |")
    cl = claims(det, DET_CLAIMS) + claims(seg, SEG_CLAIMS)
    lines += ["", "## Paired comparisons (difference of the means paired by seed, 95% CI from Student's t)", "",
              "| claim | seeds | mean difference | 95% CI | verdict |", "|---|---|---|---|---|"]
    for c in cl:
        ci = f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c["ci95"] else "n/a"
        lines.append(f"| {c['claim']} | {','.join(map(str, c['seeds']))} | {c['mean_difference']:+.3f} | {ci} | "
                     f"{c['verdict']} |")
    fresh = [r for g in (det, seg) for m in g.values() for r in m.values() if not r.get("carried")]
    loads = [r.get("load_average_before", [0])[0] for r in fresh] + [r.get("load_average_after", [0])[0]
                                                                      for r in fresh]
    if carried and (committed or {}).get("load_average_range"):
        loads += committed["load_average_range"]
    hw = next((r["hardware"] for r in fresh), (committed or {}).get("hardware", ""))
    lines += ["", f"Hardware: {hw}. 1-minute load average at the evaluations: {min(loads):.1f} .. {max(loads):.1f} "
                  "(a run's own threads count: about 2 here)." if loads else ""]
    if carried:
        lines += ["", "† per-seed numbers carried from the committed results.json (their workdirs were not on the "
                      "machine that wrote this table); paired with the others by seed."]
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    from jaxcnn.ablation.report import replace_block

    replace_block(os.path.join(HERE, "README.md"), MARKERS, "\n".join(lines).replace("\n## ", "\n### ")
                  .replace("## ", "### ", 1))
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump({"table": table, "claims": cl, "load_average_range": [min(loads), max(loads)] if loads else None,
                   "hardware": hw}, f, indent=1)
    draw_curves(table, os.path.join(HERE, "curves.png"))
    names, path = pictures(det, table["detection"], DETECTORS, "detections")
    if path:
        draw_detections(det, names, path)
    names, path = pictures(seg, table["segmentation"], SEGMENTERS, "segmentation")
    if path:
        draw_segmentation(seg, names, path)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
