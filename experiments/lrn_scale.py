#!/usr/bin/env python
"""How much local response normalisation normalises in a trained run: for each
LRN layer, the share of the data term alpha * sum(a^2) in the denominator
k + alpha * sum(a^2), and the factor it applies to the responses, on the
first test images (jaxcnn.ablation.analyses.lrn_data_term).

    python experiments/lrn_scale.py runs/ablations/alexnet_lrn/runs/LRN/seed0
    python experiments/lrn_scale.py WORKDIR --images 1024
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", help="a finished training workdir of a model with LRN layers")
    p.add_argument("--images", type=int, default=512, help="test images to score (default 512)")
    args = p.parse_args(argv)
    from jaxcnn.ablation.analyses import lrn_data_term
    from jaxcnn.data import datasets
    from jaxcnn.train.inference import load_run

    run = load_run(args.workdir)
    c = run.config
    test = datasets.load(c.dataset, f"{c.eval_split.split('[')[0]}[:{args.images}]", data_dir_path=c.data_dir or None)
    report = lrn_data_term(run.model, run.variables, run.preprocess(test.images, None, False))
    if not report:
        print(f"{args.workdir}: the model has no LRN layer", file=sys.stderr)
        return 2
    for name, r in report.items():
        print(f"{name}: alpha*S/k median {r['share_median']:.2e}, p99 {r['share_p99']:.2e}, max {r['share_max']:.2e};"
              f" factor b/a {r['factor_min']:.4f}..{r['factor_max']:.4f} (median {r['factor_median']:.4f}; "
              f"k^-beta = {r['fixed_scale']:.4f}) over {r['responses']:,} positive responses")
    print(json.dumps({"workdir": args.workdir, "step": run.step, "images": len(test), "layers": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
