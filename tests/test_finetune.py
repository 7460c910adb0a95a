"""Fine-tuning: a new head, the backbone frozen bit for bit (parameters and
BatchNorm statistics), then everything unfrozen; through jaxcnn.train's own
TrainState and train_step."""

from __future__ import annotations

import functools
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
from jaxcnn.data import ArrayDataset, make_preprocess
from jaxcnn.finetune import (FrozenBackbone, class_subset, create_finetune_state, head_name, param_labels,
                             replace_head, run_finetune, unfreeze)
from jaxcnn.train import base_config, create_train_state, train_step, validate_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRE = make_preprocess(mean=(0.5,), std=(0.25,))


def _pretrained(num_classes=4, seed=0, **fields):
    """A small BatchNorm CNN with non-trivial weights and statistics (as if trained)."""
    model = jaxcnn.create_model("fashion_cnn_tiny", num_classes=num_classes, **fields)
    v = model.init(jax.random.key(seed), jnp.zeros((1, 28, 28, 1)))
    v = {"params": v["params"],
         "batch_stats": jax.tree_util.tree_map(lambda x: x + 0.3, v["batch_stats"])}
    return model, v


def _batch(n=16, seed=0, num_classes=3):
    rng = np.random.default_rng(seed)
    return {"image": jnp.asarray(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)),
            "label": jnp.asarray(rng.integers(0, num_classes, n), jnp.int32)}


def _run(state, steps, key=jax.random.key(1)):
    step = jax.jit(functools.partial(train_step, preprocess=PRE))
    for i in range(steps):
        state, metrics = step(state, _batch(seed=i), key)
        assert float(metrics["finite"]) == 1.0
    return state


def _same_bits(a, b):
    if jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b):
        return False
    return all(np.asarray(x).tobytes() == np.asarray(y).tobytes() and np.shape(x) == np.shape(y)
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_replace_head_new_number_of_classes():
    model, v = _pretrained(num_classes=4)
    new_model, nv = replace_head(model, v, 3, jax.random.key(5))
    assert new_model.num_classes == 3 and model.num_classes == 4
    assert nv["params"]["fc5"]["kernel"].shape == (16, 3)  # fashion_cnn_tiny: fc4 has 16 units
    assert nv["params"]["fc5"]["bias"].shape == (3,)
    np.testing.assert_array_equal(nv["params"]["fc5"]["bias"], np.zeros(3))
    for k in v["params"]:
        if k != "fc5":
            assert nv["params"][k] is v["params"][k]
    assert nv["batch_stats"] is v["batch_stats"]
    # The new variables fit the new model exactly (same tree as its own init).
    want = jax.eval_shape(new_model.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    assert jax.tree_util.tree_structure(want) == jax.tree_util.tree_structure(nv)
    assert [x.shape for x in jax.tree_util.tree_leaves(want)] == [x.shape for x in jax.tree_util.tree_leaves(nv)]
    assert new_model.apply(nv, jnp.zeros((2, 28, 28, 1))).shape == (2, 3)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        replace_head(model, v, 0, jax.random.key(0))


def test_head_only_training_leaves_backbone_and_statistics_bit_identical():
    model, v = _pretrained(num_classes=4, dropout=0.5)  # dropout on: the frozen backbone must not apply it
    model, v = replace_head(model, v, 3, jax.random.key(2))
    state = create_finetune_state(model, v, optax.adam(1e-2), mode="head")
    assert isinstance(state.apply_fn, FrozenBackbone)
    end = _run(state, 4)
    assert int(end.step) == 4
    backbone = {k: p for k, p in v["params"].items() if k != "fc5"}
    assert _same_bits({k: end.params[k] for k in backbone}, backbone)
    assert _same_bits(end.batch_stats, v["batch_stats"])
    for a, b in zip(jax.tree_util.tree_leaves(end.params["fc5"]), jax.tree_util.tree_leaves(v["params"]["fc5"])):
        assert not np.array_equal(a, b)
    # The frozen parameters keep no optimizer state (set_to_zero); Adam's moments are the head's alone.
    n_head = sum(x.size for x in jax.tree_util.tree_leaves(v["params"]["fc5"]))
    moments = [x for x in jax.tree_util.tree_leaves(end.opt_state) if np.ndim(x) > 0]
    assert sum(x.size for x in moments) == 2 * n_head
    # In head mode the training forward is the inference forward (running statistics, no dropout).
    x = PRE(_batch()["image"], None, False)
    train_out, _ = end.apply_fn({"params": end.params, "batch_stats": end.batch_stats}, x, train=True,
                                rngs={"dropout": jax.random.key(0)}, mutable=["batch_stats"])
    np.testing.assert_array_equal(train_out, model.apply({"params": end.params, "batch_stats": end.batch_stats}, x))


def test_full_unfreeze_changes_everything():
    model, v = _pretrained(num_classes=4)
    model, v = replace_head(model, v, 3, jax.random.key(2))
    head = _run(create_finetune_state(model, v, optax.adam(1e-2), mode="head"), 2)
    full = unfreeze(head, model, optax.adam(1e-3))
    assert full.apply_fn == model.apply and int(full.step) == 2
    end = _run(full, 3)
    assert int(end.step) == 5
    changed = lambda a, b: [not np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                                     jax.tree_util.tree_leaves(b))]
    assert all(changed(end.params, head.params))
    assert all(changed(end.batch_stats, head.batch_stats))  # BatchNorm trains again


def test_full_mode_from_the_start_trains_everything():
    model, v = _pretrained(num_classes=3)
    state = create_finetune_state(model, v, optax.sgd(0.1), mode="full")
    assert state.apply_fn == model.apply
    end = _run(state, 1)
    assert not any(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(end.params),
                                                        jax.tree_util.tree_leaves(v["params"])))


def test_head_names_and_labels():
    assert head_name(jaxcnn.create_model("resnet18")) == "fc"
    assert head_name(jaxcnn.create_model("densenet121")) == "classifier"
    assert head_name(jaxcnn.create_model("vgg16")) == "fc8"
    assert head_name(jaxcnn.create_model("alexnet_owt")) == "fc8"
    assert head_name(jaxcnn.create_model("minivgg")) == "fc7"  # one hidden dense layer: fc6, then fc7
    # Another family: found as the one top-level dense layer of num_classes outputs.
    m = jaxcnn.create_model("simple_convnet", num_classes=7)
    p = jax.eval_shape(m.init, jax.random.key(0), jnp.zeros((1,) + jaxcnn.default_input_shape("simple_convnet")))
    name = head_name(m, p["params"])
    assert p["params"][name]["kernel"].shape[-1] == 7
    _, v = _pretrained()
    labels = param_labels(v["params"], "fc5", "head")
    assert labels["fc5"] == {"kernel": "trainable", "bias": "trainable"}
    assert set(jax.tree_util.tree_leaves(labels["conv1"])) == {"frozen"}
    assert set(jax.tree_util.tree_leaves(param_labels(v["params"], "fc5", "full"))) == {"trainable"}
    with pytest.raises(ValueError, match="unknown fine-tuning mode 'backbone'"):
        param_labels(v["params"], "fc5", "backbone")
    with pytest.raises(ValueError, match="head 'fc9' is not a top-level entry"):
        param_labels(v["params"], "fc9")


def test_torchvision_weights_then_head_only():
    # Imported weights (numpy state dict with torchvision's names) go straight into head-only fine-tuning.
    from jaxcnn.pretrained import torchvision_keys

    over = dict(base_width=4, num_classes=10)
    rng = np.random.default_rng(0)
    sd = {k: (rng.normal(size=s).astype(np.float32) if k.endswith("weight") or k.endswith("bias") else
              rng.uniform(0.5, 1.5, size=s).astype(np.float32) if s else np.zeros((), np.int64))
          for k, s in torchvision_keys("resnet18", **over).items()}
    v = jaxcnn.load_torchvision_weights("resnet18", sd, **over)
    model = jaxcnn.create_model("resnet18", **over)
    model, v2 = replace_head(model, v, 3, jax.random.key(0))
    assert v2["params"]["fc"]["kernel"].shape == (32, 3)  # 4 * 2**3 maps after layer4
    state = create_finetune_state(model, v2, optax.adam(1e-2), mode="head")
    batch = {"image": jnp.asarray(rng.normal(size=(4, 32, 32, 3)), jnp.float32),
             "label": jnp.asarray([0, 1, 2, 0])}
    end, _ = jax.jit(functools.partial(train_step, preprocess=lambda x, k, t: x))(state, batch, jax.random.key(0))
    assert _same_bits({k: p for k, p in end.params.items() if k != "fc"},
                      {k: p for k, p in v2["params"].items() if k != "fc"})
    assert _same_bits(end.batch_stats, v["batch_stats"])
    assert not np.array_equal(end.params["fc"]["kernel"], v2["params"]["fc"]["kernel"])


def test_class_subset_relabels_and_samples():
    labels = np.repeat(np.arange(10), 7).astype(np.int32)
    images = np.arange(70, dtype=np.uint8).reshape(70, 1, 1, 1)
    ds = ArrayDataset(images, labels, 10)
    sub = class_subset(ds, (7, 5), per_class=3, seed=1)
    assert sub.num_classes == 2 and len(sub) == 6
    assert sorted(np.bincount(sub.labels).tolist()) == [3, 3]
    # Relabelled in the order given: 7 -> 0, 5 -> 1; images keep their original class.
    np.testing.assert_array_equal(labels[sub.images[:, 0, 0, 0]], np.where(sub.labels == 0, 7, 5))
    assert len(class_subset(ds, (0, 1, 2))) == 21
    with pytest.raises(ValueError, match="fewer than the 8 per class asked"):
        class_subset(ds, (1,), per_class=8)
    with pytest.raises(ValueError, match=r"classes \[12\] are not in the dataset"):
        class_subset(ds, (1, 12))


def _pretrain_checkpoint(workdir, num_classes=10):
    from jaxcnn.train.checkpoint import Checkpointer

    model = jaxcnn.create_model("fashion_cnn_tiny", num_classes=num_classes)
    state = create_train_state(model, optax.adam(1e-3), jax.random.key(3), (28, 28, 1))
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    ckpt.save(100, jax.tree_util.tree_map(np.asarray, state.arrays()))
    ckpt.close()
    return state


def _config(path, **ft):
    c = base_config()
    c.finetune.source = "checkpoint"
    c.optimizer.warmup_steps = 0
    c.log_every = 100  # a record at each phase's end only
    c.eval_every = 0
    c.progress = False
    c.dataset = "synthetic"
    c.synthetic_size = 256
    c.model.name = "fashion_cnn_tiny"
    c.parallel = "none"
    c.batch_size = 32
    c.eval_batch_size = 64
    c.finetune.path = path
    c.finetune.pretrained_num_classes = 10
    c.classes = (0, 1, 2)
    c.finetune.head_steps = 3
    c.finetune.full_steps = 2
    c.finetune.update(ft)
    return c


def test_run_finetune_from_our_checkpoint(tmp_path):
    pre = _pretrain_checkpoint(str(tmp_path / "pre"))
    out = run_finetune(_config(str(tmp_path / "pre")), str(tmp_path / "ft"))
    assert out["phase"] == "full" and out["step"] == 5 and out["num_classes"] == 3
    recs = [json.loads(l) for l in open(tmp_path / "ft" / "metrics.jsonl")]
    assert [r["phase"] for r in recs] == ["head", "full"] and [r["step"] for r in recs] == [3, 5]
    assert all(0.0 <= r["eval_accuracy"] <= 1.0 for r in recs)
    # The result is a checkpoint of the 3-class model, loadable like any of ours.
    v = jaxcnn.load_checkpoint_weights("fashion_cnn_tiny", str(tmp_path / "ft"), num_classes=3)
    assert v["params"]["fc5"]["kernel"].shape == (16, 3)
    assert not np.array_equal(v["params"]["conv1"]["kernel"], pre.params["conv1"]["kernel"])
    # Head only: the saved backbone is the pretrained one, bit for bit.
    run_finetune(_config(str(tmp_path / "pre"), full_steps=0), str(tmp_path / "ft_head"))
    vh = jaxcnn.load_checkpoint_weights("fashion_cnn_tiny", str(tmp_path / "ft_head"), num_classes=3)
    assert _same_bits({k: p for k, p in vh["params"].items() if k != "fc5"},
                      {k: p for k, p in pre.params.items() if k != "fc5"})
    assert _same_bits(vh["batch_stats"], pre.batch_stats)


def test_run_finetune_refusals(tmp_path):
    with pytest.raises(ValueError, match="config.finetune.path is empty"):
        run_finetune(_config(""), str(tmp_path))
    with pytest.raises(ValueError, match="unknown config.finetune.source 'imagenet'"):
        run_finetune(_config("x", source="imagenet"), str(tmp_path))
    with pytest.raises(ValueError, match="no checkpoint directory"):
        run_finetune(_config(str(tmp_path / "absent")), str(tmp_path / "w"))


def test_finetune_keys_are_part_of_the_one_schema(tmp_path):
    c = _config("")
    validate_config(c)  # a config file whose weights path comes from the command line is a valid config
    c.finetune.head_stepz = 3
    with pytest.raises(ValueError, match="unknown config key 'finetune.head_stepz'.*finetune.head_steps"):
        validate_config(c)
    # The pretraining workdir is never the fine-tuning workdir: its checkpoints would be rotated away.
    _pretrain_checkpoint(str(tmp_path / "pre"))
    with pytest.raises(ValueError, match="is the fine-tuning --workdir itself"):
        run_finetune(_config(str(tmp_path / "pre")), str(tmp_path / "pre"))


def test_script_bad_flag_exits_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "finetune.py"), "--config",
                        os.path.join(ROOT, "experiments", "configs", "finetune.py"), "--workdir", str(tmp_path),
                        "--config.finetune.source=imagenet", "--config.finetune.path=x"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2
    assert "unknown config.finetune.source 'imagenet'" in r.stderr


def test_run_finetune_from_torchvision_file(tmp_path):
    torch = pytest.importorskip("torch")
    from jaxcnn.pretrained import torchvision_keys

    over = dict(base_width=4, num_classes=10)
    rng = np.random.default_rng(1)
    sd = {k: torch.from_numpy(rng.uniform(0.5, 1.5, size=s).astype(np.float32)) if s else torch.tensor(0)
          for k, s in torchvision_keys("resnet18", **over).items()}
    torch.save(sd, tmp_path / "r18.pth")
    c = _config(str(tmp_path / "r18.pth"), source="torchvision", full_steps=0, head_steps=2)
    c.model.name = "resnet18"
    c.model.base_width = 4
    c.synthetic_shape = (32, 32, 3)
    out = run_finetune(c, str(tmp_path / "ft"))
    assert out["phase"] == "head" and out["num_classes"] == 3
    v = jaxcnn.load_checkpoint_weights("resnet18", str(tmp_path / "ft"), base_width=4, num_classes=3)
    assert v["params"]["fc"]["kernel"].shape == (32, 3)
    # Head only: the imported backbone is saved unchanged.
    np.testing.assert_array_equal(v["params"]["conv1"]["kernel"], sd["conv1.weight"].numpy().transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(v["batch_stats"]["bn1"]["var"], sd["bn1.running_var"].numpy())


def test_run_finetune_resumes_bit_identical_across_phases(tmp_path):
    # head 3 + full 3 steps, a checkpoint every 2 steps and at each phase's end (3, 6). Stopped after
    # step 1 (nothing saved yet: starts over), 3 (inside the head's end), 5 (mid-way through the full
    # phase, resumed from step 4), then run to the end: the same state and records as one run.
    _pretrain_checkpoint(str(tmp_path / "pre"))
    cfg = lambda: _config(str(tmp_path / "pre"), full_steps=3)  # noqa: E731
    whole = run_finetune(_with(cfg(), checkpoint_every=2), str(tmp_path / "whole"))
    work = str(tmp_path / "pieces")
    for n, at in ((1, 1), (3, 3), (2, 5)):
        out = run_finetune(_with(cfg(), checkpoint_every=2), work, stop_after_steps=n)
        assert out["stopped"] and out["step"] == at
    last = run_finetune(_with(cfg(), checkpoint_every=2), work)
    assert last["phase"] == "full" and last["step"] == 6
    assert _same_bits(last["state"].arrays(), whole["state"].arrays())
    timing = ("wall_time_sec", "images_per_sec")
    strip = lambda path: [{k: v for k, v in json.loads(l).items() if k not in timing}  # noqa: E731
                          for l in open(path)]
    assert strip(tmp_path / "pieces" / "metrics.jsonl") == strip(tmp_path / "whole" / "metrics.jsonl")
    assert [r["step"] for r in strip(tmp_path / "pieces" / "metrics.jsonl")] == [3, 6]
    # A finished run is not trained again: it returns its final record.
    again = run_finetune(_with(cfg(), checkpoint_every=2), work)
    assert again["eval_accuracy"] == whole["eval_accuracy"] and len(strip(tmp_path / "pieces" / "metrics.jsonl")) == 2
    assert _same_bits(again["state"].arrays(), whole["state"].arrays())


def _with(c, **top):
    c.update(top)
    return c


def test_mode_some_trains_the_head_and_the_named_layers_only():
    model, variables = _pretrained(num_classes=3)
    state = create_finetune_state(model, variables, optax.sgd(0.1), mode="some", layers=("conv3", "bn3"))
    state = _run(state, 2)
    moved = {k for k in variables["params"] if not _same_bits(variables["params"][k], state.params[k])}
    assert moved == {"conv3", "bn3", "fc5"}  # fc5 is the head; conv1, conv2, bn1, bn2, fc4 frozen
    assert _same_bits(state.batch_stats, variables["batch_stats"])  # statistics frozen in this mode
    with pytest.raises(ValueError, match=r"layers \['conv9'\] are not top-level entries"):
        create_finetune_state(model, variables, optax.sgd(0.1), mode="some", layers=("conv9",))
    with pytest.raises(ValueError, match="mode 'some' needs the layers"):
        create_finetune_state(model, variables, optax.sgd(0.1), mode="some")
