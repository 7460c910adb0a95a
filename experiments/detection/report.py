"""The detection and segmentation tables, the paired comparisons and the sample pictures, from the workdirs
that experiments/detection/run.sh trained and scored.

    PYTHONPATH=$PWD python experiments/detection/report.py [--runs runs]
    PYTHONPATH=$PWD python experiments/detection/report.py --rescore   # the tables again from results.json

Writes experiments/detection/results.md (and the same tables into README.md's results block), results.json,
curves.png (training loss over steps), detections.png
and segmentation.png. Then every claim of experiments/results and of this report is scored as one family
(Holm's step-down, jaxcnn.ablation.rescore): each comparison has its p value, p_holm and both verdicts.

The tables, the claims and results.json's format are jaxcnn.ablation.detection_report's (this script finds the
workdirs, draws the pictures and is the command line).

Segmentation: `miou` is the mean IoU over all 11 classes, background (class 0) included, as the task's
eval_mean_iou; `miou_foreground` over the 10 garment classes, without background, both from the per-class IoUs
stored for every run. Each row records `code_version`, the commit of the code that trained and scored it, as its
runs recorded it (config.json and eval_test.json provenance; the checkout that runs this report only for runs
that recorded none; kept from results.json for carried rows). Two rows of
different code versions are not compared: the comparison is listed as "not compared" and left out of the family.

A model with no workdir under --runs keeps the per-seed numbers (and the loss curve, where recorded) of the
committed results.json, marked † in the tables: runs added later (a new variant, more seeds) are then compared
with the committed ones by seed without training those again. The pictures of sample predictions are drawn from
workdirs only: when some models are carried, the new models' samples go to detections_NAME_... .png and the
committed pictures stay.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

from jaxcnn.ablation import detection_report  # noqa: E402  (the checkout's jaxcnn, from ROOT)
from jaxcnn.ablation.detection_report import (  # noqa: E402
    DETECTORS, SEGMENTERS, build_table, carried_runs, render, runs_of, score_claims)


def write_outputs(results) -> None:
    """results.json, results.md and README.md's results block of this folder (detection_report.write_outputs)."""
    detection_report.write_outputs(results, HERE)


def load_results():
    """This folder's results.json."""
    return detection_report.load_results(HERE)


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
