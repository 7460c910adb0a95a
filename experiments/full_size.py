"""What each scaled-down ablation would cost at the paper's size on the CPU that ran it.

    PYTHONPATH=$PWD python experiments/full_size.py [--results experiments/results] [--readme experiments/README.md]

For every committed result whose network or budget was scaled down, the paper's network and input
(multiply-adds per image from jaxcnn.models.summary) and the paper's number of training images, against
ours (results.csv: multiply-adds and the median measured step time per arm). The CPU time of the full
version is extrapolated from our measured time per image, in proportion to multiply-adds: an estimate
(larger layers use a CPU better, so it is rather an upper bound), not a measurement.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

MARKERS = ("<!-- full-size:start -->", "<!-- full-size:end -->")
IMAGENET = 1_281_167
# name: (paper's network, its fields, its input, training images seen, where the budget comes from)
FULL = {
    "skip": ("resnet56", {}, (32, 32, 3), 64_000 * 128,
             "He et al. 2015 sec. 4.2: CIFAR-10, 16-32-64 maps, 64k iterations x 128"),
    "kernel_plan": ("vgg13", {}, (224, 224, 3), 74 * IMAGENET,
                    "Simonyan & Zisserman 2015: net B on ImageNet at 224, 74 epochs"),
    "bottleneck": ("googlenet", {"aux_logits": False}, (224, 224, 3), 90 * IMAGENET,
                   "Szegedy et al. 2014: ImageNet at 224 (epochs not stated; 90 assumed, as AlexNet's)"),
    "alexnet_pooling": ("alexnet", {}, (227, 227, 3), 90 * IMAGENET,
                        "Krizhevsky et al. 2012: ImageNet at 227, 90 epochs"),
    "alexnet_lrn": ("alexnet", {}, (227, 227, 3), 90 * IMAGENET,
                    "Krizhevsky et al. 2012: ImageNet at 227, 90 epochs"),
    "dropout": ("alexnet", {}, (227, 227, 3), 90 * IMAGENET,
                "Krizhevsky et al. 2012: ImageNet at 227, 90 epochs (the whole training set, not 500 per class)"),
    "relu_tanh": ("keras_cifar_cnn", {}, (32, 32, 3), 35 * 50_000,
                  "Krizhevsky et al. 2012 fig. 1: CIFAR-10 at 32x32x3, the 35 epochs plotted"),
    "nasnet": ("nasnet_a_cifar", {}, (32, 32, 3), 600 * 50_000,
               "Zoph et al. 2018, TF-slim's cifar_config: NASNet-A 6 @ 768 with both regularisers on CIFAR-10, "
               "600 epochs (937,500 steps of 32)"),
}


def rows_of(path: str) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def estimate(results: str) -> list[dict]:
    from jaxcnn import create_model
    from jaxcnn.models import summary

    out = []
    for name, (model, fields, shape, images, source) in FULL.items():
        folder = os.path.join(results, name)
        if not os.path.exists(os.path.join(folder, "run.json")):
            continue
        with open(os.path.join(folder, "run.json")) as f:
            run = json.load(f)
        rows = rows_of(os.path.join(folder, "results.csv"))
        full_macs = summary(create_model(model, **fields), shape).total_macs
        seconds = 0.0
        for r in rows:  # each arm at its own measured time per image, scaled by multiply-adds
            per_image = float(r["step_time_ms"]) / 1e3 / int(r["batch_size"])
            seconds += per_image * full_macs / int(r["macs"]) * images * len(run["seeds"])
        ours_images = int(rows[0]["steps"]) * int(rows[0]["batch_size"])
        out.append({"ablation": name, "paper": source, "full_model": f"{model} at {shape[0]}x{shape[1]}x{shape[2]}",
                    "full_macs": full_macs, "ours_macs": [int(r["macs"]) for r in rows],
                    "full_images": images, "ours_images": ours_images, "runs": len(rows) * len(run["seeds"]),
                    "cpu_hours": seconds / 3600, "ours_hours": run.get("train_wall_time_s", 0) / 3600,
                    "cores": run["environment"].get("cpu_count")})
    return out


def days(hours: float) -> str:
    return f" ({hours / 24:,.0f} days)" if hours >= 48 else ""


def table(rows: list[dict]) -> str:
    lines = ["| ablation | the paper's version | multiply-adds / image: paper vs ours | training images per run: "
             "paper vs ours | ours: training time | the paper's version here (estimate) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ours = "-".join(f"{m / 1e6:.1f}M" for m in sorted(set(r["ours_macs"])))
        lines.append(f"| {r['ablation']} | {r['full_model']}; {r['paper']} | {r['full_macs'] / 1e6:,.0f}M vs {ours} | "
                     f"{r['full_images'] / 1e6:,.1f}M vs {r['ours_images'] / 1e6:.2f}M | {r['ours_hours']:.1f} h | "
                     f"{r['cpu_hours']:,.0f} h on these {r['cores']} cores{days(r['cpu_hours'])} for its {r['runs']} runs |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--results", default=os.path.join(HERE, "results"))
    p.add_argument("--readme", help=f"also write the table between the lines {MARKERS[0]} and {MARKERS[1]} of "
                                    "this Markdown file")
    args = p.parse_args(argv)
    text = table(estimate(args.results))
    print(text)
    if args.readme:
        from jaxcnn.train.records import replace_block

        replace_block(args.readme, MARKERS, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
