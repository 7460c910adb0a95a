"""Two processes on 127.0.0.1 (jax.distributed, CPU collectives), 2 devices each,
train the same run as one process on one device."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxcnn.train import train_and_evaluate
from jaxcnn.train.checkpoint import Checkpointer

sys.path.insert(0, os.path.dirname(__file__))
from test_train_loop import tiny_config, tiny_config_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    workdir = str(tmp_path / "mp")
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": ROOT}
    config = tmp_path / "tiny.py"  # tiny_config's recipe as a file: the single-process run below trains the same
    config.write_text(tiny_config_file(num_steps=4, log_every=1, eval_every=2, checkpoint_every=2))
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config", str(config), "--workdir", workdir,
           "--config.parallel=mesh", f"--coordinator=127.0.0.1:{port}", "--num_processes=2"]
    procs = [subprocess.Popen(cmd + [f"--process_id={i}"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("two-process run timed out")
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    assert "test accuracy" in outs[0] and "4 devices, 2 processes" in outs[0], outs[0][-2000:]

    single = train_and_evaluate(tiny_config(num_steps=4, eval_every=2, parallel="none"), str(tmp_path / "one"))
    like = single["state"].arrays()
    multi, _ = Checkpointer(os.path.join(workdir, "checkpoints")).restore(like)
    assert int(multi["step"]) == 4
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(like), jax.tree_util.tree_leaves(multi)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert np.abs(a - b).max() <= 1e-5 * max(np.abs(a).max(), 1e-12), jax.tree_util.keystr(path)
