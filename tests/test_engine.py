"""The one training engine: a workdir records its run (config.json), a rerun
of a finished run returns its final record, a rerun with another meaning is
refused in one line, the workdir is locked, interrupts checkpoint the last
finished step, and every script's --help works."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxcnn.train import Workdir, WorkdirError, build, run, train_and_evaluate
from jaxcnn.train.checkpoint import Checkpointer

sys.path.insert(0, os.path.dirname(__file__))
from test_train_loop import _equal_trees, _metrics, tiny_config, tiny_config_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_workdir_records_the_resolved_config_and_model(tmp_path):
    wd = str(tmp_path / "w")
    train_and_evaluate(tiny_config(num_steps=2), wd)
    rec = json.loads(open(os.path.join(wd, "config.json")).read())
    assert rec["model"] == "fashion_cnn_tiny" and rec["config"]["num_steps"] == 2
    assert rec["model_fields"]["widths"] == [4, 8, 8] and rec["model_fields"]["num_classes"] == 10
    assert rec["finished_step"] == 2


def test_rerun_of_a_finished_run_returns_its_final_record(tmp_path):
    wd = str(tmp_path / "w")
    first = train_and_evaluate(tiny_config(), wd)
    lines = open(os.path.join(wd, "metrics.jsonl")).read()
    again = train_and_evaluate(tiny_config(), wd)
    assert again["finished_before"] and again["steps_run"] == 0
    assert again["eval_accuracy"] == first["eval_accuracy"] and again["step"] == 6
    assert _equal_trees(again["state"].arrays(), first["state"].arrays())
    assert open(os.path.join(wd, "metrics.jsonl")).read() == lines  # nothing trained or written again


@pytest.mark.parametrize("key, value", [
    ("seed", 1), ("batch_size", 16), ("optimizer.learning_rate", 0.1), ("model.conv_mode", "convolution"),
    ("model.name", "fashion_cnn_small"), ("dataset", "fashion_mnist_offline"), ("optimizer.schedule", "constant"),
    ("preprocess.flip", True),
])
def test_rerun_with_another_meaning_is_refused_naming_the_key(tmp_path, key, value):
    wd = str(tmp_path / "w")
    train_and_evaluate(tiny_config(num_steps=2), wd)
    with pytest.raises(WorkdirError, match=rf"holds a run with another config: {key} .*use a new --workdir"):
        train_and_evaluate(tiny_config(num_steps=2, **{key: value}), wd)


def test_harmless_keys_may_change_and_a_finished_run_may_be_extended(tmp_path):
    wd = str(tmp_path / "w")
    train_and_evaluate(tiny_config(num_steps=4, eval_every=2), wd)
    # evaluation cadence and logging do not change what the checkpoints mean
    train_and_evaluate(tiny_config(num_steps=4, eval_every=4, log_every=2, parallel="mesh"), wd)
    longer = train_and_evaluate(tiny_config(num_steps=6, eval_every=2), wd)
    assert longer["step"] == 6 and not longer.get("finished_before")
    assert [r["step"] for r in _metrics(wd)] == [1, 2, 3, 4, 5, 6]


def test_unfinished_run_keeps_its_num_steps(tmp_path):
    wd = str(tmp_path / "w")
    train_and_evaluate(tiny_config(), wd, stop_after_steps=3)
    with pytest.raises(WorkdirError, match=r"not finished \(num_steps 6\).*--config.num_steps=6"):
        train_and_evaluate(tiny_config(num_steps=10), wd)


def test_a_second_run_on_a_busy_workdir_is_refused(tmp_path):
    wd = str(tmp_path / "w")
    c = tiny_config()
    with Workdir(wd, c):
        with pytest.raises(WorkdirError, match=r"is in use by pid \d+; wait for that run to end"):
            train_and_evaluate(c, wd)
    train_and_evaluate(c, wd)  # released


def test_a_checkpoint_between_log_lines_resumes_bit_identical(tmp_path):
    # checkpoints at steps 2, 4 with a log line every 3 steps: the checkpoint carries the pending steps' metrics
    settings = dict(num_steps=8, log_every=3, checkpoint_every=2, eval_every=0)
    full = train_and_evaluate(tiny_config(**settings), str(tmp_path / "full"))
    part = str(tmp_path / "part")
    train_and_evaluate(tiny_config(**settings), part, stop_after_steps=5)
    resumed = train_and_evaluate(tiny_config(**settings), part)
    assert _equal_trees(full["state"].arrays(), resumed["state"].arrays())
    assert _metrics(part) == _metrics(str(tmp_path / "full"))


def test_phases_share_a_workdir(tmp_path):
    # Two engine runs on one open workdir, the second counting on from the first's end (fine-tuning's
    # phases): its records carry the phase and its steps follow the first's. (A phase stopped part-way and
    # resumed: tests/test_robustness_cases.py::test_11_ctrl_c_in_finetune_saves_the_last_step_and_resumes_...)
    wd_path = str(tmp_path / "w")
    c = tiny_config(num_steps=3, eval_every=0)
    c2 = tiny_config(num_steps=5, eval_every=0)
    with Workdir(wd_path, c) as wd:
        first = run(build(c), wd)
        second = run(build(c2, first_step=3, phase="second", init_state=lambda: first["state"]), wd)
    recs = _metrics(wd_path)
    assert [(r["step"], r.get("phase", "train")) for r in recs] == [(1, "train"), (2, "train"), (3, "train"),
                                                                      (4, "second"), (5, "second")]
    assert int(second["state"].step) == 5


INTERRUPT_CONFIG = tiny_config_file(700, 7, 0, 5000)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_the_last_finished_step_and_the_same_command_resumes(tmp_path, sig):
    cfg = tmp_path / "c.py"
    cfg.write_text(INTERRUPT_CONFIG)
    wd = str(tmp_path / "w")
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config", str(cfg), "--workdir", wd]
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not (os.path.exists(os.path.join(wd, "metrics.jsonl"))
                                          and os.path.getsize(os.path.join(wd, "metrics.jsonl")) > 0):
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-2000:]
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and "saved a checkpoint" in lines[0] and "run the same command again" in lines[0]
    step = Checkpointer(os.path.join(wd, "checkpoints")).latest_step()
    assert 7 <= step < 700 and f"stopped after step {step} " in lines[0]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ref = str(tmp_path / "ref")
    train_and_evaluate(tiny_config(num_steps=700, log_every=7, eval_every=0, checkpoint_every=5000), ref)
    assert _metrics(wd) == _metrics(ref)
    like = jax.tree_util.tree_map(np.asarray, build(tiny_config(num_steps=700)).init_state().arrays())
    got, _ = Checkpointer(os.path.join(wd, "checkpoints")).restore(like, step=700)
    want, _ = Checkpointer(os.path.join(ref, "checkpoints")).restore(like, step=700)
    assert _equal_trees(got, want)


@pytest.mark.parametrize("script", ["train.py", "finetune.py", "ablate.py", "bench.py", "summary.py"])
def test_every_script_has_help(script):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", script), "--help"], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("usage:")
    if script in ("train.py", "finetune.py", "ablate.py"):
        assert "--config" in r.stdout and "--config.KEY=VALUE" in r.stdout


def test_script_on_a_finished_workdir_prints_the_accuracy_and_exits_0(tmp_path):
    cfg = tmp_path / "c.py"
    cfg.write_text(INTERRUPT_CONFIG)
    wd = str(tmp_path / "w")
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config", str(cfg), "--workdir", wd,
           "--config.num_steps=4"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-2000:]
    acc = [l for l in first.stdout.splitlines() if "test accuracy" in l][0].split("test accuracy ")[1][:6]
    assert f"test accuracy {acc}" in second.stdout and "finished before" in second.stdout
    third = subprocess.run(cmd[:-1] + ["--config.num_steps=4", "--config.seed=9"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert third.returncode == 2 and third.stderr.count("\n") == 1 and "seed (0 -> 9)" in third.stderr
