"""Section `parallel`: the data-parallel overhead of jaxcnn's strategies.

One child process of scripts/bench.py (`--_parallel-child`) with
XLA_FLAGS=--xla_force_host_platform_device_count=2 (two simulated CPU devices
sharing the machine's cores) times the train step at one global batch under
parallel "none" (one device), "pmap" and "mesh", in interleaved rounds. The
model, strategy and state are built as jaxcnn.train's loop builds them
(build_model, make_strategy, create_train_state, put_state, put_batch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from benchmarks.section_compile import REPO, SCRIPT
from benchmarks.timing import calibrate, fmt_ms, interleaved, ratio, stepping_variant, summary, warm_up

DEVICES = 2
MODES = ("none", "pmap", "mesh")


def child(spec_json: str) -> None:
    spec = json.loads(spec_json)
    import jax
    import ml_collections
    import numpy as np

    from benchmarks import steps
    from jaxcnn.data import augment
    from jaxcnn.train import base_config, create_train_state, make_strategy
    from jaxcnn.train.loop import build_model

    assert jax.device_count() == DEVICES, f"expected {DEVICES} devices, got {jax.devices()}"
    case = steps.TrainCase(spec["model"], tuple(spec["input_shape"]), spec["batch"])
    batch = steps.make_batch(case, 10)
    key = np.asarray(jax.random.key_data(jax.random.key(1)))
    variants = []
    for mode in MODES:
        config = base_config()
        config.model = ml_collections.ConfigDict({"name": case.model})
        config.parallel, config.mixed_precision = mode, False
        model = build_model(config, 10)  # sets bn_axis_name under pmap, as the loop does
        tx, schedule = steps.jaxcnn_optimizer()
        strategy = make_strategy(mode, preprocess=augment.make_preprocess(), learning_rate_fn=schedule)
        strategy.check_batch(case.batch)
        state = create_train_state(model, tx, jax.random.key(0), case.input_shape)
        state = strategy.put_state(state.replace_arrays(jax.tree_util.tree_map(np.asarray, state.arrays())))
        dev_batch = strategy.put_batch(batch)
        variants.append(stepping_variant(mode, strategy.train, state, dev_batch, key, items=case.batch,
                                         note=f"{strategy.num_devices} device(s)"))
    warm_up(variants)
    reps = calibrate(variants, spec["target_s"])
    interleaved(variants, spec["rounds"], reps)
    out = {"devices": [str(d) for d in jax.devices()], "reps": reps, "rounds": spec["rounds"], "modes": {}}
    for v in variants:
        s = summary(v.times)
        s["images_per_s"] = v.items / s["median_s"]
        s["devices_used"] = v.note
        out["modes"][v.name] = s
    with open(spec["out"], "w") as f:
        json.dump(out, f)


def run(ctx) -> dict:
    case = ("keras_cifar_cnn", (32, 32, 3), 16) if ctx.quick else ("resnet20", (32, 32, 3), 128)
    rounds = ctx.rounds or (3 if ctx.quick else 10)
    print(f"\n== parallel {case[0]} global batch {case[2]} on {DEVICES} simulated CPU devices", flush=True)
    with tempfile.TemporaryDirectory(prefix="jaxcnn_bench_par_") as d:
        spec = {"model": case[0], "input_shape": list(case[1]), "batch": case[2], "rounds": rounds,
                "target_s": 0.05 if ctx.quick else 1.0, "out": os.path.join(d, "out.json")}
        env = dict(os.environ)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={DEVICES}").strip()
        env["JAX_PLATFORMS"] = "cpu"
        proc = subprocess.run([sys.executable, SCRIPT, "--_parallel-child", json.dumps(spec)], cwd=REPO,
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"parallel child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(spec["out"]) as f:
            data = json.load(f)
    data.update(model=case[0], input_shape=list(case[1]), batch=case[2], xla_flags=env["XLA_FLAGS"])
    m = data["modes"]
    data["ratios"] = {"pmap/none": ratio(m["pmap"], m["none"]), "mesh/none": ratio(m["mesh"], m["none"]),
                      "mesh/pmap": ratio(m["mesh"], m["pmap"])}
    for name, s in m.items():
        print(f"  {name:5s} {fmt_ms(s)}  {s['images_per_s']:9.1f} img/s  ({s['devices_used']})")
    print("  " + "  ".join(f"{k} {v:.3f}" for k, v in data["ratios"].items()) + "  (throughput ratios)")
    data["notes"] = []
    return data


def markdown(data) -> list[str]:
    lines = [f"{data['model']}, global batch {data['batch']}, {DEVICES} simulated CPU devices "
             f"(XLA_FLAGS `{data['xla_flags']}`, JAX_PLATFORMS=cpu; the devices share the machine's cores). "
             "Median ms per step (min..max); ratios are throughput ratios.", "",
             "| parallel | devices | ms | img/s |", "|---|---|--:|--:|"]
    for name, s in data["modes"].items():
        lines.append(f"| {name} | {s['devices_used']} | {fmt_ms(s)} | {s['images_per_s']:.1f} |")
    lines += ["", "| ratio | value |", "|---|--:|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in data["ratios"].items()]
    lines += ["", f"{data['rounds']} interleaved rounds of {data['reps']} step(s).", ""]
    return lines
