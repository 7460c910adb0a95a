"""Fast R-CNN's box-target statistics of a training split: the mean and standard deviation of the
unnormalised regression targets (t_x, t_y, t_w, t_h) of every candidate (selective-search proposal or
ground-truth box) with IoU >= 0.5 to a ground-truth box, as `jaxcnn.models.detection.boxes.target_stats`
defines them. experiments/configs/fast_rcnn.py holds the numbers this prints for its training split:

    python experiments/detection/box_target_stats.py
    python experiments/detection/box_target_stats.py --check   # the config holds these numbers

The canvases and their proposals are built offline on first use (jaxcnn.data.canvases, jaxcnn.data.proposals;
the proposals of train[:3000] take minutes once, then are read from the cache).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

DIGITS = 4  # as written into the config


def compute(dataset: str, split: str, data_dir: str = "") -> tuple[tuple, tuple, int]:
    from jaxcnn.data import datasets
    from jaxcnn.models.detection import boxes

    labels = datasets.load(dataset, split, data_dir_path=data_dir or None).labels
    mean, std = boxes.target_stats(labels["proposals"], labels["boxes"], labels["classes"])
    return mean, std, len(labels["boxes"])


def main(argv=None) -> int:
    from jaxcnn.train.cli import load_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=os.path.join(ROOT, "experiments", "configs", "fast_rcnn.py"),
                    help="the config whose dataset and train_split are measured")
    ap.add_argument("--check", action="store_true", help="fail unless the config holds these numbers")
    args = ap.parse_args(argv)
    config = load_config(args.config)
    mean, std, n = compute(config.dataset, config.train_split, config.data_dir)
    mean, std = tuple(round(v, DIGITS) for v in mean), tuple(round(v, DIGITS) for v in std)
    print(f"{config.dataset} {config.train_split}: {n} images")
    print(f"BOX_TARGET_MEAN = {mean}")
    print(f"BOX_TARGET_STD = {std}")
    if args.check:
        have = (tuple(config.detection.box_target_mean), tuple(config.detection.box_target_std))
        if not (np.allclose(have[0], mean, atol=10 ** -DIGITS) and np.allclose(have[1], std, atol=10 ** -DIGITS)):
            print(f"{args.config} holds mean {have[0]}, std {have[1]}: not these; write the numbers above into it.")
            return 1
        print(f"{args.config} holds these numbers.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
