"""The three parallel modes compute the same training step (8 simulated CPU devices)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxcnn
from jaxcnn.data import augment, synthetic
from jaxcnn.layers import Conv
from jaxcnn.train import create_train_state, make_strategy
from jaxcnn.train.parallel import PMAP_AXIS, PmapParallel

N_DEV = 8
BATCH = 16  # global: 2 examples per device
STEPS = 3
PRE = augment.make_preprocess(mean=(0.5,), std=(0.25,))


def _run(parallel, *, steps=STEPS):
    assert jax.device_count() == N_DEV
    data = synthetic((12, 12, 1), num_classes=10, size=BATCH * steps, seed=3)
    bn_axis = PMAP_AXIS if parallel == "pmap" else None
    model = jaxcnn.create_model("fashion_cnn_tiny", bn_axis_name=bn_axis)
    tx = optax.sgd(0.1, momentum=0.9)
    state = create_train_state(model, tx, jax.random.key(0), (12, 12, 1))
    init = jax.tree_util.tree_map(np.asarray, state.arrays())
    strat = make_strategy(parallel, preprocess=PRE)
    state = strat.put_state(state)
    key = np.asarray(jax.random.key_data(jax.random.key(1)))
    after = []
    for s in range(steps):
        sl = slice(s * BATCH, (s + 1) * BATCH)
        state, _ = strat.train(state, strat.put_batch({"image": data.images[sl], "label": data.labels[sl]}), key)
        after.append(strat.get_state(state).arrays())
    return init, after, data


def _assert_close(a, b, rtol=1e-5):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        scale = np.maximum(np.abs(x).max(), 1e-12)
        assert np.abs(x - y).max() <= rtol * scale, f"{jax.tree_util.keystr(path)} differs"


@pytest.fixture(scope="module")
def runs():
    return {mode: _run(mode) for mode in ("none", "pmap", "mesh")}


def test_modes_agree_on_params_and_batch_stats(runs):
    ref = runs["none"][1][-1]
    for mode in ("pmap", "mesh"):
        got = runs[mode][1][-1]
        assert int(got["step"]) == STEPS
        _assert_close(ref["params"], got["params"])
        _assert_close(ref["batch_stats"], got["batch_stats"])


def test_batch_stats_are_those_of_the_global_batch(runs):
    # After ONE step from zero-mean running statistics, BatchNorm's running mean is
    # momentum * 0 + (1 - momentum) * mean over the whole global batch of conv1's output
    # (momentum 0.9, flax's convention). Compute conv1's output from the initial kernel directly.
    init, _, data = runs["none"]
    for mode in ("pmap", "mesh"):
        one_step = runs[mode][1][0]
        _check_first_step_stats(init, one_step, data)


def _check_first_step_stats(init, one_step, data):
    x = PRE(jnp.asarray(data.images[:BATCH]), None, False)
    y = Conv(4, 3, padding="SAME", use_bias=False).apply({"params": init["params"]["conv1"]}, x)
    expected = 0.1 * np.asarray(y).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(one_step["batch_stats"]["bn1"]["mean"], expected, rtol=1e-5, atol=1e-7)
    # The mean of one device's two examples is not the global one (so the check can fail).
    local = 0.1 * np.asarray(y[:BATCH // N_DEV]).mean(axis=(0, 1, 2))
    assert not np.allclose(local, expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("mode", ["pmap", "mesh"])
def test_global_batch_not_divisible_by_devices(mode):
    strat = make_strategy(mode, preprocess=PRE)
    with pytest.raises(ValueError, match="not divisible by the 8 devices"):
        strat.check_batch(12)
    if mode == "pmap":
        with pytest.raises(ValueError, match="not divisible"):
            strat.put_batch({"image": np.zeros((12, 4, 4, 1), np.uint8), "label": np.zeros(12, np.int32)})


def test_unknown_parallel_mode():
    with pytest.raises(ValueError, match="unknown parallel 'pmapp'.*Did you mean 'pmap'"):
        make_strategy("pmapp", preprocess=PRE)
