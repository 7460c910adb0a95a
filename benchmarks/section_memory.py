"""Section `memory`: XLA's memory_analysis() of each train step, jaxcnn vs plain Flax.

Lowered from abstract shapes (jax.eval_shape): nothing is allocated. The
estimate of the peak is argument + output + temp - alias (donated state
buffers reused for the output); `peak_memory_in_bytes` is XLA's own figure
where the backend reports it (0 otherwise).
"""

from __future__ import annotations

from benchmarks import steps

FIELDS = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
          "generated_code_size_in_bytes", "peak_memory_in_bytes")


def analyse(step, *args) -> dict:
    m = step.lower(*args).compile().memory_analysis()
    if m is None:
        return {}
    out = {f: int(getattr(m, f, 0) or 0) for f in FIELDS}
    out["estimated_peak_bytes"] = (out["argument_size_in_bytes"] + out["output_size_in_bytes"]
                                   + out["temp_size_in_bytes"] - out["alias_size_in_bytes"])
    return out


def run(ctx) -> dict:
    rows = []
    # Quick: the two smallest models (each case costs two compilations).
    for case in steps.select_cases(ctx.quick, ctx.models, limit=2 if ctx.quick else None):
        print(f"\n== memory {case.label}", flush=True)
        row = {"model": case.model, "label": case.label, "impls": {}}
        for impl, build in (("jaxcnn", steps.jaxcnn_abstract), ("flax", steps.flax_abstract)):
            try:
                row["impls"][impl] = analyse(*build(case))
            except Exception as e:  # a backend without memory statistics
                row["impls"][impl] = {"error": f"{type(e).__name__}: {e}"}
            m = row["impls"][impl]
            print(f"  {impl:7s} " + (", ".join(f"{k.replace('_size_in_bytes', '')} {_mib(v)}" for k, v in m.items()
                                               if k in FIELDS[:5]) + f"; peak~ {_mib(m['estimated_peak_bytes'])}"
                                    if "error" not in m else m["error"]))
        rows.append(row)
    return {"rows": rows, "notes": []}


def _mib(b):
    return f"{b / 2**20:.2f} MiB"


def markdown(data) -> list[str]:
    lines = ["MiB from `jit(step).lower(...).compile().memory_analysis()` on abstract shapes; peak ~ argument "
             "+ output + temp - alias (the donated state's buffers are reused for the new state). results.json "
             "also has XLA's `peak_memory_in_bytes`, where the backend reports one.",
             "", "| model | impl | argument | output | alias | temp | code | peak ~ |",
             "|---|---|--:|--:|--:|--:|--:|--:|"]
    for r in data["rows"]:
        for impl, m in r["impls"].items():
            if "error" in m:
                lines.append(f"| {r['label']} | {impl} | {m['error']} | | | | | |")
                continue
            cells = [m[f] / 2**20 for f in FIELDS[:5]] + [m["estimated_peak_bytes"] / 2**20]
            lines.append(f"| {r['label']} | {impl} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    lines.append("")
    return lines
