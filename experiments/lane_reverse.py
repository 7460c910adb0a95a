"""The second lane of an ablation whose design is pinned at a commit older than `scripts/ablate.py --lanes`
(bottleneck design III at f9e9c2e, relu_tanh and dropout design II at d060fc7): in a checkout of that commit
it trains the ablation's arm x seed runs from the last one backwards, with that checkout's own code, until it
reaches a run whose workdir another process holds (the forward lane, that checkout's `scripts/ablate.py NAME`,
got there first, and writes the result). Runs with a carried record are skipped; a run whose workdir exists but
is held by no one (a lane stopped with the machine) is resumed from its last checkpoint; a tuned ablation
waits until the forward lane is past its tuning trials. The two lanes run pinned to one core each:

    cd CHECKOUT && OMP_NUM_THREADS=1 taskset -c 0 python scripts/ablate.py NAME --out experiments/results/NAME --force
    OMP_NUM_THREADS=1 taskset -c 1 python experiments/lane_reverse.py CHECKOUT NAME

(the forward lane stops with "is in use by" if it reaches the run this lane is training: run it again once that
run is done). A checkout at or after --lanes runs `scripts/ablate.py NAME --lanes 2` instead."""

from __future__ import annotations

import os
import sys
import time


def main(repo: str, name: str) -> int:
    repo = os.path.abspath(repo)
    os.chdir(repo)
    sys.path.insert(0, repo)  # the pinned checkout's jaxcnn, not an installed one
    from jaxcnn.train import cli

    cli.setup_process()
    from jaxcnn import ablation
    from jaxcnn._locks import Busy
    from jaxcnn.ablation import carried
    from jaxcnn.ablation.protocol import extras_of
    from jaxcnn.ablation.runner import AblationRun, _data_cache, _one_run
    from jaxcnn.ablation.spec import arms_of
    from jaxcnn.train.workdir import WorkdirError

    config = ablation.load_ablation(name, os.path.join(repo, "experiments", "ablations"))
    ablation.validate_ablation(config)
    workdirs = os.path.join(repo, "runs", "ablations", name, "runs")
    carry = os.path.join(repo, "experiments", "results", name, carried.FOLDER)
    extras = extras_of(config)
    print("extras:", [e.name for e in extras], flush=True)
    if config.ablation.pretrain or carried.unsupported(config):
        print(f"{name}: pretraining, or runs that must share one process; leave it to the forward lane")
        return 2
    arms, seeds = arms_of(config), [int(s) for s in config.ablation.seeds]
    if config.ablation.tune:  # the forward lane tunes first; this lane reads the finished trials once past them
        first = os.path.join(workdirs, arms[0].slug, f"seed{seeds[0]}")
        while not (os.path.exists(first) or os.path.exists(carried.path(carry, arms[0].slug, seeds[0]))):
            time.sleep(60)
    run_ = AblationRun(config, arms, seeds, workdirs, _data_cache(), lambda s: print(s, flush=True))
    identity = {k: v for e in extras for k, v in e.carried_identity(run_).items()}
    for e in extras:
        e.before(run_)
    for ai, arm, seed in [(ai, arm, seed) for ai, arm in enumerate(run_.arms) for seed in run_.seeds][::-1]:
        if os.path.exists(carried.path(carry, arm.slug, seed)):
            continue
        print(f"reverse lane: {arm.label} seed {seed}", flush=True)
        try:
            _one_run(run_, extras, ai, arm, seed, carry, identity)
        except (Busy, WorkdirError) as e:
            print(f"reverse lane: {e}; done", flush=True)
            break
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python experiments/lane_reverse.py CHECKOUT NAME")
    sys.exit(main(sys.argv[1], sys.argv[2]))
