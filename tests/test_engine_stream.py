"""The engine on the input pipeline: a split that is not held in memory (or
preprocess.image_size > 0) is trained from jaxcnn.data.train_batches and
evaluated from eval_batches; the batches are those of the in-memory loop, a
run stopped mid-way and resumed ends bit-identical, test_split is scored once
at the end, and the ImageNet recipe runs end to end on a small image folder."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

import _data_fakes as fakes
from jaxcnn.data import batch_indices, open_split, prepare, sources
from jaxcnn.train import build, train_and_evaluate, validate_config
from jaxcnn.train import engine
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.cli import apply_overrides, load_config

sys.path.insert(0, os.path.dirname(__file__))
from test_train_loop import _equal_trees, _metrics, tiny_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """Prepared once: fake MNIST (48 + 20 fixed-size 28x28x1 images) and a folder of 24 + 6 JPEG/PNG
    images of mixed sizes in three classes."""
    root = tmp_path_factory.mktemp("stream")
    fakes.mnist_dir(root / "mnist", n_train=48, n_test=20)
    prepare("mnist", str(root / "mnist"), data_dir=str(root / "tfds"), quiet=True)
    fakes.image_folder(root / "mixed", per_class=8, test_per_class=2, classes=("a", "b", "c"))
    prepare("image_folder", str(root / "mixed"), data_dir=str(root / "tfds"), quiet=True)
    return str(root / "tfds")


def _config(tfds_dir, dataset, **kw):
    c = tiny_config(dataset=dataset, data_dir=tfds_dir, eval_batch_size=8, **kw)
    if dataset == "mixed":  # RGB
        c.preprocess.mean, c.preprocess.std = (0.5,), (0.25,)
        c.model.in_channels = 3
    return c


def test_streamed_and_in_memory_runs_see_the_same_batches_and_end_equal(tfds_dir, tmp_path, monkeypatch):
    kw = dict(num_steps=7, eval_every=0, checkpoint_every=0, **{"preprocess.flip": True,
                                                                "preprocess.crop_padding": 2})
    held = build(_config(tfds_dir, "mnist_offline", **kw))
    assert not held.streamed  # small and of one size: in memory, as before
    with monkeypatch.context() as m:
        m.setattr(sources, "IN_MEMORY_MAX_BYTES", 0)  # as if it did not fit
        streamed = build(_config(tfds_dir, "mnist_offline", **kw))
        assert streamed.streamed and not streamed.train_data.in_memory
        # The engine's batches, step by step (6 per epoch of 48: steps 6, 7 are the second epoch's)
        arrays = open_split("mnist_offline", "train", data_dir=tfds_dir, in_memory=True).to_arrays()
        it = engine._data_iterator(streamed, 0, None)
        for step in range(8):
            got, idx = next(it), batch_indices(0, step, 48, 8)
            np.testing.assert_array_equal(got["image"], arrays.images[idx])
            np.testing.assert_array_equal(got["label"], arrays.labels[idx])
        it.close()
        a = engine.run(streamed, str(tmp_path / "streamed"))
    b = engine.run(held, str(tmp_path / "held"))
    # Augmentation (pad-crop and flip) stays on the device on both paths: the runs are the same run.
    assert _equal_trees(a["state"].arrays(), b["state"].arrays())
    assert a["eval_accuracy"] == b["eval_accuracy"] and a["eval_loss"] == b["eval_loss"]
    assert (a["step"], a["steps_run"]) == (7, 7)


def test_a_streamed_run_stopped_and_resumed_ends_bit_identical(tfds_dir, tmp_path):
    kw = dict(num_steps=6, log_every=1, eval_every=3, checkpoint_every=2, **{"preprocess.image_size": 16,
                                                                               "preprocess.flip": True})
    full = train_and_evaluate(_config(tfds_dir, "mixed", **kw), str(tmp_path / "full"))
    part = str(tmp_path / "part")
    stopped = train_and_evaluate(_config(tfds_dir, "mixed", **kw), part, stop_after_steps=3)
    assert stopped["stopped"] and stopped["step"] == 3
    ckpt = Checkpointer(os.path.join(part, "checkpoints"))
    assert ckpt.latest_step() == 2
    like = jax.tree_util.tree_map(np.asarray, stopped["state"].arrays())
    _, extra = ckpt.restore(like, step=2)
    ckpt.close()
    # the iterator state: the next batch is step 2's, of this seed, global batch, dataset and split
    assert {k: extra["data"][k] for k in ("step", "seed", "batch_size", "dataset", "split")} == {
        "step": 2, "seed": 0, "batch_size": 8, "dataset": "mixed", "split": "train"}
    # resumed with 2 worker processes decoding and cropping (the first part ran on threads): the same batches
    resumed = train_and_evaluate(_config(tfds_dir, "mixed", data_workers=2, **kw), part)
    assert resumed["steps_run"] == 4  # steps 3..6 after the checkpoint of step 2
    assert _equal_trees(full["state"].arrays(), resumed["state"].arrays())
    assert _metrics(part) == _metrics(str(tmp_path / "full"))
    # evaluated on all 6 test images, resized and centre-cropped: the accuracy is k/6
    assert round(full["eval_accuracy"] * 6, 6) == round(full["eval_accuracy"] * 6)


def _scores(setup, state, images, labels):
    """Accuracy and mean cross-entropy of `state` on (images, labels), computed here with the model."""
    x = setup.preprocess(jnp.asarray(images), None, False)
    variables = {"params": state.params, **({"batch_stats": state.batch_stats} if state.batch_stats else {})}
    logits = np.asarray(setup.model.apply(variables, x, train=False), np.float64)
    loss = optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), jnp.asarray(labels))
    return float(np.mean(np.argmax(logits, -1) == labels)), float(np.mean(loss))


def test_test_split_is_scored_once_at_the_end_beside_the_validation_split(tmp_path):
    # synthetic: 96 training images; train[:75%] trains, train[75%:] (24) is watched, test (96) scored at the end
    c = tiny_config(train_split="train[:75%]", eval_split="train[75%:]", test_split="test", eval_every=2)
    setup = build(c)
    assert (len(setup.train_data), len(setup.eval_data), len(setup.test_data)) == (72, 24, 96)
    wd = str(tmp_path / "w")
    final = engine.run(setup, wd)
    recs = _metrics(wd)
    assert [r["step"] for r in recs if "test_accuracy" in r] == [6]  # once, in the final record
    assert [r["step"] for r in recs if "eval_accuracy" in r] == [2, 4, 6]
    assert {k: recs[-1][k] for k in ("test_accuracy", "test_loss")} == {
        k: final[k] for k in ("test_accuracy", "test_loss")}
    from jaxcnn.data.datasets import synthetic

    train, test = synthetic((12, 12, 1), size=96, seed=0), synthetic((12, 12, 1), size=96, seed=1)
    acc, loss = _scores(setup, final["state"], test.images, test.labels)
    assert final["test_accuracy"] == pytest.approx(acc, abs=1e-6) and final["test_loss"] == pytest.approx(
        loss, rel=1e-4)
    acc, loss = _scores(setup, final["state"], train.images[72:], train.labels[72:])
    assert final["eval_accuracy"] == pytest.approx(acc, abs=1e-6) and final["eval_loss"] == pytest.approx(
        loss, rel=1e-4)
    # test_split is evaluation only: a rerun may add or change it
    again = train_and_evaluate(tiny_config(train_split="train[:75%]", eval_split="train[75%:]", eval_every=2), wd)
    assert again["finished_before"]


MIXED_CONFIG = """
from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.dataset, c.data_dir = "mixed", {data_dir!r}
    c.train_split, c.eval_split, c.test_split = "train[:75%]", "train[75%:]", "test"
    c.model.name, c.model.in_channels = "fashion_cnn_tiny", 3
    c.preprocess.mean, c.preprocess.std, c.preprocess.image_size = (0.5,), (0.25,), 16
    c.parallel, c.batch_size, c.eval_batch_size = "none", 8, 8
    c.num_steps, c.eval_every, c.checkpoint_every, c.progress = 2, 0, 0, False
    return c
"""


def test_test_split_on_the_streamed_path_and_the_script_reports_both(tfds_dir, tmp_path, capsys):
    import importlib.util

    cfg = tmp_path / "mixed.py"
    cfg.write_text(MIXED_CONFIG.format(data_dir=tfds_dir))
    setup = build(load_config(str(cfg)))
    assert setup.streamed and (len(setup.train_data), len(setup.eval_data), len(setup.test_data)) == (18, 6, 6)
    spec = importlib.util.spec_from_file_location("train_script", os.path.join(ROOT, "scripts", "train.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    wd = str(tmp_path / "w")
    assert script.main(["--config", str(cfg), "--workdir", wd]) == 0
    final = _metrics(wd)[-1]
    for key in ("eval_accuracy", "test_accuracy"):  # k of 6 examples right
        assert round(final[key] * 6, 6) == round(final[key] * 6)
    assert np.isfinite(final["test_loss"])
    out = capsys.readouterr().out
    assert (f"step 2: validation accuracy {final['eval_accuracy']:.4f} (train[75%:]), test accuracy "
            f"{final['test_accuracy']:.4f} (test loss {final['test_loss']:.4f};") in out


def test_streamed_evaluation_with_eval_examples_scores_the_first_examples_only():
    setup = build(tiny_config())
    data = setup.eval_data  # 96 synthetic test images, in memory
    state = setup.strategy.put_state(setup.init_state())
    split = open_split("synthetic", "test", synthetic_shape=(12, 12, 1), synthetic_size=96)
    np.testing.assert_array_equal(split.to_arrays().images, data.images)
    for limit, batch in ((20, 8), (17, 48), (0, 48)):  # a partial last batch, one padded batch, all 96
        n = limit or 96
        first = type(data)(data.images[:n], data.labels[:n], data.num_classes)
        want = engine.evaluate(setup.strategy, state, first, batch, setup.task)
        got = engine.evaluate(setup.strategy, state, split, batch, setup.task, limit=limit)
        assert got == pytest.approx(want, rel=1e-6)
        acc, _ = _scores(setup, jax.device_get(state), first.images, first.labels)
        assert got["eval_accuracy"] == pytest.approx(acc, abs=1e-6)


@pytest.mark.parametrize("value", [-1, -224])
def test_image_size_must_be_a_non_negative_int(value):
    c = tiny_config(**{"preprocess.image_size": value})
    with pytest.raises(ValueError) as e:
        validate_config(c)
    assert str(e.value) == (f"config.preprocess.image_size must be an int >= 0 (0 = off), got {value}; "
                            "e.g. --config.preprocess.image_size=224.")
    c = tiny_config()
    c.preprocess._fields["image_size"] = 2.5  # as a hand-written dict would, past ConfigDict's own type check
    with pytest.raises(TypeError, match=r"config.preprocess.image_size must be an int \(like 0\), got 2.5"):
        validate_config(c)


def test_images_of_varying_sizes_need_image_size(tfds_dir, tmp_path):
    with pytest.raises(ValueError, match=r"mixed split 'train' holds images of varying sizes; set "
                                         r"--config.preprocess.image_size=S \(e.g. 224\)"):
        build(_config(tfds_dir, "mixed"))


IMAGENET_OVERRIDES = ["--config.model.name=fashion_cnn_tiny", "--config.model.in_channels=3",
                      "--config.preprocess.image_size=32", "--config.batch_size=8", "--config.eval_batch_size=8",
                      "--config.num_steps=4", "--config.checkpoint_every=2", "--config.eval_every=2",
                      "--config.log_every=1", "--config.eval_split=test", "--config.progress=False"]


def test_imagenet_recipe_runs_end_to_end_on_an_image_folder_and_resumes(tfds_dir, tmp_path):
    recipe = os.path.join(ROOT, "experiments", "configs", "imagenet.py")
    overrides = IMAGENET_OVERRIDES + ["--config.dataset=mixed", f"--config.data_dir={tfds_dir}"]
    config = load_config(recipe)
    assert config.preprocess.image_size == 224 and config.preprocess.flip  # the recipe itself crops to 224
    apply_overrides(config, [o[len("--config."):] for o in overrides])
    # the recipe's own settings stay: SGD + Nesterov, label smoothing, bf16, the mesh over all devices
    assert (config.optimizer.name, config.mixed_precision, config.parallel) == ("sgd", True, "mesh")
    ref = train_and_evaluate(config, str(tmp_path / "ref"))
    wd = str(tmp_path / "w")
    train_and_evaluate(config, wd, stop_after_steps=3)  # "killed" after step 3; checkpoint of step 2
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--config", recipe, "--workdir", wd,
           *overrides]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "step 4: test accuracy" in r.stdout
    got, _ = Checkpointer(os.path.join(wd, "checkpoints")).restore(
        jax.tree_util.tree_map(np.asarray, ref["state"].arrays()), step=4)
    assert _equal_trees(got, ref["state"].arrays())
    assert _metrics(wd) == _metrics(str(tmp_path / "ref"))
    rec = json.loads(open(os.path.join(wd, "config.json")).read())
    assert rec["config"]["preprocess"]["image_size"] == 32 and rec["finished_step"] == 4
    # predict.py's library call on the finished run: files of any size, resized and centre-cropped as in
    # evaluation, and scored by the run's three classes
    from jaxcnn.train.inference import load_run, predict_files

    folder = os.path.join(os.path.dirname(tfds_dir), "mixed", "test")
    files = sorted(os.path.join(folder, c, f) for c in os.listdir(folder) for f in os.listdir(os.path.join(folder, c)))
    assert len(files) == 6 and len({Image.open(f).size for f in files}) > 1
    run = load_run(wd)
    assert run.image_shape == (32, 32, 3) and run.class_names == ("a", "b", "c")
    top = predict_files(wd, files, top=3)
    for one in top:
        assert sorted(c["name"] for c in one["top"]) == ["a", "b", "c"]
        assert sum(c["probability"] for c in one["top"]) == pytest.approx(1.0, abs=1e-5)
    # scripts/evaluate.py's library call streams the split as the engine's evaluation does: the same
    # accuracy and loss as the run's final record, and the confusion matrix over all 6 test images
    from jaxcnn.train.inference import evaluate_workdir

    result = evaluate_workdir(wd)
    final = [m for m in _metrics(wd) if "eval_accuracy" in m][-1]
    assert final["step"] == 4 and result["step"] == 4 and result["images"] == 6
    m = np.asarray(result["confusion_matrix"])
    assert m.shape == (3, 3) and m.sum() == 6 and list(m.sum(1)) == [2, 2, 2]  # two test images per class
    assert result["eval_accuracy"] == pytest.approx(final["eval_accuracy"], abs=1e-9)
    assert result["eval_loss"] == pytest.approx(final["eval_loss"], rel=1e-3)
    assert os.path.exists(os.path.join(wd, "confusion_test.png")) and os.path.exists(os.path.join(wd, "eval.json"))


def test_a_workdir_recorded_before_the_new_keys_still_loads(tmp_path):
    from jaxcnn.train.inference import load_run

    wd = str(tmp_path / "w")
    train_and_evaluate(tiny_config(num_steps=2), wd)
    path = os.path.join(wd, "config.json")
    rec = json.loads(open(path).read())
    del rec["config"]["test_split"], rec["config"]["preprocess"]["image_size"]  # as written before they existed
    open(path, "w").write(json.dumps(rec))
    assert load_run(wd).step == 2
    again = train_and_evaluate(tiny_config(num_steps=2), wd)  # the same run: not refused as another config
    assert again["finished_before"]
