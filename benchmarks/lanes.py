"""Training images per second of an ablation's runs in lanes, against one process on every core.

`python -m benchmarks.lanes --ablations bottleneck,skip --rounds 3` takes each distinct train step of each
ablation (the arms as `scripts/ablate.py` trains them: benchmarks.ablation_steps.arms_to_time) and times the
engine's train step

* in one process on every core this process may use (OMP_NUM_THREADS their number), as
  `scripts/ablate.py NAME` trains, and
* in N processes at once (N = --lanes, default the number of cores), each pinned to its share of the cores
  (jaxcnn.ablation.lanes.core_groups, OMP_NUM_THREADS its size), as `scripts/ablate.py NAME --lanes N` trains.

Every process builds the arm, compiles and warms up its step, then all of them wait at a barrier and time the same
number of steps (about --seconds of work), so the lanes' timed windows overlap. Rounds alternate which of the two
goes first. Prints the images/s of one process, the sum over the lanes and their ratio (> 1: the lanes train more
images per second), each the median over the rounds. Nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker(config, warm_steps, steps, barrier, results) -> None:
    """One process (pinned by jaxcnn.ablation.lanes.start_pinned): the arm's step compiled and warmed up, then
    `steps` timed after the barrier; puts images per second."""
    sys.path.insert(0, ROOT)
    import jaxcnn.runtime

    jaxcnn.runtime.configure()
    from benchmarks.timing import stepping_variant
    from jaxcnn.data.sharding import batch_indices
    from jaxcnn.train.setup import build, train_key

    setup = build(config)
    strategy = setup.strategy
    idx = batch_indices(config.seed, 0, len(setup.train_data), config.batch_size)
    v = stepping_variant("step", strategy.train, strategy.put_state(setup.init_state()),
                         strategy.put_batch(setup.train_data.take(idx)), train_key(config), items=config.batch_size)
    v.run(warm_steps)
    barrier.wait()
    t0 = time.perf_counter()
    v.run(steps)
    results.put(steps * config.batch_size / (time.perf_counter() - t0))


def measure(config, groups, warm_steps: int, steps: int) -> float:
    """Images per second summed over one process per core group, all timed at once."""
    from jaxcnn.ablation.lanes import start_pinned

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(groups)), ctx.Queue()
    procs = start_pinned(_worker, groups, lambda i, group: (config, warm_steps, steps, barrier, results),
                         name="jaxcnn-bench-lane")
    rates = [results.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a timing process exited with status {p.exitcode}")
    return float(sum(rates))


def main(argv=None) -> int:
    sys.path.insert(0, ROOT)
    from benchmarks.ablation_steps import ABLATIONS, arms_to_time
    from jaxcnn.ablation.lanes import core_groups

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ablations", default="bottleneck", help="comma-separated names (default bottleneck)")
    p.add_argument("--dir", default=ABLATIONS, help="directory of the ablation configs")
    p.add_argument("--lanes", type=int, default=0, help="processes at once (default: one per core)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=60, help="timed steps per process and round")
    p.add_argument("--warm", type=int, default=5, help="untimed steps first (compilation)")
    args = p.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    lanes = core_groups(args.lanes or len(cores), cores)
    print(f"cores {cores}; lanes {lanes}; {args.rounds} rounds of {args.steps} steps per process", flush=True)
    print("| ablation | arm | one process img/s | lanes img/s (sum) | lanes / one |\n|---|---|---|---|---|")
    for name in [n for n in args.ablations.split(",") if n]:
        todo, why = arms_to_time(name, args.dir)
        if not todo:
            print(f"| {name} | skipped: {why} | | | |")
        for label, c in todo:
            one, many = [], []
            for r in range(args.rounds):
                order = [(one, [tuple(cores)]), (many, lanes)]
                for sink, groups in (order if r % 2 == 0 else order[::-1]):
                    sink.append(measure(c, groups, args.warm, args.steps))
            ratios = [b / a for a, b in zip(one, many)]
            print(f"| {name} | {label} | {statistics.median(one):.0f} | {statistics.median(many):.0f} | "
                  f"{statistics.median(ratios):.2f} (rounds {', '.join(f'{x:.2f}' for x in ratios)}) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
