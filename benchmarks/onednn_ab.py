"""Two builds of the native extension side by side: oneDNN A (e.g. PyPI's 3.2) against B (e.g. 3.12).

One process can load only one libdnnl.so.3, so the two builds cannot share a
process as the variants of scripts/bench.py do. Instead:

    python -m benchmarks.onednn_ab measure --out a-1.json [--models vgg11,resnet20] [--rounds 4]
        (run once per process, with the tree that holds the build on PYTHONPATH) times, with the
        interleaved rounds of benchmarks/timing.py, jaxcnn's train step of each model of the
        `train` section (same cases and batches) beside PyTorch's twin (its faster memory format),
        and `cross_correlate` forward and forward+backward on the `ops` section's shapes;
    python -m benchmarks.onednn_ab compare a-*.json -- b-*.json
        prints, per item, the median over processes of each process's median, the speed of B
        relative to A (A's ms / B's ms: > 1 means B is faster), the same per adjacent process pair
        (min..max), and each build's per-round jaxcnn/torch ratio (the `train` section's figure).

The processes are meant to alternate A, B, B, A, ... (the script that drives them does), so that
a drift of the machine's load hits both builds alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def measure(args) -> int:
    import jaxcnn.runtime

    jaxcnn.runtime.configure()  # jaxcnn's XLA:CPU flags and allocator tuning, as every entry point applies them

    import jax
    import jax.numpy as jnp

    from benchmarks import env, section_ops, steps
    from benchmarks.timing import calibrate, interleaved, paired, warm_up
    from jaxcnn import ops
    from jaxcnn.ops import native

    if native.status("conv") != "enabled":
        raise SystemExit(f"error: native convolutions {native.status('conv')}; build the extension first "
                         "(python -m jaxcnn.ops.native.build)")
    out = {"dnnl_version": native.dnnl_version(), "library": str(native.LIBRARY.resolve()),
           "load_before": env.loadavg(), "rounds": args.rounds, "train": {}, "ops": {}}
    print(f"oneDNN {out['dnnl_version']} ({out['library']}); load average {out['load_before']}", flush=True)
    t_start = time.perf_counter()
    torch = None
    if not args.no_torch:
        torch, why = steps.torch_available()
        if torch is None:
            print(f"  {why}")
        else:
            out["torch_threads"] = steps.torch_setup_threads()
    for case in steps.select_cases(args.quick, args.models) if args.models != "none" else ():
        batch = steps.make_batch(case, getattr(steps.jaxcnn_parts(case)[0], "num_classes", 10))
        variants = [steps.jaxcnn_variant(case, batch)]
        warm_up(variants)
        if torch is not None:
            tv, _ = steps.torch_variant(case, batch, trials=1 if args.quick else 2)
            variants.append(tv)
        reps = calibrate(variants, 0.05 if args.quick else 1.0)
        interleaved(variants, args.rounds, reps)
        row = {v.name: v.times for v in variants}
        if "torch" in row:
            row["jaxcnn/torch per round"] = paired(row["jaxcnn"], row["torch"])
        out["train"][case.label] = row
        print(f"  train {case.label}: " + "  ".join(f"{v.name} {1e3 * statistics.median(v.times):.2f} ms"
                                                   for v in variants), flush=True)
        del variants
    shapes = section_ops.QUICK if args.quick else section_ops.FULL
    if args.ops != "all":
        shapes = [s for s in shapes if any(word.lower() in s[0].lower() for word in args.ops.split(","))]
    for label, xs, ws, stride, padding in shapes:
        kx, kw = jax.random.split(jax.random.key(0))
        x, w = jax.random.normal(kx, xs, jnp.float32), jax.random.normal(kw, ws, jnp.float32)
        f = lambda x, w: ops.cross_correlate(x, w, stride=stride, padding=padding)  # noqa: E731
        loss = lambda x, w: jnp.sum(f(x, w) ** 2)  # noqa: E731
        variants = [section_ops._jax_variant("fwd", jax.jit(f), (x, w)),
                    section_ops._jax_variant("fwd+bwd", jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), (x, w))]
        warm_up(variants)
        reps = calibrate(variants, 0.02 if args.quick else 0.25)
        interleaved(variants, args.rounds, reps)
        out["ops"][label] = {v.name: v.times for v in variants}
        print(f"  ops {label}: " + "  ".join(f"{v.name} {1e3 * statistics.median(v.times):.3f} ms"
                                            for v in variants), flush=True)
    out["wall_s"], out["load_after"] = time.perf_counter() - t_start, env.loadavg()
    tmp = args.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(out, fh, indent=1)
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({out['wall_s']:.1f} s; load average {out['load_after']})", flush=True)
    return 0


def _items(run: dict) -> dict:
    """{(section, label, variant): median seconds over the run's rounds}."""
    items = {}
    for section in ("train", "ops"):
        for label, row in run[section].items():
            for name, times in row.items():
                if isinstance(times, list) and times:
                    items[(section, label, name)] = statistics.median(times)
    return items


def compare(args) -> int:
    if "--" not in args.files:
        raise SystemExit("error: compare A.json [A.json ...] -- B.json [B.json ...]")
    cut = args.files.index("--")
    sides = [[json.load(open(p)) for p in args.files[:cut]], [json.load(open(p)) for p in args.files[cut + 1:]]]
    if not all(sides):
        raise SystemExit("error: compare needs at least one result file on each side of --")
    names = []
    for runs in sides:
        versions = sorted({r["dnnl_version"] for r in runs})
        if len(versions) != 1:
            raise SystemExit(f"error: one side mixes oneDNN versions {versions}")
        names.append(versions[0])
    a_items, b_items = [[_items(r) for r in runs] for runs in sides]
    print(f"A = oneDNN {names[0]} ({len(a_items)} processes), B = oneDNN {names[1]} ({len(b_items)} processes); "
          f"rounds per process {sides[0][0]['rounds']}; load average A {[r['load_before'] for r in sides[0]]}, "
          f"B {[r['load_before'] for r in sides[1]]}")
    print(f"{'item':52s} {'A ms':>9s} {'B ms':>9s} {'B speed':>8s}  per process pair")
    keys = [k for k in a_items[0] if all(k in it for it in a_items + b_items)]
    for key in keys:
        a = statistics.median(it[key] for it in a_items)
        b = statistics.median(it[key] for it in b_items)
        pairs = [x[key] / y[key] for x, y in zip(a_items, b_items)]
        print(f"{' '.join(key):52s} {1e3 * a:9.3f} {1e3 * b:9.3f} {a / b:8.3f}  {min(pairs):.3f}..{max(pairs):.3f}")
    print("\njaxcnn/torch per round (median over all rounds of all processes; > 1: jaxcnn faster):")
    for label in sides[0][0]["train"]:
        cells = []
        for name, runs in zip(names, sides):
            ratios = [t / j for r in runs if label in r["train"] and "torch" in r["train"][label]
                      for j, t in zip(r["train"][label]["jaxcnn"], r["train"][label]["torch"])]
            cells.append(f"oneDNN {name} {statistics.median(ratios):.3f}" if ratios else f"oneDNN {name} —")
        print(f"  {label:28s} " + "   ".join(cells))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="time this process's build; write --out")
    m.add_argument("--out", required=True)
    m.add_argument("--models", default="vgg11,resnet20", help="train cases (scripts/bench.py --models), or none")
    m.add_argument("--ops", default="all", help="ops shapes whose label contains one of these words (e.g. vgg,resnet), "
                                              "or all")
    m.add_argument("--rounds", type=int, default=4)
    m.add_argument("--quick", action="store_true", help="bench.py's --quick cases and shapes: a smoke test")
    m.add_argument("--no-torch", action="store_true")
    c = sub.add_parser("compare", help="print A against B")
    c.add_argument("files", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.cmd == "measure" and args.rounds < 1:
        p.error("--rounds must be at least 1")
    return measure(args) if args.cmd == "measure" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
