"""An ablation's runs trained in parallel lanes: one process per share of the CPU's cores.

The networks of the ablations are small, and one process does not keep two CPU cores busy with them: XLA runs
a step's operations one after another, and a small convolution gains little from a second thread. On this
project's 2-core machine the bottleneck ablation's GoogLeNet trains at about the same images/s in one process
on both cores as pinned to one, so two processes, one per core, train two runs in the time of one
(`python -m benchmarks.lanes` measures it for any ablation; docs/experiments.md has the figures).

    result = run_lanes(config, workdirs="runs/ablations/skip/runs", carry="experiments/results/skip/runs", lanes=2)

`run_lanes` splits the cores this process may use (`os.sched_getaffinity`) into `lanes` groups and starts one
process per group, pinned to it, with OMP_NUM_THREADS set to its size (the native kernels' threads). Every lane
walks the runs in run_ablation's order (arm by arm, seed by seed) and trains each run that is not finished, not
taken from a carried record and not claimed by another lane: the claim is a lock next to the workdir
(`WORKDIR.lane.lock`), held while the run trains, so a lane that is done early takes the next free run and the
lanes stay busy until the last one. What an ablation does before its runs (ablation.tune's trials,
ablation.pretrain's runs) is done here first, in this process, so every lane finds it finished (and reads it back
one lane at a time: WORKDIRS/.before.lock). Then this process collects every run as run_ablation does (each is
finished: nothing trains; a run a failed lane left is trained here) and returns its result, with `lanes` (the
cores of each lane and each lane's exit code).

Not in lanes (`unsupported`, refused before anything trains): ablations whose extras need every run's trained
parameters in one process (conv_mode's twin check and kernels), and fine-tuning ablations.

A lane trains the same run as one process would (the same config, seed and steps, its own workdir, checkpoints
and exact resume); only its floats can differ in the last bits from a run on more threads, where reductions
split differently, as they do from one machine to another. A killed ablation resumes with the same command,
with or without lanes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from typing import Callable, Optional

from jaxcnn._locks import Busy, target_lock
from jaxcnn.ablation import carried
from jaxcnn.ablation.extras import extras_of
from jaxcnn.ablation.runner import (AblationRun, _carry_folder, _data_cache, _one_run, from_record_only,
                                    run_ablation, run_workdir)
from jaxcnn.ablation.spec import arm_config, arms_of, validate_ablation
from jaxcnn.train import cli
from jaxcnn.train.workdir import check_writable, read_record

ENV_THREADS = "OMP_NUM_THREADS"
CLAIM = ".lane"  # the claim lock of WORKDIR is WORKDIR.lane.lock (jaxcnn._locks.target_lock adds ".lock")


def core_groups(lanes: int, cores=None) -> list[tuple[int, ...]]:
    """The cores this process may use (or `cores`), split into `lanes` groups of consecutive cores whose sizes
    differ by at most one. Refuses lanes < 1 and more lanes than cores."""
    cores = sorted(os.sched_getaffinity(0) if cores is None else cores)
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"lanes must be a whole number >= 1, got {lanes!r}; 1 trains every run in this process.")
    if lanes > len(cores):
        raise ValueError(f"{lanes} lanes need {lanes} cores, and this process may use {len(cores)} "
                         f"({', '.join(map(str, cores))}); pass --lanes {len(cores)} or fewer.")
    size, extra = divmod(len(cores), lanes)
    groups, start = [], 0
    for i in range(lanes):
        n = size + (1 if i < extra else 0)
        groups.append(tuple(cores[start:start + n]))
        start += n
    return groups


def unsupported(config) -> Optional[str]:
    """Why this ablation's runs cannot train in lanes (None: they can): the same as for carrying its runs between
    machines (jaxcnn.ablation.carried.unsupported). Extras that need every run's trained parameters in one
    process (conv_mode's twin, which starts one arm from another arm's kernels and must train it with the same
    floats) and fine-tuning from pretraining workdirs stay in one process."""
    why = carried.unsupported(config)
    return f"{config.ablation.name}: {why}; run it without --lanes" if why else None


def _finished(workdir: str, num_steps: int) -> bool:
    record = read_record(workdir)
    return bool(record) and int(record.get("finished_step", -1)) >= int(num_steps)


def pending_runs(config, workdirs: str, carry: Optional[str]) -> list[tuple[str, int]]:
    """(arm label, seed) of every run that would train: not finished in its workdir, and not taken from a carried
    record (a record counts only where the workdir is absent, as in run_ablation)."""
    out = []
    for arm in arms_of(config):
        for seed in config.ablation.seeds:
            if from_record_only(workdirs, carry, arm, seed):
                continue
            if not _finished(run_workdir(workdirs, arm, seed), arm_config(config, arm, int(seed)).num_steps):
                out.append((arm.label, int(seed)))
    return out


def _pinned(cores: tuple[int, ...], target: Callable, args: tuple) -> None:
    """A spawned process's entry: pinned to `cores` before JAX starts its backend and threads, then
    target(*args)."""
    os.sched_setaffinity(0, cores)
    target(*args)


def start_pinned(target: Callable, groups, args_of: Callable[[int, tuple], tuple], name: str = "jaxcnn-lane"):
    """One spawned process per core group, running target(*args_of(index, group)) pinned to its group with
    OMP_NUM_THREADS its size (read by the process's OpenMP runtime when it starts): the processes, started and
    not joined. `target` must be importable (a module-level function)."""
    ctx = multiprocessing.get_context("spawn")
    procs, old = [], os.environ.get(ENV_THREADS)
    try:
        for i, group in enumerate(groups):
            os.environ[ENV_THREADS] = str(len(group))
            p = ctx.Process(target=_pinned, args=(tuple(group), target, args_of(i, tuple(group))), name=f"{name}-{i}")
            p.start()
            procs.append(p)
    finally:
        os.environ.pop(ENV_THREADS, None) if old is None else os.environ.__setitem__(ENV_THREADS, old)
    return procs


def _lane_main(config, workdirs: str, carry: Optional[str], index: int) -> None:
    """One lane (a spawned process, pinned by start_pinned): it trains every free run in order (module
    docstring)."""
    cli.setup_process()

    def log(line: str) -> None:
        print(f"[lane {index}] {line.strip()}", flush=True)

    run_ = AblationRun(config, arms_of(config), [int(s) for s in config.ablation.seeds], workdirs, _data_cache(),
                       log)
    extras = extras_of(config)
    identity = {k: v for e in extras for k, v in e.carried_identity(run_).items()}
    # tuning and pretraining finished in the parent: read back from their workdirs (not trained), one lane at a
    # time, since reading a finished workdir holds its lock too
    with target_lock(os.path.join(workdirs, ".before"), "the runs before the ablation's runs", wait=True):
        for extra in extras:
            extra.before(run_)
    for ai, arm in enumerate(run_.arms):
        for seed in run_.seeds:
            if from_record_only(workdirs, carry, arm, seed):
                continue
            wd = run_workdir(workdirs, arm, seed)
            with contextlib.ExitStack() as stack:
                try:
                    stack.enter_context(target_lock(wd + CLAIM, f"run {arm.label} seed {seed}"))
                except Busy:
                    continue  # another lane trains it
                if _finished(wd, arm_config(config, arm, seed).num_steps):
                    continue
                _one_run(run_, extras, ai, arm, seed, carry, identity)


def run_lanes(config, *, workdirs: str, log: Callable[[str], None] = print, carry: Optional[str] = None,
              lanes: int = 2, cores=None) -> dict:
    """run_ablation's result, the runs trained in `lanes` pinned processes first (module docstring). `cores`:
    the cores to share out (default: those this process may use). lanes=1 is run_ablation itself."""
    groups = core_groups(lanes, cores)
    if lanes == 1:
        return run_ablation(config, workdirs=workdirs, log=log, carry=carry)
    why = unsupported(config)
    if why:
        raise ValueError(why)
    validate_ablation(config)
    check_writable(workdirs)
    carry = _carry_folder(config, carry, log)
    # what comes before the runs (tuning trials, pretraining), once, here
    before = AblationRun(config, arms_of(config), [int(s) for s in config.ablation.seeds], workdirs, _data_cache(),
                         log)
    for extra in extras_of(config):
        extra.before(before)
    pending = pending_runs(config, workdirs, carry)
    log(f"  {len(pending)} runs to train in {lanes} lanes, cores " + " | ".join(",".join(map(str, g)) for g in groups))
    procs = start_pinned(_lane_main, groups, lambda i, group: (config, workdirs, carry, i))
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:  # the lanes got the same Ctrl-C; each saves its checkpoint and stops
            p.join(timeout=60)
        raise
    codes = [p.exitcode for p in procs]
    for i, code in enumerate(codes):
        if code != 0:
            log(f"  lane {i} exited with status {code}; the runs it left train here")
    result = run_ablation(config, workdirs=workdirs, log=log, carry=carry)
    result["trained_runs"] = max(int(result.get("trained_runs", 0)), len(pending))
    result["lanes"] = {"lanes": lanes, "cores": [list(g) for g in groups], "exit_codes": codes}
    return result
