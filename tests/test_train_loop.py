"""The training loop: resumption, checkpoints, divergence, configuration errors,
TensorBoard files, and the convolution/cross-correlation twin."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxcnn
from jaxcnn.data import augment, datasets
from jaxcnn.train import base_config, create_train_state, train_and_evaluate, train_step, validate_config
from jaxcnn.train import TrainingDiverged
from jaxcnn.train import setup as train_setup
from jaxcnn.train.checkpoint import Checkpointer, CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**kw):
    c = base_config()
    c.dataset = "synthetic"
    c.synthetic_shape = (12, 12, 1)
    c.synthetic_size = 96
    c.model.name = "fashion_cnn_tiny"
    c.parallel = "none"
    c.batch_size = 8
    c.eval_batch_size = 48
    c.num_steps = 6
    c.log_every = 1
    c.eval_every = 3
    c.checkpoint_every = 2
    c.progress = False
    c.optimizer.warmup_steps = 2
    for k, v in kw.items():
        target = c
        *path, last = k.split(".")
        for p in path:
            target = target[p]
        target[last] = v
    return c


def tiny_config_file(num_steps: int, log_every: int, eval_every: int, checkpoint_every: int) -> str:
    """The source of a config file (for scripts/train.py --config) with tiny_config's model and data."""
    schedule = f"{num_steps}, {log_every}, {eval_every}, {checkpoint_every}"
    return f"""
from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.dataset, c.synthetic_shape, c.synthetic_size = "synthetic", (12, 12, 1), 96
    c.model.name = "fashion_cnn_tiny"
    c.parallel, c.batch_size, c.eval_batch_size = "none", 8, 48
    c.num_steps, c.log_every, c.eval_every, c.checkpoint_every = {schedule}
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


def _equal_trees(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(
        np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(la, lb))


def test_stop_and_resume_ends_bit_identical(tmp_path):
    full = train_and_evaluate(tiny_config(), str(tmp_path / "full"))
    # A run "killed" after 5 steps: checkpoints at 2 and 4, metrics written up to step 5.
    part = str(tmp_path / "part")
    train_and_evaluate(tiny_config(), part, stop_after_steps=5)
    assert Checkpointer(os.path.join(part, "checkpoints")).latest_step() == 4
    assert [r["step"] for r in _metrics(part)] == [1, 2, 3, 4, 5]
    resumed = train_and_evaluate(tiny_config(), part)
    assert _equal_trees(full["state"].arrays(), resumed["state"].arrays())
    assert _metrics(part) == _metrics(str(tmp_path / "full"))
    recs = _metrics(part)
    assert set(recs[-1]) >= {"step", "train_loss", "eval_loss", "eval_accuracy", "learning_rate"}
    # TensorBoard (tensorboardX): the resumed run purged the steps it redid, so each step's train_loss
    # appears once per event file set, with the values of metrics.jsonl.
    scalars = tensorboard_scalars(os.path.join(part, "tensorboard"), "train_loss")
    assert sorted(scalars) == [r["step"] for r in recs]
    np.testing.assert_allclose([scalars[r["step"]] for r in recs], [r["train_loss"] for r in recs], rtol=1e-6)


def tensorboard_scalars(logdir: str, tag: str) -> dict:
    """{step: value} of `tag` in the event files under `logdir`, read in file order; a later file's
    SessionLog START at step s (tensorboardX's purge_step) drops the earlier files' events at steps >= s,
    as TensorBoard does."""
    import struct

    from tensorboardX.proto import event_pb2

    out = {}
    for name in sorted(os.listdir(logdir)):
        path = os.path.join(logdir, name)
        if not name.startswith("events.out.tfevents."):
            continue
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            if event.HasField("session_log") and event.session_log.status == event.session_log.START:
                out = {s: v for s, v in out.items() if s < event.step}
            for value in event.summary.value:
                if value.tag == tag:
                    out[event.step] = value.simple_value
    return out


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"),
                    reason="apt-get install dataset-fashion-mnist")
def test_short_run_on_real_fashion_mnist_lowers_the_loss(tmp_path):
    c = tiny_config(dataset="fashion_mnist_offline", num_steps=40, batch_size=32, eval_batch_size=2000,
                    log_every=10, eval_every=0, checkpoint_every=0, **{"optimizer.learning_rate": 1e-2})
    final = train_and_evaluate(c, str(tmp_path))
    recs = _metrics(str(tmp_path))
    # chance is ln(10) = 2.30 nats and 10% accuracy
    assert recs[0]["train_loss"] > recs[-1]["train_loss"] + 0.3
    assert final["eval_accuracy"] > 0.3 and final["eval_loss"] < 2.0  # 3x chance after 1,280 images


def test_same_seed_same_params_other_seed_differs(tmp_path):
    a = train_and_evaluate(tiny_config(num_steps=2, eval_every=0), str(tmp_path / "a"))
    b = train_and_evaluate(tiny_config(num_steps=2, eval_every=0), str(tmp_path / "b"))
    c = train_and_evaluate(tiny_config(num_steps=2, eval_every=0, seed=1), str(tmp_path / "c"))
    assert _equal_trees(a["state"].params, b["state"].params)
    assert not _equal_trees(a["state"].params, c["state"].params)


def test_checkpoint_round_trips_bit_exactly(tmp_path):
    model = jaxcnn.create_model("fashion_cnn_tiny")
    state = create_train_state(model, optax.adamw(1e-3), jax.random.key(0), (12, 12, 1))
    arrays = jax.tree_util.tree_map(lambda x: np.asarray(x) + np.asarray(1.5e-7, np.asarray(x).dtype)
                                    if np.asarray(x).dtype.kind == "f" else np.asarray(x), state.arrays())
    ck = Checkpointer(str(tmp_path / "ck"), keep=2)
    for step in (1, 2, 3):
        ck.save(step, arrays, {"window": []})
    assert ck.latest_step() == 3 and sorted(os.listdir(tmp_path / "ck")) == ["2", "3"]  # keep last 2
    back, extra = ck.restore(jax.tree_util.tree_map(np.zeros_like, arrays))
    assert extra["window"] == [] and len(extra["checksum"]) == 64
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(arrays)
    assert _equal_trees(arrays, back)


def test_half_written_checkpoint_is_never_read(tmp_path):
    # orbax writes into "<step>.orbax-checkpoint-tmp" and renames it when complete; a crash
    # mid-save leaves only the temporary directory, which must be ignored (and cleaned up).
    d = tmp_path / "ck"
    Checkpointer(str(d)).save(1, {"w": np.ones(3, np.float32)})
    (d / "2.orbax-checkpoint-tmp").mkdir()
    (d / "2.orbax-checkpoint-tmp" / "junk").write_bytes(b"half")
    ck = Checkpointer(str(d))
    assert ck.latest_step() == 1
    np.testing.assert_array_equal(ck.restore({"w": np.zeros(3, np.float32)})[0]["w"], np.ones(3, np.float32))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    ck = Checkpointer(str(tmp_path / "ck"))
    ck.save(1, {"w": np.zeros((3, 3), np.float32)})
    with pytest.raises(CheckpointError, match="different"):
        ck.restore({"w": np.zeros((4, 3), np.float32)})


def test_corrupt_checkpoint_gives_one_line_error(tmp_path):
    wd = str(tmp_path / "w")
    train_and_evaluate(tiny_config(num_steps=2, eval_every=0), wd)
    ckdir = os.path.join(wd, "checkpoints", "2")
    for root, _, files in os.walk(ckdir):
        for f in files:
            if not f.startswith("_CHECKPOINT_METADATA"):
                with open(os.path.join(root, f), "wb") as fh:
                    fh.write(b"garbage")
    with pytest.raises(CheckpointError, match=r"cannot restore checkpoint .*rm -r"):
        train_and_evaluate(tiny_config(num_steps=4, eval_every=0), wd)


def _twin_batches():
    data = datasets.synthetic((12, 12, 1), num_classes=10, size=24, seed=5)
    return [{"image": data.images[i:i + 8], "label": data.labels[i:i + 8]} for i in range(0, 24, 8)]


def test_convolution_net_follows_its_flipped_cross_correlation_twin():
    # Convolution = cross-correlation with the kernel flipped on its spatial axes, so a net in
    # conv_mode="convolution" started from flipped kernels computes the same function; its
    # gradients w.r.t. its kernels are the flipped gradients, and training keeps them twins.
    pre = augment.make_preprocess(mean=(0.5,), std=(0.25,))
    tx = optax.sgd(0.05, momentum=0.9)
    xc = create_train_state(jaxcnn.create_model("fashion_cnn_tiny"), tx, jax.random.key(0), (12, 12, 1))
    cv_model = jaxcnn.create_model("fashion_cnn_tiny", conv_mode="convolution")
    flip = lambda p: jax.tree_util.tree_map_with_path(
        lambda path, x: x[::-1, ::-1] if jax.tree_util.keystr(path).endswith("['kernel']") and x.ndim == 4 else x, p)
    cv = create_train_state(cv_model, tx, jax.random.key(0), (12, 12, 1))
    cv = cv.replace(params=flip(xc.params), opt_state=tx.init(flip(xc.params)))
    step = jax.jit(lambda s, b, k: train_step(s, b, k, preprocess=pre))
    key = jax.random.key(2)
    for batch in _twin_batches():
        xc, mx = step(xc, batch, key)
        cv, mc = step(cv, batch, key)
        np.testing.assert_allclose(mx["loss"], mc["loss"], rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(flip(xc.params)), jax.tree_util.tree_leaves(cv.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # and the kernels are not symmetric, so the flip is not vacuous
    k = np.asarray(cv.params["conv2"]["kernel"])
    assert not np.allclose(k, k[::-1, ::-1], atol=1e-3)


def test_nonfinite_update_is_skipped_and_counted():
    pre = augment.make_preprocess()
    tx = optax.sgd(0.1)
    state = create_train_state(jaxcnn.create_model("fashion_cnn_tiny"), tx, jax.random.key(0), (12, 12, 1))
    images = np.ones((8, 12, 12, 1), np.float32)
    images[3, 2, 2, 0] = np.nan
    new, m = jax.jit(lambda s, b, k: train_step(s, b, k, preprocess=pre))(
        state, {"image": images, "label": np.zeros(8, np.int32)}, jax.random.key(1))
    assert float(m["finite"]) == 0.0 and float(m["skipped"]) == 1.0 and int(new.step) == 1
    assert _equal_trees(new.params, state.params)


def test_nonfinite_parameters_from_finite_gradients_are_not_written():
    # A learning rate that turns NaN: the loss and every gradient are finite, the new parameters are not.
    # The step computes them once to check them and again to write them; the check must see them.
    pre = augment.make_preprocess()
    tx = optax.sgd(lambda step: jnp.where(step >= 1, jnp.nan, 0.1))
    state = create_train_state(jaxcnn.create_model("fashion_cnn_tiny"), tx, jax.random.key(0), (12, 12, 1))
    batch = {"image": np.ones((8, 12, 12, 1), np.float32), "label": np.zeros(8, np.int32)}
    step = jax.jit(lambda s, b, k: train_step(s, b, k, preprocess=pre))
    first, m1 = step(state, batch, jax.random.key(1))
    assert float(m1["finite"]) == 1.0 and not _equal_trees(first.params, state.params)
    second, m2 = step(first, batch, jax.random.key(1))
    assert np.isfinite(float(m2["loss"])) and float(m2["finite"]) == 0.0 and float(m2["skipped"]) == 1.0
    assert _equal_trees(second.params, first.params) and _equal_trees(second.opt_state, first.opt_state)
    assert int(second.step) == 2


def _nan_data(monkeypatch):
    real = train_setup.load_data

    def load(config):
        from jaxcnn.data.sharding import batch_indices

        train, test = real(config)
        images = train.images.astype(np.float32)
        idx = batch_indices(config.seed, 3, len(train), config.batch_size)  # a batch of step 4
        images[idx[0], 0, 0, 0] = np.nan
        return datasets.ArrayDataset(images, train.labels, train.num_classes), test

    monkeypatch.setattr(train_setup, "load_data", load)


def test_nan_policy_stop_names_the_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    _nan_data(monkeypatch)
    wd = str(tmp_path / "w")
    with pytest.raises(TrainingDiverged, match=r"at step 4; training stopped \(that step changed nothing\). "
                                               r"Last checkpoint: step 2"):
        train_and_evaluate(tiny_config(), wd)
    assert Checkpointer(os.path.join(wd, "checkpoints")).latest_step() == 2


def test_nan_policy_skip_counts_skipped_steps(tmp_path, monkeypatch):
    _nan_data(monkeypatch)
    final = train_and_evaluate(tiny_config(nan_policy="skip"), str(tmp_path / "w"))
    assert final["skipped_steps"] == 1 and np.isfinite(final["eval_loss"])


@pytest.mark.parametrize("key, value, error, match", [
    ("parallel", "meshh", ValueError, "unknown config.parallel 'meshh'.*Did you mean 'mesh'"),
    ("nan_policy", "ignore", ValueError, "allowed: 'stop', 'skip'"),
    ("num_steps", 0, ValueError, "num_steps must be positive"),
    ("batch_size", -8, ValueError, "batch_size must be positive"),
    ("num_steps", "100", TypeError, "num_steps must be an int"),
    ("optimizer.name", "adamm", ValueError, "Did you mean 'adam'"),
])
def test_bad_config_values(key, value, error, match):
    c = tiny_config()
    with c.unlocked():
        c = c.copy_and_resolve_references()
    target = c
    *path, last = key.split(".")
    for p in path:
        target = target[p]
    target._fields[last] = value  # bypass ConfigDict's own type check, as a hand-written dict would
    with pytest.raises(error, match=match):
        validate_config(c)


def test_unknown_config_key_suggests_close_key():
    c = tiny_config()
    with c.unlocked():
        c.num_step = 5
    with pytest.raises(ValueError, match="unknown config key 'num_step'.*Did you mean 'num_steps'"):
        validate_config(c)


def test_unknown_model_suggests_close_names(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'fashion_cn'.*Did you mean 'fashion_cnn'"):
        train_and_evaluate(tiny_config(**{"model.name": "fashion_cn"}), str(tmp_path))


def test_model_field_of_the_wrong_type(tmp_path):
    c = tiny_config()
    with c.unlocked():
        c.model.dropout = "abc"
    with pytest.raises(TypeError, match="config.model.dropout must be a float"):
        train_and_evaluate(c, str(tmp_path))


def test_unwritable_workdir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):  # root ignores permissions
        target = "/proc/jaxcnn_workdir"
    else:
        target = str(ro / "w")
    with pytest.raises(ValueError, match="is not writable"):
        train_and_evaluate(tiny_config(), target)


def test_global_batch_not_divisible_in_loop(tmp_path):
    with pytest.raises(ValueError, match="batch_size 12 is not divisible by the 8 devices"):
        train_and_evaluate(tiny_config(parallel="mesh", batch_size=12), str(tmp_path))


def test_script_bad_key_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config",
                        os.path.join(ROOT, "experiments", "configs", "default.py"), "--workdir", str(tmp_path),
                        "--config.batchsize=64"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and "Did you mean 'batch_size'" in lines[0], r.stderr
    # a model field the config file does not name is a model override, checked against the model
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config",
                        os.path.join(ROOT, "experiments", "configs", "default.py"), "--workdir", str(tmp_path),
                        "--config.model.widthz=(8,8,8)"], capture_output=True, text=True, timeout=120)
    lines = [l for l in r.stderr.strip().splitlines() if l.strip() and not l.startswith(("I1", "W1"))]
    assert r.returncode == 2 and len(lines) == 1 and "Did you mean 'widths'" in lines[0], r.stderr


class _AuxNet(__import__("flax").linen.Module):
    """A linear classifier that also sows an auxiliary head, as GoogLeNet does in training."""

    aux_weight: float = 0.3

    @__import__("flax").linen.compact
    def __call__(self, x, train: bool = False):
        import flax.linen as nn

        x = x.reshape((x.shape[0], -1))
        if train:
            self.sow("intermediates", "aux_logits", nn.Dense(10, name="aux")(x))
        return nn.Dense(10, name="main")(x)


def test_auxiliary_logits_add_weighted_cross_entropy():
    import flax.linen as nn  # noqa: F401

    from jaxcnn.train.step import cross_entropy

    pre = augment.make_preprocess()
    net = _AuxNet()
    x = np.asarray(jax.random.uniform(jax.random.key(0), (4, 3, 3, 1)), np.float32)
    y = np.array([0, 1, 2, 3], np.int32)
    variables = net.init(jax.random.key(1), x, train=True)
    state = create_train_state(net, optax.sgd(0.0), jax.random.key(1), (3, 3, 1))
    state = state.replace(params=variables["params"])
    _, m = train_step(state, {"image": x, "label": y}, jax.random.key(2), preprocess=pre, aux_weight=0.3)
    main = net.apply(variables, x)  # train=False: no aux head
    aux = nn_dense_apply(variables["params"]["aux"], x)
    expected = cross_entropy(main, y, 10) + 0.3 * cross_entropy(aux, y, 10)
    np.testing.assert_allclose(m["loss"], expected, rtol=1e-6)


class _ProgressNet(__import__("flax").linen.Module):
    """A linear classifier whose logits are scaled by 1 + progress, the argument a scheduled model takes."""

    @__import__("flax").linen.compact
    def __call__(self, x, train: bool = False, progress=None):
        import flax.linen as nn

        logits = nn.Dense(10, name="main")(x.reshape((x.shape[0], -1)))
        return logits if progress is None else logits * (1 + progress)


def test_progress_reaches_the_model_purely():
    from jaxcnn.train.step import cross_entropy

    pre = augment.make_preprocess()
    net = _ProgressNet()
    x = np.asarray(jax.random.uniform(jax.random.key(0), (4, 3, 3, 1)), np.float32)
    y = np.array([0, 1, 2, 3], np.int32)
    state = create_train_state(net, optax.sgd(0.0), jax.random.key(1), (3, 3, 1)).replace(step=3)
    step = jax.jit(lambda st, b, k: train_step(st, b, k, preprocess=pre, progress_fn=lambda s: s / 4))
    _, m = step(state, {"image": x, "label": y}, jax.random.key(2))
    logits = net.apply({"params": state.params}, x)
    np.testing.assert_allclose(m["loss"], cross_entropy(1.75 * logits, y, 10), rtol=1e-6)  # step 3 of 4


def test_engine_passes_progress_to_scheduled_models_only():
    # NASNet with drop path takes progress, the fraction of the run's steps done; other models get none.
    c = tiny_config(num_steps=10, synthetic_shape=(12, 12, 3))
    c.model.name = "nasnet_a_cifar"
    c.model.update(num_blocks=1, penultimate_filters=96, stem_filters=12, drop_path_rate=0.4)
    fn = train_setup.build(c).strategy.step_kwargs["progress_fn"]
    assert [fn(s) for s in (0, 5, 10)] == [0.0, 0.5, 1.0]
    c.model.drop_path_rate = 0.0
    assert train_setup.build(c).strategy.step_kwargs["progress_fn"] is None
    assert train_setup.build(tiny_config()).strategy.step_kwargs["progress_fn"] is None


def test_init_from_takes_the_variables_a_finished_run_shares(tmp_path):
    # FCN's staged training: FCN-16s starts from FCN-32s. A saved FCN-32s (its variables random numbers, as a
    # trained run's would be) hands every shared variable over; FCN-16s's own score_pool4 keeps its zeros and
    # upscore2 its bilinear kernel.
    small = dict(widths=((4,), (4,), (4,), (8,), (8,)), fc_width=8, fc6_kernel=3, pad=17, num_classes=3,
                 in_channels=1)
    x = jnp.zeros((1, 64, 64, 1))
    shapes32 = jax.eval_shape(jaxcnn.create_model("fcn32s", **small).init, jax.random.key(0), x)
    rng = np.random.default_rng(0)
    params32 = jax.tree_util.tree_map(lambda s: rng.standard_normal(s.shape).astype(np.float32), shapes32["params"])
    ckpt = Checkpointer(str(tmp_path / "fcn32s" / "seed3" / "checkpoints"))
    ckpt.save(10, {"step": np.int32(10), "params": params32})
    ckpt.close()
    c = tiny_config(**{"synthetic_shape": (64, 64, 1), "num_classes": 3, "seed": 3,
                       "init_from": str(tmp_path / "fcn32s" / "seed{seed}")})
    c.model = __import__("ml_collections").ConfigDict({"name": "fcn16s", **small})
    setup = train_setup.build(c)
    assert setup.init_from == str(tmp_path / "fcn32s" / "seed3")
    params = train_setup.init_from_workdir(setup.init_state(), setup.init_from).params
    for name in params32:
        for leaf in params32[name]:
            np.testing.assert_array_equal(params[name][leaf], params32[name][leaf])
    assert not np.any(params["score_pool4"]["kernel"]) and "upscore2" in params and "score_pool4" not in params32
    c.seed = 4  # no run of seed 4: a fresh start is refused before its workdir is touched
    with pytest.raises(ValueError, match="init_from.*seed4.*has no checkpoints"):
        train_and_evaluate(c, str(tmp_path / "fcn16s"))
    assert not (tmp_path / "fcn16s" / "config.json").exists()
    c.seed, c.model.num_classes, c.num_classes = 3, 5, 5
    setup = train_setup.build(c)
    with pytest.raises(ValueError, match=r"score_fr/\w+ is .* in .* but .*5.* here; start from a run"):
        train_setup.init_from_workdir(setup.init_state(), setup.init_from)


def nn_dense_apply(p, x):
    return x.reshape((x.shape[0], -1)) @ p["kernel"] + p["bias"]


def test_mixed_precision_keeps_float32_params(tmp_path):
    final = train_and_evaluate(tiny_config(mixed_precision=True, num_steps=2, eval_every=0), str(tmp_path))
    dtypes = {np.asarray(x).dtype for x in jax.tree_util.tree_leaves(final["state"].params)}
    assert dtypes == {np.dtype(np.float32)} and np.isfinite(final["eval_loss"])
    model = train_setup.build_model(tiny_config(mixed_precision=True), 10)
    assert model.dtype == jnp.bfloat16


def test_eval_examples_takes_the_first_examples_of_dict_labels(monkeypatch):
    # detection splits label each image with a dict of arrays (boxes, classes); eval_examples slices every one
    boxes = np.arange(10 * 5 * 4, dtype=np.float32).reshape(10, 5, 4)
    classes = np.arange(10 * 5, dtype=np.int32).reshape(10, 5) % 3
    split = datasets.ArrayDataset(np.zeros((10, 12, 12, 1), np.uint8) + np.arange(10)[:, None, None, None],
                                  {"boxes": boxes, "classes": classes}, 3)
    monkeypatch.setattr(train_setup.datasets, "load", lambda *a, **k: split)
    monkeypatch.setattr(train_setup, "check_learnable", lambda *a: None)
    _, test = train_setup.load_data(tiny_config(eval_examples=4))
    assert len(test) == 4 and test.num_classes == 3
    np.testing.assert_array_equal(test.images[:, 0, 0, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(test.labels["boxes"], boxes[:4])
    np.testing.assert_array_equal(test.labels["classes"], classes[:4])
