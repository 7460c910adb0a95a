#!/usr/bin/env python
"""Run one ablation: train every arm with the same seeds and budget, write
experiments/results/NAME/{results.csv, table.md, curves.csv, *.png, run.json}.

    python scripts/ablate.py skip --quick        # minutes on a 2-core CPU
    python scripts/ablate.py skip                # the full budget
    python scripts/ablate.py --list

Ablations: experiments/ablations/NAME.py (get_config()).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxcnn import experiments  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", help="ablation name (experiments/ablations/NAME.py)")
    p.add_argument("--quick", action="store_true", help="the small budget (config.quick) that fits a CPU in minutes")
    p.add_argument("--out", default=None, help="output folder (default experiments/results/NAME)")
    p.add_argument("--dataset", default=None, help="override the dataset (e.g. 'synthetic' for a smoke run)")
    p.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    p.add_argument("--list", action="store_true", help="list the ablations and exit")
    args = p.parse_args(argv)
    if args.list or not args.name:
        for n in experiments.list_ablations():
            print(f"{n}: {experiments.load_ablation(n).title}")
        return 0 if args.list else 2
    try:
        cfg = experiments.load_ablation(args.name)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dataset:
        cfg.dataset = args.dataset
    if args.steps:
        (cfg.quick if args.quick else cfg.train).steps = args.steps
    out = args.out or os.path.join(ROOT, "experiments", "results", args.name)
    command = "python scripts/ablate.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(f"{cfg.name}: {cfg.title}\n  {len(cfg.arms)} arms x seeds {tuple(cfg.train.seeds)}, "
          f"{experiments.train_settings(cfg, args.quick).steps} steps", flush=True)
    t0 = time.time()
    result = experiments.run_ablation(cfg, quick=args.quick, log=lambda s: print(s, flush=True))
    wall = time.time() - t0
    files = experiments.write_results(result, out, cfg=cfg, command=command, wall_time_s=wall, quick=args.quick)
    print(experiments.markdown_table(result["rows"]))
    for k in ("twin_max_diff", "twin_max_rel_diff"):
        if k in result:
            print(f"{k}: {result[k]:.3g}")
    print(f"wall time {wall:.0f} s; wrote " + ", ".join(os.path.relpath(f, ROOT) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
