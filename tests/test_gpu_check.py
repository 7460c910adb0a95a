"""scripts/gpu_check.sh: its CPU path end to end (--cpu-smoke), and the pieces of its report.

The script's real run needs a GPU machine (benchmarks/README.md, "On a GPU"); here it runs on the CPU with
two model families, a one-round LeNet-5 benchmark and 20 training steps, writing into a temporary folder,
never over the committed benchmarks/RESULTS.md.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from benchmarks import gpu_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _metrics(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def test_time_to_accuracy_is_the_first_evaluation_at_the_target(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _metrics(path, [
        {"step": 50, "train_loss": 1.0, "images_per_sec": 10.0, "wall_time_sec": 5.0},  # includes compilation
        {"step": 100, "train_loss": 0.5, "images_per_sec": 1000.0, "wall_time_sec": 6.0, "eval_accuracy": 0.85},
        {"step": 200, "train_loss": 0.4, "images_per_sec": 1200.0, "wall_time_sec": 7.5, "eval_accuracy": 0.9001},
        {"step": 300, "train_loss": 0.3, "images_per_sec": 1100.0, "wall_time_sec": 9.0, "eval_accuracy": 0.899},
    ])
    got = gpu_check.time_to_accuracy(str(path), 0.90)
    assert got["reached"] == {"step": 200, "wall_time_sec": 7.5, "eval_accuracy": 0.9001}
    assert got["final"] == {"step": 300, "eval_accuracy": 0.899, "wall_time_sec": 9.0}
    assert got["images_per_sec_median"] == 1100.0  # the first window (compilation) left out
    cell = gpu_check._job_cell(got)
    assert "first at step 200" in cell and "7.5 s" in cell
    missed = gpu_check.time_to_accuracy(str(path), 0.95)
    assert missed["reached"] is None and missed["best"] == {"step": 200, "eval_accuracy": 0.9001}
    assert "not reached (best 0.9001 at step 200)" in gpu_check._job_cell(missed)
    assert gpu_check.time_to_accuracy(str(tmp_path / "none.jsonl")) is None


def test_junit_summary_counts_and_names_failures(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" time="3.5">'
        '<testcase classname="tests.test_accelerator" name="test_op_matches_cpu[convolve_valid-bf16]" time="1">'
        '<properties><property name="rel_err" value="forward 3.10e-03, gradients 2.00e-03, 4.50e-03"/></properties>'
        '</testcase>'
        '<testcase classname="tests.test_accelerator" name="test_b[x]" time="1">'
        '<failure message="AssertionError: resnet bf16 gradients: relative error 9e-01">trace</failure></testcase>'
        '<testcase classname="tests.test_accelerator" name="test_c" time="0"><skipped message="why"/></testcase>'
        '<testcase classname="tests.test_accelerator" name="test_d" time="0"><error message="boom"/></testcase>'
        '</testsuite></testsuites>')
    got = gpu_check.junit_summary(str(path))
    assert (got["passed"], got["failed"], got["skipped"]) == (1, 2, 1)
    assert got["failures"][0] == {"test": "tests.test_accelerator::test_b[x]",
                                  "message": "AssertionError: resnet bf16 gradients: relative error 9e-01"}
    assert got["seconds"] == 3.5
    assert got["errors"] == {"test_op_matches_cpu[convolve_valid-bf16]": "forward 3.10e-03, gradients 2.00e-03, 4.50e-03"}
    assert gpu_check.error_lines(got["errors"])[0].endswith("bf16 4.5e-03 (convolve_valid).")


def test_report_keeps_the_cpu_sections_and_says_when_the_bench_failed(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(os.path.join(ROOT, "benchmarks", "results.json"), results / "results.json")
    before = json.loads((results / "results.json").read_text())
    work = tmp_path / "work"
    (work / "main_job").mkdir(parents=True)
    (work / "steps.tsv").write_text("tests\t0\t12\t\ntests_models\t0\t40\t\n"
                                    "bench\t124\t240\tkilled at its 240 s limit\ntrain\t0\t30\t\n")
    _metrics(work / "main_job" / "metrics.jsonl", [
        {"step": 100, "images_per_sec": 9e4, "wall_time_sec": 3.0, "eval_accuracy": 0.91}])
    checks = gpu_check.collect(str(work), smoke=False, command="bash scripts/gpu_check.sh")
    md, js, data = gpu_check.attach(str(results), checks)
    assert data["checks"] is checks and data["failed"].startswith("the benchmark wrote no figures")
    after = json.loads(open(js).read())
    for name, rec in before["sections"].items():
        assert after["sections"][name] == rec  # the CPU figures are kept as they were
    text = open(md).read()
    assert "## gpu:" in text and "## train:" in text and "## ops:" in text
    assert "the benchmark wrote no figures (its step: timed out, 240 s" in text
    assert "### The GPU check" in text and "| accelerator tests" in text and "no test report" in text
    assert "first at step 100" in text


@pytest.mark.slow
def test_cpu_smoke_run_end_to_end(tmp_path):
    committed = os.path.join(ROOT, "benchmarks", "RESULTS.md")
    digest = hashlib.sha256(open(committed, "rb").read()).hexdigest()
    out, results = tmp_path / "out", tmp_path / "results"
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(out), GPU_CHECK_WORK=str(tmp_path / "work"),
               # the Fashion-MNIST array_record files the test suite already prepared (tests/conftest.py)
               TFDS_DATA_DIR=os.environ.get("TFDS_DATA_DIR", os.path.join(ROOT, ".tfds_test_cache")))
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), "--cpu-smoke", "--results-dir",
                           str(results)], env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "GPU check (CPU smoke) on cpu (cpu," in log
    text = (results / "RESULTS.md").read_text()
    assert "**Quick run" in text and "## gpu:" in text and "lenet5_modern" in text
    assert "| bf16 |" in text and "| f32 |" in text  # the benchmark's table
    row = next(line for line in text.splitlines() if line.startswith("| benchmark"))
    assert "lenet5_modern batch 8: bf16 " in row and "images/s" in row
    assert "CPU smoke run (`--cpu-smoke`)" in text
    assert "Largest relative error of the ops" in text and "| bf16[fashion_cnn_tiny] | outputs " in text
    row = next(line for line in text.splitlines() if line.startswith("| accelerator tests (`"))
    assert "| ok, " in row and " 0 failed" in row and int(row.split("|")[3].split()[0]) >= 20  # passed
    assert "| ok, " in next(line for line in text.splitlines() if line.startswith("| accelerator tests: every"))
    row = next(line for line in text.splitlines() if line.startswith("| main job"))
    assert "--config.num_steps=20" in row and "| ok, " in row and "final 0." in row and "at step 20" in row
    for name in ("gpu_check.log", "RESULTS.md", "results.json", "junit_ops.xml", "junit_models.xml",
                 "main_job_metrics.jsonl"):
        assert (out / name).exists(), name
    assert hashlib.sha256(open(committed, "rb").read()).hexdigest() == digest  # never written over
