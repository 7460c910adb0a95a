"""Section `train`: train-step images/s, jaxcnn vs plain Flax vs PyTorch."""

from __future__ import annotations

import jax

import jaxcnn
from benchmarks import steps
from benchmarks.timing import calibrate, fmt_ms, fmt_paired, interleaved, paired, ratio, summary, warm_up


def run(ctx) -> dict:
    cases = steps.select_cases(ctx.quick, ctx.models)
    rounds = ctx.rounds or (3 if ctx.quick else 10)
    target = 0.05 if ctx.quick else 1.0  # seconds per timed call of the slowest variant
    torch, why = (None, "--no-torch given") if ctx.no_torch else steps.torch_available()
    notes = []
    if torch is None:
        notes.append(why)
        print(f"  {why}")
    else:
        notes.append(f"torch.set_num_threads({torch.get_num_threads()})")
    rows = []
    for case in cases:
        print(f"\n== train {case.label}", flush=True)
        model = jaxcnn.create_model(case.model, **case.overrides)
        n_params = jaxcnn.count_params(jax.eval_shape(
            lambda: model.init(jax.random.key(0), jax.numpy.zeros((1,) + case.input_shape), train=False)))
        num_classes = getattr(model, "num_classes", 10)
        batch = steps.make_batch(case, num_classes)
        variants = [steps.jaxcnn_variant(case, batch), steps.flax_variant(case, batch)]
        warm_up(variants)
        row = {"model": case.model, "label": case.label, "input_shape": list(case.input_shape),
               "batch": case.batch, "overrides": {k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in case.overrides.items()},
               "params": n_params}
        if torch is not None:
            tv, trial = steps.torch_variant(case, batch, trials=1 if ctx.quick else 3)
            tv.run(1)
            variants.append(tv)
            row["torch_format"] = tv.note
            row["torch_format_trial_ms"] = {k: 1e3 * v for k, v in trial.items()}
            print(f"  torch memory format: {tv.note} "
                  f"({', '.join(f'{k} {1e3 * v:.2f} ms' for k, v in trial.items())} per step, one trial)")
        reps = calibrate(variants, target)
        interleaved(variants, rounds, reps)
        row["reps"], row["rounds"] = reps, rounds
        row["impls"] = {}
        for v in variants:
            s = summary(v.times)
            s["images_per_s"] = v.items / s["median_s"]
            s["first_call_s"] = v.first_call_s
            row["impls"][v.name] = s
            print(f"  {v.name:7s} {fmt_ms(s)}  {s['images_per_s']:10.1f} img/s  (first call {v.first_call_s:.2f} s)")
        im = row["impls"]
        row["ratios"] = {"jaxcnn/flax": ratio(im.get("jaxcnn"), im.get("flax")),
                         "jaxcnn/torch": ratio(im.get("jaxcnn"), im.get("torch"))}
        by_name = {v.name: v.times for v in variants}
        row["paired"] = {f"jaxcnn/{other}": paired(by_name["jaxcnn"], by_name[other])
                         for other in ("flax", "torch") if other in by_name}
        print("  " + "  ".join(f"{k} {v:.3f}" for k, v in row["ratios"].items() if v is not None)
              + "  (throughput ratios: > 1 means jaxcnn is faster)")
        print("  per round: " + "  ".join(f"{k} {fmt_paired(v)} (jaxcnn faster in {v['a_faster']:.0%} of rounds)"
                                          for k, v in row["paired"].items() if v))
        rows.append(row)
        del variants
    return {"rows": rows, "notes": notes, "rounds": rounds}


def markdown(data) -> list[str]:
    lines = ["Median ms per step (min..max over rounds) and images/s at the median. Ratios are throughput "
             "ratios (other's ms / jaxcnn's ms): > 1 means jaxcnn is faster. Every step: forward in training "
             "mode, softmax cross-entropy, backward, SGD momentum 0.9. jaxcnn's step (`jaxcnn.train.train_step` "
             "under `make_strategy(\"none\")`, state donated) also returns accuracy, learning rate and a "
             "finite flag, and keeps the old state (one lax.cond over params, batch_stats and opt_state) when the "
             "loss or a gradient is NaN/Inf; the plain Flax step returns the loss only. Images arrive as float32.",
             ""]
    has_torch = any("torch" in r["impls"] for r in data["rows"])
    head = "| model | params | jaxcnn ms | img/s | Flax ms | img/s |"
    sep = "|---|--:|--:|--:|--:|--:|"
    if has_torch:
        head += " torch ms | img/s | torch format |"
        sep += "--:|--:|---|"
    head += " jaxcnn/flax |" + (" jaxcnn/torch |" if has_torch else "")
    sep += "--:|" + ("--:|" if has_torch else "")
    lines += [head, sep]
    for r in data["rows"]:
        cells = [r["label"], f"{r['params']:,}"]
        for impl in ("jaxcnn", "flax") + (("torch",) if has_torch else ()):
            s = r["impls"].get(impl)
            cells += [fmt_ms(s), f"{s['images_per_s']:.1f}"] if s else ["—", "—"]
        if has_torch:
            cells.append(r.get("torch_format", "—"))
        for k in ("jaxcnn/flax",) + (("jaxcnn/torch",) if has_torch else ()):
            v = r["ratios"].get(k)
            cells.append(f"{v:.3f}" if v is not None else "—")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if any(r.get("paired") for r in data["rows"]):
        lines += ["Per-round ratios: within each round every implementation ran back to back, so the ratio of "
                  "their times in one round is free of the load drifts between rounds. Median (quartiles) over "
                  "rounds, and the share of rounds in which jaxcnn was the faster:", "",
                  "| model | jaxcnn/flax | jaxcnn faster | jaxcnn/torch | jaxcnn faster |", "|---|--:|--:|--:|--:|"]
        for r in data["rows"]:
            cells = [r["label"]]
            for k in ("jaxcnn/flax", "jaxcnn/torch"):
                p = r.get("paired", {}).get(k)
                cells += [fmt_paired(p), f"{p['a_faster']:.0%}" if p else "—"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(f"{data['rounds']} interleaved rounds per model; steps per timed call: "
                 + ", ".join(f"{r['model']} {r['reps']}" for r in data["rows"]) + ".")
    lines.append("")
    return lines
