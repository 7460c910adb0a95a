"""Classify image files with a trained run: the workdir's own config.json and its latest (or --step) checkpoint.

    python scripts/predict.py --workdir runs/fashion shirt.png boot.jpg [--top 5] [--json]

Each image is converted to the run's channels (grey or RGB) and resized to the size of the run's dataset
images, then preprocessed as at evaluation. Prints the `--top` most probable classes with their probabilities
for each file. Exit status 2 for a bad workdir or an unreadable image.
"""

from __future__ import annotations

import argparse
import json
import sys

from jaxcnn.train import cli


def main(argv=None) -> int:
    first, _, rest = __doc__.strip().partition("\n\n")
    p = argparse.ArgumentParser(description=first, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="a scripts/train.py workdir (config.json + checkpoints/)")
    p.add_argument("--top", type=int, default=5, help="how many classes to print per image (default 5)")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.add_argument("--step", type=int, default=None, help="the checkpoint step to use (default: the latest)")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    args = p.parse_args(argv)
    if args.top < 1:
        p.error("--top must be at least 1")
    cli.setup_process()

    def job():
        from jaxcnn.train.inference import predict_files

        results = predict_files(args.workdir, args.images, top=args.top, step=args.step)
        if results and results[0].get("note"):  # an unfinished or interrupted run says so
            print(f"note: {results[0]['note']}", file=sys.stderr)
        if args.json:
            print(json.dumps(results, indent=1))
            return
        for r in results:
            print(r["path"])
            for t in r["top"]:
                print(f"  {t['probability']:7.2%}  {t['name']} (class {t['class']})")

    return cli.main(job)


if __name__ == "__main__":
    sys.exit(main())
