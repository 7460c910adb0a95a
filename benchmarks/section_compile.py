"""Section `compile`: wall time to compile a ResNet-50 train step and run its
first step, cold (fresh process, empty persistent compilation cache) and warm
(fresh process, the cache the cold run filled), split into lower(), compile()
and the first step. Each measurement is a child process of scripts/bench.py
(`--_compile-child`), so nothing is shared in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "bench.py")
PHASES = ("import_s", "init_s", "lower_s", "compile_s", "first_step_s", "compile_and_first_step_s")


def child(spec_json: str) -> None:
    """In a fresh process: time lower/compile/first step of the jaxcnn train step; write JSON to spec['out'].

    `import_s` is the import of jax, jaxcnn and the benchmark code (this runs before any of them)."""
    spec = json.loads(spec_json)
    t0 = time.perf_counter()
    import jax

    jax.config.update("jax_compilation_cache_dir", spec["cache_dir"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    import numpy as np

    from benchmarks import steps
    from jaxcnn.train import create_train_state

    t1 = time.perf_counter()
    case = steps.TrainCase(spec["model"], tuple(spec["input_shape"]), spec["batch"], spec.get("overrides", {}))
    model, strategy, tx = steps.jaxcnn_parts(case)
    state = strategy.put_state(create_train_state(model, tx, jax.random.key(0), case.input_shape))
    batch = strategy.put_batch(steps.make_batch(case, getattr(model, "num_classes", 10)))
    key = np.asarray(jax.random.key_data(jax.random.key(1)))
    jax.block_until_ready(state)
    t2 = time.perf_counter()
    lowered = strategy.train.lower(state, batch, key)
    t3 = time.perf_counter()
    compiled = lowered.compile()
    t4 = time.perf_counter()
    out = compiled(state, batch, key)
    jax.block_until_ready(out)
    t5 = time.perf_counter()
    result = {"import_s": t1 - t0, "init_s": t2 - t1, "lower_s": t3 - t2, "compile_s": t4 - t3,
              "first_step_s": t5 - t4, "compile_and_first_step_s": t5 - t2}
    with open(spec["out"], "w") as f:
        json.dump(result, f)


def _cache_size(d):
    n = size = 0
    for root, _, files in os.walk(d):
        for name in files:
            n += 1
            size += os.path.getsize(os.path.join(root, name))
    return n, size


def _spawn(spec: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, SCRIPT, "--_compile-child", json.dumps(spec)], cwd=REPO,
                          capture_output=True, text=True, env=dict(os.environ))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"compile child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(spec["out"]) as f:
        result = json.load(f)
    result["process_wall_s"] = wall
    return result


def run(ctx) -> dict:
    from benchmarks.steps import TrainCase

    if ctx.quick:
        case, pairs = TrainCase("resnet20", (32, 32, 3), 8), 1
    else:
        case, pairs = TrainCase("resnet50", (224, 224, 3), 16), 3
    print(f"\n== compile {case.label}: {pairs} cold/warm pair(s), each a fresh process", flush=True)
    runs = []
    for i in range(pairs):
        d = tempfile.mkdtemp(prefix="jaxcnn_bench_cache_")
        try:
            pair = {}
            for kind in ("cold", "warm"):
                spec = {"model": case.model, "input_shape": list(case.input_shape), "batch": case.batch,
                        "overrides": case.overrides, "cache_dir": os.path.join(d, "cache"),
                        "out": os.path.join(d, f"{kind}.json")}
                pair[kind] = _spawn(spec)
                pair[kind]["cache_files"], pair[kind]["cache_bytes"] = _cache_size(spec["cache_dir"])
                r = pair[kind]
                print(f"  pair {i + 1} {kind}: lower {r['lower_s']:.2f} s, compile {r['compile_s']:.2f} s, "
                      f"first step {r['first_step_s']:.2f} s (total {r['compile_and_first_step_s']:.2f} s; "
                      f"init {r['init_s']:.2f} s, imports {r['import_s']:.2f} s, process {r['process_wall_s']:.2f} s; "
                      f"cache {r['cache_files']} files, {r['cache_bytes'] / 2**20:.1f} MiB)", flush=True)
            runs.append(pair)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    med = {kind: {p: statistics.median(r[kind][p] for r in runs) for p in PHASES + ("process_wall_s",)}
           for kind in ("cold", "warm")}
    speedup = med["cold"]["compile_and_first_step_s"] / med["warm"]["compile_and_first_step_s"]
    print(f"  median cold/warm (compile + first step): {speedup:.2f}x")
    return {"model": case.label, "pairs": runs, "median": med, "cold_over_warm": speedup, "notes": []}


def markdown(data) -> list[str]:
    lines = [f"{data['model']}: jaxcnn train step (parallel \"none\"), each run a fresh process; warm = the "
             "persistent compilation cache (jax_compilation_cache_dir) the cold run of the pair filled. "
             "Seconds; median over pairs (min..max).", "",
             "| phase | cold | warm |", "|---|--:|--:|"]
    for p in PHASES + ("process_wall_s",):
        cells = []
        for kind in ("cold", "warm"):
            vals = [r[kind][p] for r in data["pairs"]]
            cells.append(f"{statistics.median(vals):.2f} ({min(vals):.2f}..{max(vals):.2f})")
        lines.append(f"| {p.removesuffix('_s').replace('_', ' ')} | " + " | ".join(cells) + " |")
    lines += ["", f"Cold / warm, compile + first step: {data['cold_over_warm']:.2f}x "
                  f"({len(data['pairs'])} pair(s)).", ""]
    return lines
