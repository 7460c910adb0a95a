"""The ablation runner: configs flip exactly one field, the runner's table is
well formed (one row per arm, mean ± std over >= 3 seeds), twin nets started
from flipped kernels train identically, gradient norms cover every convolution."""

import csv
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import create_model, experiments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The ablations the seed notes ask for, and the one model field each flips.
EXPECTED_FIELDS = {
    "skip": "skip",
    "kernel_plan": "kernel_plan",
    "bottleneck": "bottleneck",
    "conv_mode": "conv_mode",
    "alexnet_pooling": "overlap_pool",
    "alexnet_lrn": "lrn",
    # the registered lenet5_modern flips LeNet-5's four published switches together
    "lenet5": ("c3_table", "pooling", "activation", "output"),
}


def test_every_ablation_is_there():
    assert set(experiments.list_ablations()) == set(EXPECTED_FIELDS)


@pytest.mark.parametrize("name", sorted(EXPECTED_FIELDS))
def test_config_flips_exactly_one_field(name):
    cfg = experiments.load_ablation(name)
    assert cfg.name == name
    assert len(cfg.train.seeds) >= 3 and len(set(cfg.train.seeds)) == len(cfg.train.seeds)
    assert cfg.quick.steps < cfg.train.steps
    expected = EXPECTED_FIELDS[name]
    expected = {expected} if isinstance(expected, str) else set(expected)
    arms = experiments.arms_of(cfg)
    common = dict(cfg.model_overrides)
    by_model = {}
    for a in arms:
        by_model.setdefault(a.model, []).append(a)
    if name == "lenet5":
        (a, b) = arms
        assert experiments.flipped_fields(a, b, common) == expected
    else:
        for members in by_model.values():
            assert len(members) >= 2
            # the arm's module fields, compared directly: all equal but the ablated one
            fields = [m.fields(common) for m in members]
            for f in fields[1:]:
                assert {k for k in fields[0] if fields[0][k] != f[k]} == expected
            assert len({repr(f[next(iter(expected))]) for f in fields}) == len(members)


def test_skip_ablation_has_both_depths():
    cfg = experiments.load_ablation("skip")
    assert sorted({a.model for a in experiments.arms_of(cfg)}) == ["resnet20", "resnet56"]
    assert "grad_norms" in cfg.extras


def _tiny_config(field="conv_mode", extras=("twin_flip", "kernels")):
    arms = [dict(label="xcorr", model="fashion_cnn_tiny", overrides={"conv_mode": "cross_correlation"}),
            dict(label="conv", model="fashion_cnn_tiny", overrides={"conv_mode": "convolution"})]
    cfg = experiments.ablation_config("tiny", title="tiny", claim="none", field=field, arms=arms,
                                      model_overrides={"num_classes": 10, "batch_norm": False})
    cfg.dataset = "synthetic"
    cfg.synthetic_size = 96
    cfg.train.steps = 4
    cfg.train.batch_size = 16
    cfg.train.eval_examples = 48
    cfg.train.curve_every = 2
    cfg.optimizer.warmup_steps = 0
    cfg.extras = extras
    return cfg


def test_validate_refuses_two_flipped_fields():
    cfg = _tiny_config()
    cfg.arms[1]["overrides"]["hidden"] = 8
    with pytest.raises(ValueError, match="differ in"):
        experiments.validate_ablation(cfg)


def test_validate_refuses_fewer_than_three_seeds():
    cfg = _tiny_config()
    cfg.train.seeds = (0, 1)
    with pytest.raises(ValueError, match="3 seeds"):
        experiments.validate_ablation(cfg)


def test_unknown_ablation_names_the_known_ones():
    with pytest.raises(ValueError, match="known: .*skip"):
        experiments.load_ablation("skips")


def test_runner_writes_one_row_per_arm_with_mean_and_std(tmp_path):
    cfg = _tiny_config()
    experiments.validate_ablation(cfg)
    result = experiments.run_ablation(cfg, log=lambda s: None)
    files = experiments.write_results(result, str(tmp_path), cfg=cfg, command="test", wall_time_s=1.0,
                                      quick=False)
    assert {os.path.basename(f) for f in files} >= {"results.csv", "curves.csv", "training_error.png",
                                                      "kernels.png", "run.json", "table.md"}
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["arm"] for r in rows] == ["xcorr", "conv"]
    model = create_model("fashion_cnn_tiny", num_classes=10, batch_norm=False)
    n_params = jax.tree_util.tree_reduce(
        lambda a, x: a + x.size, jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"], 0)
    for r in rows:
        assert int(r["seeds"]) == 3 and int(r["steps"]) == 4
        assert int(r["params"]) == n_params
        accs = [float(a) for a in r["test_accuracy_per_seed"].split()]
        assert len(accs) == 3
        assert float(r["test_accuracy_mean"]) == pytest.approx(np.mean(accs), abs=1e-4)
        assert float(r["test_accuracy_std"]) == pytest.approx(np.std(accs, ddof=1), abs=1e-4)
        assert 0.0 <= float(r["train_error_mean"]) <= 1.0 and float(r["train_error_std"]) >= 0.0
        assert float(r["step_time_ms"]) > 0
    # the twin started from flipped kernels: same losses, learned kernels are flips
    assert result["twin_max_diff"] < 1e-5
    k = result["kernels"]
    np.testing.assert_allclose(k["conv"], np.flip(k["xcorr"], (0, 1)), atol=1e-5)
    assert not np.allclose(k["conv"], k["xcorr"], atol=1e-3)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["command"] == "test" and run["environment"]["jax"] == jax.__version__
    assert "±" in experiments.markdown_table(result["rows"])


def test_grad_norms_cover_every_convolution_in_forward_order():
    # stem + 3 stages x 1 basic block x 2 convs; shortcut "A" (identity / zero-pad) has no convolution
    model = create_model("resnet20", stage_sizes=(1, 1, 1), num_classes=10)
    key = jax.random.key(0)
    images = jax.random.normal(key, (4, 8, 8, 1))
    rows = experiments.grad_norms_at_init(model, (8, 8, 1), images, jnp.arange(4) % 10, key)
    assert len(rows) == 1 + 3 * 2
    assert rows[0][0] == experiments.conv_layers(model, (8, 8, 1))[0]
    assert [r[0] for r in rows[1:3]] == sorted(r[0] for r in rows[1:3])  # block0's conv1 before conv2
    assert all(np.isfinite(n) and n > 0 for _, n in rows)


def test_flip_kernels_makes_convolution_equal_cross_correlation():
    x = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
    xc = create_model("fashion_cnn_tiny", batch_norm=False)
    cv = create_model("fashion_cnn_tiny", batch_norm=False, conv_mode="convolution")
    params = xc.init(jax.random.key(0), x)["params"]
    np.testing.assert_allclose(cv.apply({"params": experiments.flip_kernels(params)}, x),
                               xc.apply({"params": params}, x), atol=1e-5)


def test_script_rejects_unknown_ablation():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "ablate.py"), "nope"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 2 and "unknown ablation 'nope'" in r.stderr
