"""The GPU check's report: what `scripts/gpu_check.sh` ran, written into the `gpu` section of RESULTS.md.

    python -m benchmarks.gpu_check report --results-dir benchmarks --work /tmp/gpu_check.X [--smoke]

The script runs its steps (the accelerator tests in two runs, `scripts/bench.py --only gpu`, the main job
with an evaluation every 100 steps) and records each one's exit status and seconds in WORK/steps.tsv; this
module reads that, the tests' JUnit XML files and the main job's metrics.jsonl, attaches the result to the `gpu` section
of RESULTS_DIR/results.json as data["checks"] (creating the section if the benchmark did not write one) and
renders RESULTS.md again. Every other section of results.json is kept as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET
from typing import Optional

TARGET_ACCURACY = 0.90
STEPS = ("tests", "tests_models", "bench", "train")
JUNIT_FILES = ("junit_ops.xml", "junit_models.xml")


def read_steps(path: str) -> dict:
    """WORK/steps.tsv: one line per step, `name<TAB>exit status<TAB>seconds<TAB>note`."""
    steps = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3:
                    steps[parts[0]] = {"rc": int(parts[1]), "seconds": float(parts[2]),
                                       "note": parts[3] if len(parts) > 3 else ""}
    return steps


def junit_summary(paths, max_failures: int = 20) -> Optional[dict]:
    """Counts, the failing tests (id and the first line of the message) and the recorded relative errors from
    pytest's --junitxml files (one path or several; missing ones are left out)."""
    roots = []
    for path in [paths] if isinstance(paths, str) else paths:
        try:
            roots.append(ET.parse(path).getroot())
        except (OSError, ET.ParseError):
            pass
    if not roots:
        return None
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures, errors = [], {}
    for case in (c for root in roots for c in root.iter("testcase")):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        for prop in case.iter("property"):  # tests/test_accelerator.py records its relative errors
            if prop.get("name") == "rel_err":
                errors[case.get("name", "")] = prop.get("value", "")
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            counts["failed"] += 1
            message = (bad.get("message") or bad.text or "").strip().splitlines()
            failures.append({"test": test_id, "message": (message[0] if message else "")[:300]})
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    seconds = sum(float(s.get("time", 0) or 0) for root in roots for s in root.iter("testsuite"))
    return {**counts, "seconds": seconds, "failures": failures[:max_failures],
            "more_failures": max(0, len(failures) - max_failures), "errors": errors}


def error_lines(errors: dict) -> list[str]:
    """The relative errors the tests measured: each model's, and the largest per op mode."""
    models = {k: v for k, v in errors.items() if k.startswith("test_model_")}
    ops: dict = {}
    for name, value in errors.items():
        if name.startswith("test_op_matches_cpu[") and name.endswith("]"):
            op, mode = name[len("test_op_matches_cpu["):-1].rsplit("-", 1)
            worst = max((float(t.rstrip(",")) for t in value.split() if t[:1].isdigit()), default=0.0)
            if worst >= ops.get(mode, ("", -1.0))[1]:
                ops[mode] = (op, worst)
    lines = []
    if ops:
        lines += ["Largest relative error of the ops (forward or gradient) against the float32 CPU reference: "
                  + "; ".join(f"{mode} {e:.1e} ({op})" for mode, (op, e) in sorted(ops.items())) + ".", ""]
    if models:
        lines += ["| model test | relative error |", "|---|---|"]
        lines += [f"| {name.replace('test_model_', '').replace('_matches_cpu', '')} | {value} |"
                  for name, value in sorted(models.items())]
        lines.append("")
    return lines


def time_to_accuracy(metrics_path: str, target: float = TARGET_ACCURACY) -> Optional[dict]:
    """From a scripts/train.py metrics.jsonl: the first evaluation at or above `target` (step and the loop's
    wall_time_sec, which counts from the first step: compilation and evaluations included), the final
    evaluation, and the training throughput."""
    if not os.path.exists(metrics_path):
        return None
    records = []
    with open(metrics_path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    evals = [r for r in records if r.get("eval_accuracy") is not None]
    if not evals:
        return {"target": target, "reached": None, "evaluations": 0}
    hit = next((r for r in evals if r["eval_accuracy"] >= target), None)
    best = max(evals, key=lambda r: r["eval_accuracy"])
    final = evals[-1]
    rates = sorted(r["images_per_sec"] for r in records[1:] if r.get("images_per_sec"))  # the first has compile
    return {"target": target, "evaluations": len(evals),
            "reached": None if hit is None else {"step": hit["step"], "wall_time_sec": hit.get("wall_time_sec"),
                                                 "eval_accuracy": hit["eval_accuracy"]},
            "best": {"step": best["step"], "eval_accuracy": best["eval_accuracy"]},
            "final": {"step": final["step"], "eval_accuracy": final["eval_accuracy"],
                      "wall_time_sec": final.get("wall_time_sec")},
            "images_per_sec_median": rates[len(rates) // 2] if rates else None}


def collect(work: str, smoke: bool, command: str, target: float = TARGET_ACCURACY) -> dict:
    steps = read_steps(os.path.join(work, "steps.tsv"))
    train = time_to_accuracy(os.path.join(work, "main_job", "metrics.jsonl"), target)
    return {"smoke": smoke, "command": command, "steps": steps,
            "tests": junit_summary([os.path.join(work, f) for f in JUNIT_FILES]), "main_job": train,
            "main_job_command": _read(os.path.join(work, "main_job_command.txt")),
            "device": _read(os.path.join(work, "device.txt"))}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _step_cell(steps: dict, name: str) -> str:
    s = steps.get(name)
    if s is None:
        return "not run"
    what = "ok" if s["rc"] == 0 else ("timed out" if s["rc"] in (124, 137) else f"exit status {s['rc']}")
    return f"{what}, {s['seconds']:.0f} s" + (f" ({s['note']})" if s.get("note") else "")


def _bench_cell(data: Optional[dict]) -> str:
    impls = (data or {}).get("impls") or {}
    if not impls:
        return "no figures"
    cells = []
    for name, s in impls.items():
        mfu = f", MFU {100 * s['mfu']:.1f}%" if s.get("mfu") is not None else ""
        cells.append(f"{name} {s['images_per_s']:,.0f} images/s{mfu}")
    return f"{data['model']} batch {data['batch']}: " + "; ".join(cells)


def markdown(checks: dict, data: Optional[dict] = None) -> list[str]:
    """The GPU check's lines, appended to the `gpu` section (`data`: that section's benchmark figures)."""
    lines = ["### The GPU check: `bash scripts/gpu_check.sh`", ""]
    if checks.get("smoke"):
        lines += ["**CPU smoke run (`--cpu-smoke`): two model families, a tiny benchmark model, 20 training "
                  "steps; it checks the script, these are not GPU figures.**", ""]
    if checks.get("device"):
        lines += [f"Device: {checks['device']}.", ""]
    steps, tests, job = checks.get("steps", {}), checks.get("tests"), checks.get("main_job")
    lines += ["| step | status | result |", "|---|---|---|"]
    if tests:
        result = f"{tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped"
    else:
        result = "no test report"
    lines.append(f"| accelerator tests (`tests/test_accelerator.py`): ops, routes, parallel modes | "
                 f"{_step_cell(steps, 'tests')} | {result} |")
    lines.append(f"| accelerator tests: every model family, f32 and bf16 | {_step_cell(steps, 'tests_models')} | "
                 "(counted in the line above) |")
    lines.append(f"| benchmark (`scripts/bench.py --only gpu`) | {_step_cell(steps, 'bench')} | "
                 f"{_bench_cell(data)} |")
    lines.append(f"| main job (`{checks.get('main_job_command') or 'scripts/train.py'}`) | "
                 f"{_step_cell(steps, 'train')} | {_job_cell(job)} |")
    lines.append("")
    if tests and tests.get("errors"):
        lines += error_lines(tests["errors"])
    if tests and tests["failures"]:
        lines += ["Failed tests:", ""]
        lines += [f"- `{f['test']}`: {f['message']}" for f in tests["failures"]]
        if tests.get("more_failures"):
            lines.append(f"- ... and {tests['more_failures']} more (the log has them all)")
        lines.append("")
    return lines


def _job_cell(job: Optional[dict]) -> str:
    if not job:
        return "no metrics.jsonl"
    if not job.get("evaluations"):
        return "no evaluation recorded"
    target = job["target"]
    if job["reached"]:
        r = job["reached"]
        head = (f"test accuracy >= {target:.2f} first at step {r['step']:,} ({r['eval_accuracy']:.4f}) after "
                f"**{r['wall_time_sec']:.1f} s** of training")
    else:
        head = (f"test accuracy {target:.2f} not reached (best {job['best']['eval_accuracy']:.4f} at step "
                f"{job['best']['step']:,})")
    final = job["final"]
    tail = f"; final {final['eval_accuracy']:.4f} at step {final['step']:,}, {final['wall_time_sec']:.1f} s"
    rate = job.get("images_per_sec_median")
    return head + tail + (f"; {rate:,.0f} images/s (median of the logged windows)" if rate else "")


def attach(results_dir: str, checks: dict) -> tuple[str, str, dict]:
    """Put `checks` into results_dir/results.json's gpu section (made if missing) and render RESULTS.md.
    Returns the two paths and the section's data."""
    from benchmarks import env, report

    path = os.path.join(results_dir, "results.json")
    results = None
    if os.path.exists(path):
        try:
            with open(path) as f:
                results = json.load(f)
        except (OSError, json.JSONDecodeError):
            results = None
    info = env.collect()
    run = {"command": checks["command"], "date": env.now(), "load_before": env.loadavg(),
           "load_after": env.loadavg(), "env": info, "quick": checks["smoke"]}
    if not results or results.get("schema") != report.SCHEMA:
        results = {"schema": report.SCHEMA, "quick": checks["smoke"],
                   "last_run": dict(run, sections=["gpu"], wall_s=0.0), "sections": {}}
    sections = results.setdefault("sections", {})
    gpu = sections.get("gpu")
    if gpu is None:
        bench = checks["steps"].get("bench")
        why = ("the benchmark did not run" if bench is None else
               f"the benchmark wrote no figures (its step: {_step_cell(checks['steps'], 'bench')}; see the log)")
        gpu = {"run": run, "data": {"failed": why, "notes": []}}
    gpu["data"]["checks"] = checks
    sections["gpu"] = gpu
    results["sections"] = {k: sections[k] for k in report.SECTIONS if k in sections}
    return (*report.write(results_dir, results), gpu["data"])


def summary_lines(checks: dict, data: Optional[dict] = None) -> list[str]:
    """A short plain-text summary for the end of the log (the device call returns the log's tail)."""
    steps, tests, job = checks["steps"], checks["tests"], checks["main_job"]
    out = [f"GPU check{' (CPU smoke)' if checks['smoke'] else ''} on {checks.get('device') or '?'}:"]
    out.append(f"  tests : {_step_cell(steps, 'tests')} and {_step_cell(steps, 'tests_models')}; " + (
        f"{tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped" if tests else "no report"))
    out.append(f"  bench : {_step_cell(steps, 'bench')}; {_bench_cell(data)}")
    out.append(f"  train : {_step_cell(steps, 'train')}; {_job_cell(job).replace('**', '')}")
    for f in (tests or {}).get("failures", [])[:10]:
        out.append(f"  FAILED {f['test']}: {f['message'][:160]}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report", help="attach the GPU check's results to RESULTS_DIR/results.json and RESULTS.md")
    r.add_argument("--results-dir", required=True)
    r.add_argument("--work", required=True, help="the script's work folder (steps.tsv, junit_*.xml, main_job/)")
    r.add_argument("--smoke", action="store_true")
    r.add_argument("--command", default="bash scripts/gpu_check.sh")
    r.add_argument("--target", type=float, default=TARGET_ACCURACY)
    args = p.parse_args(argv)
    checks = collect(args.work, args.smoke, args.command, args.target)
    md, js, data = attach(args.results_dir, checks)
    print("\n".join(summary_lines(checks, data)))
    print(f"wrote {md} and {js}")
    steps_ok = all(checks["steps"].get(s, {}).get("rc", 1) == 0 for s in STEPS)
    tests_ok = bool(checks["tests"]) and checks["tests"]["failed"] == 0
    return 0 if steps_ok and tests_ok else 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    sys.exit(main())
