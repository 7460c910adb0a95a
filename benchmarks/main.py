"""Run the chosen sections and write the results (imported by scripts/bench.py
once XLA_FLAGS is final)."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

from benchmarks import (env, report, section_compile, section_gpu, section_memory, section_ops, section_parallel,
                        section_train)

RUNNERS = {"train": section_train.run, "ops": section_ops.run, "compile": section_compile.run,
           "memory": section_memory.run, "parallel": section_parallel.run,
           "gpu": section_gpu.run}
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def main(args, command: str) -> int:
    out_dir = args.out or os.path.join(BENCH_DIR, "quick" if args.quick else "")
    torch_threads = None
    if not args.no_torch:
        from benchmarks.steps import torch_available, torch_setup_threads

        if torch_available()[0] is not None:
            # --quick: one torch thread, so that the smoke test survives a busy machine (torch's OpenMP
            # barriers stall when the cores are oversubscribed).
            torch_threads = torch_setup_threads(args.torch_threads or (1 if args.quick else None))
    ctx = SimpleNamespace(quick=args.quick, models=args.models, rounds=args.rounds, no_torch=args.no_torch)
    info = env.collect(torch_threads)
    print(f"jaxcnn benchmarks{' (quick)' if args.quick else ''}: {', '.join(args.only)}\n"
          f"device {info['device_kind']} ({info['backend']}), CPU {info['cpu_model']}, {info['cpu_count']} cores; "
          f"XLA_FLAGS={info['xla_flags']!r}; native convolutions {info['native_conv']}; "
          f"load average {env.loadavg()}", flush=True)
    start, run_date, run_load = time.perf_counter(), env.now(), env.loadavg()
    if not args.quick and run_load and run_load[0] > 0.5 * (info["cpus_usable"] or 1):
        print(f"warning: load average {run_load[0]} on {info['cpus_usable']} usable cores: the machine is busy, "
              "the figures will be noisy (RESULTS.md records the load).", flush=True)
    new = {}
    for name in args.only:
        t0, load0, date = time.perf_counter(), env.loadavg(), env.now()
        data = RUNNERS[name](ctx)
        data["wall_s"] = time.perf_counter() - t0
        if data.get("skipped"):  # nothing measured: keep what an earlier run of this section wrote
            print(f"  [{name}: skipped]", flush=True)
            continue
        new[name] = {"run": {"command": command, "date": date, "load_before": load0, "load_after": env.loadavg(),
                             "env": info, "quick": args.quick}, "data": data}
        print(f"  [{name}: {data['wall_s']:.1f} s]", flush=True)
    last_run = {"command": command, "date": run_date, "load_before": run_load, "load_after": env.loadavg(),
                "env": info, "sections": list(args.only), "wall_s": time.perf_counter() - start}
    results = report.merge(out_dir, args.quick, new, last_run)
    md, js = report.write(out_dir, results)
    print(f"\nwrote {md} and {js} ({time.perf_counter() - start:.1f} s; load average {env.loadavg()})")
    return 0
