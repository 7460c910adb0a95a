"""Crash safety: scripts/train.py killed with SIGKILL at random moments (seeded)
and started again with the same command ends with exactly the parameters and
metrics of a run that was never interrupted."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from jaxcnn.train import train_and_evaluate
from jaxcnn.train.checkpoint import Checkpointer

sys.path.insert(0, os.path.dirname(__file__))
from test_train_loop import tiny_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 24
SETTINGS = dict(num_steps=NUM_STEPS, checkpoint_every=3, eval_every=10, log_every=1)
CONFIG_FILE = """
from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.dataset = "synthetic"
    c.synthetic_shape = (12, 12, 1)
    c.synthetic_size = 96
    c.model.name = "fashion_cnn_tiny"
    c.parallel = "none"
    c.batch_size = 8
    c.eval_batch_size = 48
    c.num_steps = {num_steps}
    c.log_every = {log_every}
    c.eval_every = {eval_every}
    c.checkpoint_every = {checkpoint_every}
    c.progress = False
    c.optimizer.warmup_steps = 2
    return c
"""


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    for r in recs:
        r.pop("images_per_sec"), r.pop("wall_time_sec")  # timings differ between runs
    return recs


def _lines(workdir):
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            return sum(1 for line in f if line.endswith("\n"))
    except FileNotFoundError:
        return 0


def test_kill_9_at_random_points_then_rerun_matches_uninterrupted_run(tmp_path):
    config_path = tmp_path / "crash_config.py"
    config_path.write_text(CONFIG_FILE.format(**SETTINGS))
    wd = str(tmp_path / "killed")
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config", str(config_path), "--workdir", wd]
    env = {**os.environ, "PYTHONPATH": ROOT}

    rng = random.Random(20261123)
    kills = []
    for _ in range(2):
        # Kill once the run has logged a seeded, growing number of steps, after a seeded short delay,
        # so the kill lands while training (between, during or right after checkpoint saves).
        target = min(_lines(wd) + rng.randint(2, 7), NUM_STEPS - 3)
        delay = rng.uniform(0.0, 0.05)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while proc.poll() is None and _lines(wd) < target and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append((target, proc.returncode))
    assert any(code == -signal.SIGKILL for _, code in kills), f"no run was killed mid-training: {kills}"

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr

    ref_wd = str(tmp_path / "uninterrupted")
    ref = train_and_evaluate(tiny_config(**SETTINGS), ref_wd)  # the same config, never stopped

    assert _metrics(wd) == _metrics(ref_wd), kills
    like = ref["state"].arrays()
    like = jax.tree_util.tree_map(np.asarray, like)
    got, _ = Checkpointer(os.path.join(wd, "checkpoints")).restore(like, step=NUM_STEPS)
    want, _ = Checkpointer(os.path.join(ref_wd, "checkpoints")).restore(like, step=NUM_STEPS)
    leaves_got, leaves_want = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    assert len(leaves_got) == len(leaves_want) > 0
    for a, b in zip(leaves_got, leaves_want):
        assert a.dtype == b.dtype and np.array_equal(a, b)  # bit for bit
