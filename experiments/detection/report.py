"""The detection and segmentation tables, the paired comparisons and the sample pictures, from the workdirs
that experiments/detection/run.sh trained and scored.

    PYTHONPATH=$PWD python experiments/detection/report.py [--runs runs]

Writes experiments/detection/results.md (and the same tables into README.md's results block), results.json,
curves.png (training loss over steps), detections.png
and segmentation.png.
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
    out = {}
    for wd in sorted(glob.glob(os.path.join(root, group, name, "seed*"))):
        path = os.path.join(wd, "eval_test.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            r = json.load(f)
        with open(os.path.join(wd, "metrics.jsonl")) as f:
            recs = [json.loads(line) for line in f if line.strip()]
        r["train_wall_seconds"] = max(x.get("wall_time_sec", 0) for x in recs)
        train = [x for x in recs if "train_loss" in x]
        r["curve"] = ([x["step"] for x in train], [x["train_loss"] for x in train])
        r["train_steps"] = max(x["step"] for x in recs)
        with open(os.path.join(wd, "config.json")) as f:
            r["config_record"] = json.load(f)
        r["seed"] = int(re.sub(r"\D", "", os.path.basename(wd)))
        r["wd"] = wd
        out[r["seed"]] = r
    return out


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


def draw_curves(det, seg, path):
    """Training loss over steps per model (mean over seeds, the band min..max): the curves that say whether a
    budget let a model flatten."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (title, runs, names) in zip(axes, (("detection", det, DETECTORS), ("segmentation", seg, SEGMENTERS))):
        for m, label in names:
            rs = list(runs.get(m, {}).values())
            if not rs:
                continue
            n = min(len(r["curve"][0]) for r in rs)
            steps = np.array(rs[0]["curve"][0][:n])
            loss = np.array([r["curve"][1][:n] for r in rs])
            line, = ax.plot(steps, loss.mean(0), label=f"{label} ({len(rs)} seeds)")
            ax.fill_between(steps, loss.min(0), loss.max(0), color=line.get_color(), alpha=0.2)
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("training loss (log scale; each model its own loss)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw_detections(all_runs, root, path, k=4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxcnn.data import datasets
    from jaxcnn.data.fashion_mnist import CLASS_NAMES

    test = datasets.load("fashion_mnist_detection", "test")
    names = [(m, label) for m, label in DETECTORS if 0 in all_runs.get(m, {})]
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


def draw_segmentation(all_runs, path, k=5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from jaxcnn.data import datasets

    test = datasets.load("fashion_mnist_segmentation", "test")
    names = [(m, label) for m, label in SEGMENTERS if 0 in all_runs.get(m, {})]
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--runs", default=os.path.join(ROOT, "runs"))
    args = p.parse_args(argv)
    det = {m: runs_of(args.runs, "detection", m) for m, _ in DETECTORS}
    seg = {m: runs_of(args.runs, "segmentation", m) for m, _ in SEGMENTERS}
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
               "steps": rs[0]["train_steps"], "ap50_per_class": [r["eval_ap50_per_class"] for r in rs]}
        table["detection"][m] = row
        lines.append(f"| {label} | {fmt(row['map50'])} | {fmt(row['map'])} | "
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
               "iou_per_class": [r["eval_iou_per_class"] for r in rs]}
        table["segmentation"][m] = row
        lines.append(f"| {label} | {fmt(row['mean_iou'])} | {fmt(row['pixel_accuracy'])} | "
                     f"{np.median(row['seconds_per_image']) * 1000:.1f} ms | {','.join(map(str, row['seeds']))} | "
                     f"{row['steps']} | {np.mean(row['train_minutes']):.1f} |")
    cl = claims(det, DET_CLAIMS) + claims(seg, SEG_CLAIMS)
    lines += ["", "## Paired comparisons (difference of the means paired by seed, 95% CI from Student's t)", "",
              "| claim | seeds | mean difference | 95% CI | verdict |", "|---|---|---|---|---|"]
    for c in cl:
        ci = f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c["ci95"] else "n/a"
        lines.append(f"| {c['claim']} | {','.join(map(str, c['seeds']))} | {c['mean_difference']:+.3f} | {ci} | "
                     f"{c['verdict']} |")
    loads = [r.get("load_average_before", [0])[0] for g in (det, seg) for m in g.values() for r in m.values()]
    loads += [r.get("load_average_after", [0])[0] for g in (det, seg) for m in g.values() for r in m.values()]
    hw = next((r["hardware"] for g in (det, seg) for m in g.values() for r in m.values()), "")
    lines += ["", f"Hardware: {hw}. 1-minute load average at the evaluations: {min(loads):.1f} .. {max(loads):.1f} "
                  "(a run's own threads count: about 2 here)." if loads else ""]
    with open(os.path.join(HERE, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    from jaxcnn.ablation.report import replace_block

    replace_block(os.path.join(HERE, "README.md"), MARKERS, "\n".join(lines).replace("\n## ", "\n### ")
                  .replace("## ", "### ", 1))
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump({"table": table, "claims": cl, "load_average_range": [min(loads), max(loads)] if loads else None,
                   "hardware": hw}, f, indent=1)
    draw_curves(det, seg, os.path.join(HERE, "curves.png"))
    if any(0 in v for v in det.values()):
        draw_detections(det, args.runs, os.path.join(HERE, "detections.png"))
    if any(0 in v for v in seg.values()):
        draw_segmentation(seg, os.path.join(HERE, "segmentation.png"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
