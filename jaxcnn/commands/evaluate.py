"""Score a training run on a split: the workdir's own config.json, its latest (or --step) checkpoint.

    python scripts/evaluate.py --workdir runs/detection/fast_rcnn/seed0 [--split test]

Classification: test accuracy and loss; segmentation: pixel accuracy, mean IoU and per-class IoU; detection
(tasks fast_rcnn, yolo, and rcnn / spp_net after their SVMs and box regressors are fitted and cached in the
workdir): mAP@0.5 and COCO mAP@[.5:.95] from pycocotools, seconds per image and CNN passes per image.
Classification also prints the per-class accuracy and the confusion matrix (drawn to
WORKDIR/confusion_<split>.png). The whole record is written to WORKDIR/eval.json and WORKDIR/eval_<split>.json.
Exit status 2 for a bad workdir.
"""

from __future__ import annotations

import argparse
import json
import sys

from jaxcnn.train import cli


def format_result(result: dict) -> str:
    """The result for a reader: the scalar figures, then (classification) per-class accuracy and the confusion
    matrix; the whole record is in the JSON files named at the end."""
    skip = {"per_class_accuracy", "confusion_matrix", "class_names", "written", "files", "config", "notes",
            "second_stage", "eval_ap50_per_class", "eval_iou_per_class", "note"}
    lines = [f"{k}: {v}" for k, v in result.items() if k not in skip and not isinstance(v, (dict, list))]
    if "confusion_matrix" in result:
        names = result["class_names"]
        width = max(len(n) for n in names)
        lines.append("per-class accuracy:")
        for n, acc in result["per_class_accuracy"].items():
            lines.append(f"  {n:<{width}}  {'-' if acc is None else f'{acc:.4f}'}")
        lines.append("confusion matrix (rows: true class, columns: predicted, in the order above):")
        cell = max(5, max(len(str(v)) for row in result["confusion_matrix"] for v in row) + 1)
        for n, row in zip(names, result["confusion_matrix"]):
            lines.append(f"  {n:<{width}} " + "".join(f"{v:>{cell}}" for v in row))
    else:
        for k in skip & set(result):
            if k in ("eval_ap50_per_class", "eval_iou_per_class", "second_stage"):
                lines.append(f"{k}: {json.dumps(result[k])}")
    lines.extend(result.get("notes", []))
    for path in result.get("files", []):
        lines.append(f"wrote {path}")
    return "\n".join(lines)


def main(argv=None) -> int:
    first, _, rest = __doc__.strip().partition("\n\n")
    p = argparse.ArgumentParser(description=first, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="a scripts/train.py workdir (config.json + checkpoints/)")
    p.add_argument("--split", default=None, help="split to score (default: the run's eval split; detection: "
                                                 "test); slices such as test[:500] allowed")
    p.add_argument("--step", type=int, default=None, help="the checkpoint step to score (default: the latest)")
    p.add_argument("--allow_split_overlap", action="store_true",
                   help="score a split that shares examples with the run's training split (e.g. --split train, "
                        "for the training accuracy); refused otherwise")
    p.add_argument("--svd_ranks", default="", metavar="K6,K7",
                   help="Fast R-CNN only: score with fc6 and fc7 replaced by their truncated SVD at ranks K6 and K7 "
                        "(Girshick 2015, sec. 3.1), written to eval_<split>_svdK6xK7.json")
    args = p.parse_args(argv)
    try:
        svd_ranks = tuple(int(k) for k in args.svd_ranks.split(",")) if args.svd_ranks else ()
    except ValueError:
        p.error(f"--svd_ranks takes two integers K6,K7 (e.g. 64,32), got {args.svd_ranks!r}")
    cli.setup_process()

    def job():
        from jaxcnn.train.inference import evaluate_workdir

        result = evaluate_workdir(args.workdir, split=args.split, step=args.step,
                                  allow_overlap=args.allow_split_overlap, svd_ranks=svd_ranks)
        print(format_result(result))
        if result.get("note"):  # an unfinished or interrupted run says so where it is scored
            print(f"note: {result['note']}", file=sys.stderr)

    return cli.main(job)


if __name__ == "__main__":
    sys.exit(main())
