#!/usr/bin/env python
"""Score a training run on a split: the workdir's own config.json, its latest checkpoint.

    python scripts/evaluate.py --workdir runs/detection/fast_rcnn/seed0 [--split test]

Classification: test accuracy and loss; segmentation: pixel accuracy, mean IoU and per-class IoU; detection
(tasks fast_rcnn, yolo, and rcnn / spp_net after their SVMs and box regressors are fitted and cached in the
workdir): mAP@0.5 and COCO mAP@[.5:.95] from pycocotools, seconds per image and CNN passes per image.
Prints the result as JSON and writes it to WORKDIR/eval_<split>.json. Exit status 2 for a bad workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcnn.train import cli  # noqa: E402


def main(argv=None) -> int:
    first, _, rest = __doc__.strip().partition("\n\n")
    p = argparse.ArgumentParser(description=first, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="a scripts/train.py workdir (config.json + checkpoints/)")
    p.add_argument("--split", default=None, help="split to score (default: the run's eval split; detection: "
                                                 "test); slices such as test[:500] allowed")
    args = p.parse_args(argv)
    cli.setup_process()

    def job():
        from jaxcnn.detection.evaluate import evaluate_workdir

        result = evaluate_workdir(args.workdir, split=args.split)
        print(json.dumps(result, indent=1))

    return cli.main(job)


if __name__ == "__main__":
    sys.exit(main())
