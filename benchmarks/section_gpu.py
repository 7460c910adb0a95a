"""Section `gpu`: ResNet-50 training on an accelerator, bf16 compute, synthetic data: images/s and MFU.

The jaxcnn train step exactly as `scripts/train.py` runs it (parallel="none", state donated), with the
model's `dtype=bfloat16` (parameters, optimizer state and the loss stay float32) beside the same step in
float32, interleaved. MFU = model FLOPs per step / median step time / the device's dense bf16 peak.
Model FLOPs per step = 3 x 2 x multiply-adds per image (forward, then the backward's two products of the
same size) x batch, the multiply-adds from `jaxcnn.summary`; XLA's own count (`cost_analysis()`) is
reported beside it.

On a CPU the section is skipped (`--quick` runs a ResNet-20 at batch 8 instead, to check the code path).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

import jaxcnn
from jaxcnn.models import default_input_shape

from benchmarks import gpu_check, steps
from benchmarks.timing import calibrate, fmt_ms, fmt_paired, interleaved, paired, summary, warm_up

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, FLOP/s. The first entry whose
# key is contained in jax's device_kind wins, so the more specific names come first.
BF16_PEAK_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("V100", 125e12),  # fp16 tensor cores; V100 has no bf16
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),
    ("TPU v4", 275e12),
    ("TPU v6", 918e12),
)
# MLPerf Training's ResNet-50 throughput per H100, the reference figure.
REFERENCE_IMAGES_PER_S = 7000.0

FULL_CASE = steps.TrainCase("resnet50", (224, 224, 3), 256)
QUICK_CASE = steps.TrainCase("resnet20", (32, 32, 3), 8)


def peak_flops(device_kind: str) -> Optional[float]:
    """The dense bf16 peak of a device kind (FLOP/s), or None where it is not in the table."""
    for key, flops in BF16_PEAK_FLOPS:
        if key.lower() in device_kind.lower():
            return flops
    return None


def train_flops_per_image(macs_per_image: int) -> float:
    """Forward 2 FLOPs per multiply-add; the backward computes the input and the weight gradients, each a
    product of the forward's size: 3 x 2 x MACs (the convention of MLPerf and of the scaling-law papers)."""
    return 6.0 * macs_per_image


def mfu(flops_per_step: float, step_s: float, peak: Optional[float]) -> Optional[float]:
    return flops_per_step / step_s / peak if peak and step_s > 0 else None


def _xla_flops(case: steps.TrainCase) -> Optional[float]:
    """XLA's FLOP count of the train step, from the lowered module (no second compilation of a ResNet-50: on
    a GPU that is a minute of autotuning); from the compiled one where the lowered has no cost model."""
    step, state, batch, key = steps.jaxcnn_abstract(case)
    lowered = step.lower(state, batch, key)
    for get in (lowered.cost_analysis, lambda: lowered.compile().cost_analysis()):
        try:
            cost = get()
        except Exception:  # some backends have no cost model
            continue
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        if cost and cost.get("flops"):
            return float(cost["flops"])
    return None


def run(ctx) -> dict:
    backend, kind = jax.default_backend(), jax.devices()[0].device_kind
    if backend == "cpu" and not ctx.quick:
        why = "skipped: JAX runs on the CPU (this section needs a GPU or TPU; --quick checks the code path on a CPU)"
        print(f"  {why}")
        return {"skipped": why, "notes": []}
    base = QUICK_CASE if ctx.quick else FULL_CASE
    if ctx.models and ctx.quick:  # a smoke run with another small model (scripts/gpu_check.sh --cpu-smoke)
        name = ctx.models.split(",")[0].strip()
        base = steps.TrainCase(name, tuple(default_input_shape(name)), QUICK_CASE.batch)
    elif ctx.models:
        print("  --models does not apply here: the gpu section runs ResNet-50 (ResNet-20, or --models, with --quick)")
    rounds = ctx.rounds or (3 if ctx.quick else 10)
    peak = peak_flops(kind)
    macs = jaxcnn.summary(base.model, base.input_shape).total_macs
    flops_per_step = train_flops_per_image(macs) * base.batch
    print(f"\n== gpu {base.label} on {kind} ({backend}); bf16 peak "
          f"{'%.0f TFLOP/s' % (peak / 1e12) if peak else 'unknown'}; model FLOPs per step "
          f"{flops_per_step / 1e9:,.1f} GFLOP", flush=True)
    cases = {"bf16": steps.TrainCase(base.model, base.input_shape, base.batch, {"dtype": jnp.bfloat16}),
             "f32": base}
    xla = {name: _xla_flops(case) for name, case in cases.items()}
    batch = steps.make_batch(base, 1000 if base.model == "resnet50" else 10)
    variants = []
    for name, case in cases.items():
        v = steps.jaxcnn_variant(case, batch)
        v.name = f"jaxcnn {name}"
        variants.append(v)
    warm_up(variants)
    reps = calibrate(variants, 0.1 if ctx.quick else 2.0, max_reps=200)
    interleaved(variants, rounds, reps)
    impls = {}
    for v, (name, _) in zip(variants, cases.items()):
        s = summary(v.times)
        s.update(images_per_s=base.batch / s["median_s"], first_call_s=v.first_call_s,
                 xla_flops_per_step=xla[name], mfu=mfu(flops_per_step, s["median_s"], peak))
        impls[name] = s
        print(f"  {v.name:12s} {fmt_ms(s)}  {s['images_per_s']:10.1f} img/s"
              + (f"  MFU {s['mfu']:.1%}" if s["mfu"] is not None else "")
              + (f"  (XLA counts {xla[name] / 1e9:,.1f} GFLOP per step)" if xla[name] else ""))
    speedup = paired(variants[0].times, variants[1].times)
    print(f"  bf16/f32 per round {fmt_paired(speedup)}")
    return {"model": base.model, "input_shape": list(base.input_shape), "batch": base.batch, "device_kind": kind,
            "backend": backend, "peak_bf16_flops": peak, "macs_per_image": macs, "flops_per_step": flops_per_step,
            "impls": impls, "bf16_over_f32": speedup, "rounds": rounds, "reps": reps,
            "reference_images_per_s": REFERENCE_IMAGES_PER_S, "notes": []}


def markdown(data) -> list[str]:
    checks = gpu_check.markdown(data["checks"], data) if data.get("checks") else []
    if data.get("skipped") or data.get("failed"):
        return [(data.get("skipped") or data["failed"]) + ".", ""] + checks
    peak = data["peak_bf16_flops"]
    lines = [f"{data['model']} {'x'.join(map(str, data['input_shape']))} batch {data['batch']}, synthetic data, on "
             f"{data['device_kind']}; the jaxcnn train step with the model's compute dtype bfloat16 (parameters "
             "and optimizer state float32) and in float32. Model FLOPs per step = 6 x multiply-adds per image x "
             f"batch = {data['flops_per_step'] / 1e9:,.1f} GFLOP; dense bf16 peak "
             f"{'%.0f TFLOP/s' % (peak / 1e12) if peak else 'unknown (device not in the table: no MFU)'}.", "",
             "| compute | ms per step | images/s | MFU | XLA GFLOP per step | first call s |",
             "|---|--:|--:|--:|--:|--:|"]
    for name, s in data["impls"].items():
        lines.append(f"| {name} | {fmt_ms(s)} | {s['images_per_s']:.1f} | "
                     f"{'%.1f%%' % (100 * s['mfu']) if s.get('mfu') is not None else '—'} | "
                     f"{'%.1f' % (s['xla_flops_per_step'] / 1e9) if s.get('xla_flops_per_step') else '—'} | "
                     f"{s['first_call_s']:.1f} |")
    bf16 = data["impls"]["bf16"]["images_per_s"]
    lines += ["", f"bf16 over f32, per round: {fmt_paired(data['bf16_over_f32'])}. Goal: "
              f"{data['reference_images_per_s']:,.0f} images/s per H100 (MLPerf Training); bf16 reaches "
              f"{bf16 / data['reference_images_per_s']:.2f} of it. {data['rounds']} interleaved rounds of "
              f"{data['reps']} steps.", ""]
    return lines + checks
