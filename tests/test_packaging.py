"""A library people can install: provenance records, the extras' one-line messages, the console scripts'
entry points, flags by the book (--config.KEY VALUE, --print_config, --step), and weights in and out
(safetensors + model card, StableHLO, jaxcnn.load_weights)."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_train_loop import tiny_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 6-step tiny run with checkpoints at steps 2, 4 and 6."""
    from jaxcnn.train import train_and_evaluate

    wd = str(tmp_path_factory.mktemp("run") / "w")
    final = train_and_evaluate(tiny_config(num_steps=6, checkpoint_every=2, keep_checkpoints=3), wd)
    return wd, final


# --- provenance ---------------------------------------------------------------------------------------------

def _check_provenance(p):
    import flax
    import jaxlib.version
    import jax
    import optax

    import jaxcnn
    from jaxcnn.train.provenance import KEYS

    assert set(p) == set(KEYS)
    assert p["jaxcnn"] == jaxcnn.__version__ and p["jax"] == jax.__version__
    assert p["flax"] == flax.__version__ and p["optax"] == optax.__version__
    assert p["jaxlib"] == jaxlib.version.__version__
    assert p["python"] == ".".join(map(str, sys.version_info[:3]))
    assert p["devices"] == {"backend": jax.default_backend(), "count": jax.device_count(),
                            "local_count": jax.local_device_count(),
                            "kinds": sorted({d.device_kind for d in jax.devices()})}
    assert p["process_count"] == jax.process_count() == 1


def test_provenance_names_the_versions_commit_and_devices():
    import subprocess

    from jaxcnn.train.provenance import provenance

    p = provenance()
    _check_provenance(p)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout: its commit (an installed wheel records None)
        assert p["git_commit"] == head.stdout.strip() and isinstance(p["git_dirty"], bool)
    else:
        assert p["git_commit"] is None and p["git_dirty"] is None


def test_config_json_and_eval_json_carry_the_provenance(trained, monkeypatch):
    from jaxcnn.train.inference import evaluate_workdir
    from jaxcnn.train import provenance as prov

    wd, _ = trained
    record = json.load(open(os.path.join(wd, "config.json")))
    _check_provenance(record["provenance"])
    assert record["provenance"]["git_commit"] == prov.provenance()["git_commit"]
    # eval.json takes the same object from the same function
    monkeypatch.setattr(prov, "provenance", lambda: {"marker": 1})
    result = evaluate_workdir(wd, split="test[:8]")
    assert result["provenance"] == {"marker": 1}
    assert json.load(open(os.path.join(wd, "eval.json")))["provenance"] == {"marker": 1}


def test_ablation_run_json_takes_the_same_provenance(tmp_path, monkeypatch):
    from jaxcnn.ablation import report
    from jaxcnn.train import provenance as prov

    monkeypatch.setattr(prov, "provenance", lambda: {"marker": 2})
    monkeypatch.setattr(report, "plot_curves", lambda *a, **k: None)
    config = tiny_config()
    config.ablation.name, config.ablation.title = "t", "t"
    row = {"arm": "a", "eval_examples": 8, "steps": 6, "batch_size": 8}
    result = {"rows": [row], "claims": [], "curves": {}, "extras": {}, "seeds": [0]}
    monkeypatch.setattr(report, "markdown_table", lambda rows, claims: "")
    report.write_results(result, str(tmp_path), config=config, command="c", wall_time_s=1.0, quick=True,
                         load_before=[])
    assert json.load(open(tmp_path / "run.json"))["provenance"] == {"marker": 2}
