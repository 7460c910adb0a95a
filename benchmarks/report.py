"""benchmarks/RESULTS.md and benchmarks/results.json.

results.json holds one record per section: {"run": {command, date, load
before/after, env}, "data": ...}. A run of some sections replaces those
records and keeps the others (a quick run never mixes with a full one).
RESULTS.md is rendered from results.json; its header describes the last run.
"""

from __future__ import annotations

import json
import os

from benchmarks import section_compile, section_gpu, section_memory, section_ops, section_parallel, section_train
from benchmarks.cli import SECTIONS

RENDER = {"train": section_train.markdown, "ops": section_ops.markdown, "compile": section_compile.markdown,
          "memory": section_memory.markdown, "parallel": section_parallel.markdown,
          "gpu": section_gpu.markdown}
TITLES = {"train": "Train step: jaxcnn vs plain Flax vs PyTorch",
          "ops": "Convolution ops",
          "compile": "Compile time, cold and warm cache",
          "memory": "Train-step memory (XLA memory_analysis)",
          "parallel": "Data-parallel overhead: none vs pmap vs mesh",
          "gpu": "ResNet-50 on an accelerator: bf16 vs f32, images/s and MFU"}
SCHEMA = 1


def merge(out_dir: str, quick: bool, new_sections: dict, last_run: dict) -> dict:
    path = os.path.join(out_dir, "results.json")
    old = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, json.JSONDecodeError):
            old = {}
    keep = old.get("sections", {}) if old.get("schema") == SCHEMA and old.get("quick") == quick else {}
    sections = {**keep, **new_sections}
    return {"schema": SCHEMA, "quick": quick, "last_run": last_run,
            "sections": {k: sections[k] for k in SECTIONS if k in sections}}


def _env_lines(run: dict) -> list[str]:
    e = run["env"]
    threads = ", ".join(f"{k}={v}" for k, v in e["threads"].items()) or "library defaults (none set)"
    versions = ", ".join(f"{k} {v}" for k, v in e["versions"].items() if v)
    return [f"- Device: {e['device_kind']} ({e['backend']}, {e['device_count']} device(s))",
            f"- CPU: {e['cpu_model']}; {e['cpu_count']} cores ({e['cpus_usable']} usable by this process)",
            f"- Threads: {threads}",
            f"- Python {e['python']} on {e['platform']}; {versions}",
            f"- XLA_FLAGS: `{e['xla_flags'] or '(empty)'}`",
            f"- Native CPU convolutions (jaxcnn.ops.native): {e.get('native_conv', 'not recorded')}"]


def _run_line(run: dict) -> str:
    return (f"Run: `{run['command']}` on {run['date']}; load average before {run['load_before']}, "
            f"after {run['load_after']}.")


def _same_setting(a: dict, b: dict) -> bool:
    keys = ("device_kind", "cpu_model", "cpu_count", "threads", "xla_flags", "native_conv", "versions")
    return all(a["env"].get(k) == b["env"].get(k) for k in keys)


def render(results: dict) -> str:
    sections = results["sections"]
    latest = results["last_run"]
    lines = ["# jaxcnn benchmark results", ""]
    if results["quick"]:
        lines += ["**Quick run (`--quick`): tiny shapes and 2-3 rounds, a smoke test of the script. "
                  "These are not figures.**", ""]
    lines += ["Written by `scripts/bench.py` (see benchmarks/README.md). Every section measures its variants "
              "side by side in one process, in interleaved rounds (each variant once per round, in a balanced "
              "order: benchmarks.timing) after a warm-up; figures are medians with the spread min..max over "
              "rounds.", "",
              "## Machine and software", ""] + _env_lines(latest) + [
              "", f"Last run: `{latest['command']}` on {latest['date']} (sections {', '.join(latest['sections'])}; "
                  f"{latest['wall_s']:.0f} s); load average before {latest['load_before']}, after "
                  f"{latest['load_after']}.", ""]
    for name, rec in sections.items():
        lines += [f"## {name}: {TITLES[name]}", "", _run_line(rec["run"])]
        if not _same_setting(rec["run"], latest):
            lines += ["", "Measured in a different setting from the header's:"] + _env_lines(rec["run"])
        notes = rec["data"].get("notes") or []
        if notes:
            lines += [""] + [f"Note: {n}." for n in notes]
        lines += [""] + RENDER[name](rec["data"])
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ANALYSIS.md")
    if not results["quick"] and os.path.exists(analysis):  # the hand-written reading of the figures
        with open(analysis) as f:
            lines += ["", f.read().strip()]
    return "\n".join(lines).rstrip() + "\n"


def write(out_dir: str, results: dict) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    jpath, mpath = os.path.join(out_dir, "results.json"), os.path.join(out_dir, "RESULTS.md")
    with open(jpath + ".tmp", "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
    os.replace(jpath + ".tmp", jpath)
    with open(mpath + ".tmp", "w") as f:
        f.write(render(results))
    os.replace(mpath + ".tmp", mpath)
    return mpath, jpath
