"""The ablation runner: configs are like for like (arms differ exactly in the
ablated keys), every arm x seed is a run of the training engine (resumable,
data-parallel), the statistics are the textbook ones, and the script refuses
bad output folders before training."""

import csv
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import ablation, create_model
from jaxcnn.ablation import stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABLATIONS = os.path.join(ROOT, "experiments", "ablations")
SCRIPT = os.path.join(ROOT, "scripts", "ablate.py")

# The ablations the seed notes ask for, and the keys each flips.
EXPECTED_FIELDS = {
    "skip": {"model.skip"},
    "skip_depth": {"model.stage_sizes"},  # skip's residual arms alone at 12 seeds: ResNet-20 and -56 differ in depth
    "kernel_plan": {"model.kernel_plan", "model.stage_sizes"},
    "bottleneck": {"model.bottleneck", "model.width"},  # matched multiply-adds: the arm without reductions is narrower
    "conv_mode": {"model.conv_mode"},
    "alexnet_pooling": {"model.overlap_pool"},
    "alexnet_lrn": {"model.lrn"},
    # the registered lenet5_modern flips LeNet-5's four published switches together
    "lenet5": {"model.c3_table", "model.pooling", "model.activation", "model.output", "optimizer.learning_rate"},
    "relu_tanh": {"model.activation", "optimizer.learning_rate"},  # each net at its own tuned rate
    "dropout": {"model.dropout_rate"},
    "nasnet": {"model.aux_logits", "model.drop_path_rate"},
    "transfer": {"dataset", "classes", "synthetic_shape", "synthetic_size", "train_examples_per_class",
                 "finetune.source", "finetune.path", "finetune.head_steps", "finetune.full_steps",
                 "finetune.train_layers", "finetune.head_learning_rate", "optimizer.warmup_steps"},
    # the default job's recipe, one switch at a time (issue 34)
    "recipe": {"ema_decay", "label_smoothing", "augment", "mixup_alpha", "cutmix_alpha", "optimizer.schedule",
               "optimizer.learning_rate", "optimizer.warmup_steps", "optimizer.warmup_fraction"},
}


def test_every_ablation_is_there():
    assert set(EXPECTED_FIELDS) <= set(ablation.list_ablations(ABLATIONS))


@pytest.mark.parametrize("name", sorted(EXPECTED_FIELDS))
def test_config_is_like_for_like(name):
    cfg = ablation.load_ablation(name, ABLATIONS)  # validates: every arm has a partner differing exactly in field
    assert cfg.ablation.name == name
    assert set(ablation.spec.fields_of(cfg)) == EXPECTED_FIELDS[name]
    assert len(set(cfg.ablation.seeds)) >= 3
    assert ablation.with_quick(cfg).num_steps <= cfg.num_steps
    resolved = [ablation.spec.resolved(ablation.arm_config(cfg, a, 0)) for a in ablation.arms_of(cfg)]
    key = sorted(EXPECTED_FIELDS[name])[0]
    assert len({repr(r[key]) for r in resolved}) >= 2  # the ablated key really takes different values
    assert ablation.claims_of(cfg), "every ablation states the claims its verdict is drawn for"


def test_quick_trims_a_tuning_grid_to_its_two_ends():
    cfg = ablation.load_ablation("relu_tanh", ABLATIONS)
    assert tuple(cfg.ablation.tune["values"]) == (0.001, 0.003, 0.01, 0.03, 0.1)  # experiments/ablations/relu_tanh.py
    quick = ablation.with_quick(cfg)
    assert tuple(quick.ablation.tune["values"]) == (0.001, 0.1) and quick.ablation.tune["seed"] == 100
    assert tuple(cfg.ablation.tune["values"]) == (0.001, 0.003, 0.01, 0.03, 0.1)  # the full config is untouched
    with cfg.unlocked():
        cfg.ablation.quick["ablation"] = {"tune": {**cfg.ablation.tune, "values": (0.01, 0.03, 0.1)}}
    assert tuple(ablation.with_quick(cfg).ablation.tune["values"]) == (0.01, 0.03, 0.1)  # quick's own grid wins


def test_skip_ablation_has_both_depths_and_figure_6_panels():
    cfg = ablation.load_ablation("skip", ABLATIONS)
    names = {a.overrides["model.name"] for a in ablation.arms_of(cfg)}
    assert names == {"resnet20", "resnet56"} and "grad_norms" in cfg.ablation.extras
    assert [t for t, _ in cfg.ablation.panels] == ["plain", "residual"]
    assert {str(c) for c in ablation.claims_of(cfg)} >= {"train_error: resnet56 plain > resnet20 plain",
                                                          "train_error: resnet56 residual < resnet20 residual"}


def test_skip_depth_supersedes_exactly_skips_depth_claims_with_the_same_recipe():
    skip = ablation.load_ablation("skip", ABLATIONS)
    depth = ablation.load_ablation("skip_depth", ABLATIONS)
    skip_claims = {str(c) for c in ablation.claims_of(skip)}
    assert {s.split(": ", 1)[1] for s in depth.ablation.supersedes} == {str(c) for c in ablation.claims_of(depth)}
    assert {s.split(": ", 1)[0] for s in depth.ablation.supersedes} == {"skip"}
    assert {str(c) for c in ablation.claims_of(depth)} <= skip_claims
    assert not set(depth.ablation.seeds) & set(skip.ablation.seeds) and len(depth.ablation.seeds) == 12
    # every arm of skip_depth is skip's residual arm of the same net, trained alike
    skip_arms = {a.label: ablation.spec.resolved(ablation.arm_config(skip, a, 20)) for a in ablation.arms_of(skip)}
    for a in ablation.arms_of(depth):
        mine, theirs = ablation.spec.resolved(ablation.arm_config(depth, a, 20)), skip_arms[a.label]
        assert mine == theirs, a.label  # every resolved key: model fields, optimizer, data, budget
    bad = ablation.load_ablation("skip_depth", ABLATIONS)
    bad.ablation.supersedes = ("skip train_error: a < b",)
    with pytest.raises(ValueError, match="RESULT: CLAIM"):
        ablation.spec.validate_ablation(bad)


def _tiny_config(extras=("twin_flip", "kernels"), **top):
    arms = [dict(label="xcorr", overrides={"model.conv_mode": "cross_correlation"}),
            dict(label="conv", overrides={"model.conv_mode": "convolution"})]
    c = ablation.ablation_config("tiny", title="tiny", claim="none", field="model.conv_mode", arms=arms,
                                 claims=("eval_accuracy: xcorr > conv",),
                                 model=dict(name="fashion_cnn_tiny", num_classes=10, batch_norm=False))
    c.dataset, c.synthetic_size, c.synthetic_shape = "synthetic", 96, (12, 12, 1)
    c.num_steps, c.batch_size, c.eval_batch_size, c.log_every, c.checkpoint_every = 4, 16, 48, 2, 3
    c.optimizer.warmup_steps = 0
    c.ablation.extras = extras
    c.update(top)
    return c


def test_later_seeds_of_an_arm_reuse_its_compiled_programs_and_train_bit_for_bit_the_same(tmp_path):
    from jax._src import dispatch

    from jaxcnn import load_checkpoint_weights
    from jaxcnn.ablation.spec import arm_config, arms_of
    from jaxcnn.train.engine import run
    from jaxcnn.train.setup import build

    events = []  # XLA compilations and traces, between the runner's one log line per finished run

    def listener(name, secs, **kw):
        if name in (dispatch.BACKEND_COMPILE_EVENT, dispatch.JAXPR_TRACE_EVENT):
            events.append(name)

    cfg = _tiny_config(extras=())
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        ablation.run_ablation(cfg, workdirs=str(tmp_path / "runs"), log=events.append)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    compiled, traced, done = {}, 0, []
    for e in events:
        if e == dispatch.BACKEND_COMPILE_EVENT:
            compiled[len(done)] = compiled.get(len(done), 0) + 1
        elif e == dispatch.JAXPR_TRACE_EVENT:
            traced += 1
        else:
            done.append(e.split(":")[0].strip())
    assert done == [f"{a} seed {s}" for a in ("xcorr", "conv") for s in (0, 1, 2)]
    assert traced > 0  # the listener hears this JAX's events
    # seeds 1 and 2 of each arm (runs 1, 2, 4, 5) compile nothing: the first seed's train step, evaluation
    # and initialisation serve them (each compiled them again before: 3 programs a run)
    assert [compiled.get(i, 0) for i in (1, 2, 4, 5)] == [0, 0, 0, 0], compiled
    # and they are the programs a fresh build compiles: a run built alone ends with the same weights, bit for bit
    arm = arms_of(cfg)[1]
    alone = tmp_path / "alone"
    setup = build(arm_config(cfg, arm, 2))
    run(setup, str(alone))
    a, b = (load_checkpoint_weights("fashion_cnn_tiny", str(wd), input_shape=(12, 12, 1), num_classes=10,
                                    batch_norm=False, conv_mode="convolution")
            for wd in (alone, tmp_path / "runs" / "conv" / "seed2"))
    leaves = jax.tree_util.tree_leaves(a)
    assert len(leaves) > 0 and jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(leaves, jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(ValueError, match=r"pass that Setup's model and optimizer=\(tx, schedule\).*reusable_parts"):
        build(arm_config(cfg, arm, 1), strategy=setup.strategy)


def test_validate_refuses_arms_that_are_not_like_for_like():
    cfg = _tiny_config()
    cfg.ablation.arms[1]["overrides"]["model.hidden"] = 8
    with pytest.raises(ValueError, match=r"arm 'xcorr' has no partner .*closest differs in "
                                         r"\['model.conv_mode', 'model.hidden'\]"):
        ablation.validate_ablation(cfg)
    cfg = _tiny_config()
    cfg.ablation.arms[1]["overrides"]["batch_size"] = 8  # a training setting differs too
    with pytest.raises(ValueError, match="batch_size"):
        ablation.validate_ablation(cfg)


def test_validate_refuses_fewer_than_three_seeds_and_bad_claims():
    cfg = _tiny_config()
    cfg.ablation.seeds = (0, 1)
    with pytest.raises(ValueError, match="at least 3 distinct seeds"):
        ablation.validate_ablation(cfg)
    cfg = _tiny_config()
    cfg.ablation.panels = [("left", ["xcorr"]), ("right", ["convolution"])]
    with pytest.raises(ValueError, match="panel 'right' names no arm 'convolution'"):
        ablation.validate_ablation(cfg)
    cfg = _tiny_config()
    cfg.ablation.claims = ("eval_accuracy: xcorr > convolution",)
    with pytest.raises(ValueError, match="names arm 'convolution'"):
        ablation.validate_ablation(cfg)


def test_unknown_ablation_names_the_known_ones():
    with pytest.raises(ValueError, match="Did you mean 'skip'.*Known: .*skip"):
        ablation.load_ablation("skips", ABLATIONS)


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_runner_through_the_engine_writes_the_result(tmp_path):
    cfg = _tiny_config()
    result = ablation.run_ablation(cfg, workdirs=str(tmp_path / "runs"), log=lambda s: None)
    files = ablation.write_results(result, str(tmp_path / "out"), config=cfg, command="test", wall_time_s=1.0,
                                   quick=False, load_before=[0.0, 0.0, 0.0])
    assert {os.path.basename(f) for f in files} >= {"results.csv", "claims.csv", "curves.csv", "training_error.png",
                                                      "kernels.png", "run.json", "table.md"}
    # every arm x seed is an engine workdir (config.json, checkpoints, metrics)
    for arm in ("xcorr", "conv"):
        for seed in (0, 1, 2):
            wd = tmp_path / "runs" / arm / f"seed{seed}"
            assert (wd / "config.json").exists() and (wd / "checkpoints" / "4").is_dir()
    rows = _rows(tmp_path / "out" / "results.csv")
    assert [r["arm"] for r in rows] == ["xcorr", "conv"]
    model = create_model("fashion_cnn_tiny", num_classes=10, batch_norm=False)
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 12, 12, 1)))["params"]))
    for r in rows:
        assert int(r["seeds"]) == 3 and int(r["steps"]) == 4 and int(r["params"]) == n_params
        accs = [float(a) for a in r["eval_accuracy_per_seed"].split()]
        assert float(r["eval_accuracy_mean"]) == pytest.approx(np.mean(accs), abs=1e-4)
        assert float(r["eval_accuracy_std"]) == pytest.approx(np.std(accs, ddof=1), abs=1e-4)
        assert int(r["eval_examples"]) == 96  # the whole synthetic test split
        assert len(r["steps_to_target_per_seed"].split()) == 3 and len(r["train_error_per_seed"].split()) == 3
    # the twin started from flipped kernels learns the flipped kernels and predicts the same
    for report in result["extras"]["twin"].values():
        assert report["kernel_max_diff"] < 1e-5 and report["logits_max_diff"] < 1e-5
        assert report["argmax_agreement"] == 1.0
    k = result["extras"]["kernels"]
    np.testing.assert_allclose(k["conv"], np.flip(k["xcorr"], (0, 1)), atol=1e-5)
    # twins: identical accuracies. A claim between the twin arms holds by construction: a check, not counted
    # in the family (no p_holm); the twin check itself is a second check row, holding (the kernels above are
    # flips of each other), and stores no mean or interval (it has none)
    claim, twin = _rows(tmp_path / "out" / "claims.csv")
    assert float(claim["mean"]) == 0.0 and claim["kind"] == "check" and claim["p_holm"] == ""
    assert twin["claim"].startswith("twin: conv") and twin["verdict"] == stats.REPRODUCED
    assert twin["kind"] == "check" and int(twin["n"]) == 3 and twin["mean"] == twin["low"] == twin["high"] == ""
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert {"quick", "seeds", "eval_examples", "num_steps", "batch_size", "arms", "verdict"} <= set(run)
    assert run["quick"] is False and run["seeds"] == [0, 1, 2] and run["num_steps"] == 4
    assert [v for k, v in run["verdict"].items() if k.startswith("twin:")] == [stats.REPRODUCED]
    assert [c["kind"] for c in run["claims"]] == ["check", "check"] and "verdict_unadjusted" in run


def test_killed_ablation_resumes_to_the_same_result(tmp_path):
    cfg = _tiny_config(extras=())
    whole = ablation.run_ablation(cfg, workdirs=str(tmp_path / "whole"), log=lambda s: None)
    # "killed": two runs finish and the ablation stops; then the third (xcorr seed 2) is stopped at step 3 by
    # hand, inside its run, as a kill would leave it
    assert ablation.run_ablation(cfg, workdirs=str(tmp_path / "pieces"), log=lambda s: None,
                                 stop_after_runs=2)["stopped"]
    from jaxcnn.train import run, build

    partial = ablation.arm_config(cfg, ablation.arms_of(cfg)[0], 2)
    run(build(partial), str(tmp_path / "pieces" / "xcorr" / "seed2"), stop_after_steps=3)
    logged = []
    again = ablation.run_ablation(cfg, workdirs=str(tmp_path / "pieces"), log=logged.append)
    assert sum("(finished before)" in line for line in logged) == 2  # the two finished runs were not redone
    assert [r["eval_accuracy_per_seed"] for r in again["rows"]] == [r["eval_accuracy_per_seed"] for r in whole["rows"]]
    for key, info in whole["per_seed"].items():
        np.testing.assert_array_equal(info["curve"], again["per_seed"][key]["curve"])


def test_finished_runs_are_carried_to_a_machine_without_the_workdirs(tmp_path):
    cfg = _tiny_config(extras=())
    cfg.ablation.claims = ("eval_accuracy: xcorr > conv", "generalization_gap: xcorr < conv",
                           "train_error_eval: xcorr > conv")
    cfg.ablation.gap_examples = 48
    carry = tmp_path / "out" / "runs"
    first = ablation.run_ablation(cfg, workdirs=str(tmp_path / "machine1"), log=lambda s: None, carry=str(carry))
    assert first["trained_runs"] == 6 and first["carried_runs"] == []
    records = {(arm, seed): carry / arm / f"seed{seed}.json" for arm in ("xcorr", "conv") for seed in (0, 1, 2)}
    assert all(p.exists() for p in records.values())
    stored = json.loads(records[("conv", 1)].read_text())
    assert stored["arm"] == "conv" and stored["seed"] == 1 and stored["final"]["step"] == 4
    assert stored["final"]["eval_accuracy"] == first["per_seed"][("conv", 1)]["eval_accuracy"]
    assert [r["step"] for r in stored["train_records"]] == [2, 4]  # log_every 2 over 4 steps
    # the error on the whole training split in eval mode is measured after training and kept in the record
    assert stored["extra"]["train_error_eval"] == first["per_seed"][("conv", 1)]["train_error_eval"]
    assert 0.0 <= stored["extra"]["train_error_eval"] <= 1.0 and stored["extra"]["train_error_eval_examples"] == 0
    assert all(r["train_error_eval_per_seed"] for r in first["rows"])

    def same(a, b, metrics=("train_error", "train_loss", "eval_accuracy", "generalization_gap", "train_error_eval")):
        assert [r["eval_accuracy_per_seed"] for r in a["rows"]] == [r["eval_accuracy_per_seed"] for r in b["rows"]]
        for key, info in a["per_seed"].items():
            for metric in metrics:
                assert info[metric] == b["per_seed"][key][metric], (key, metric)
            np.testing.assert_array_equal(info["curve"], b["per_seed"][key]["curve"])
        assert [c["difference"] for c in a["claims"]] == [c["difference"] for c in b["claims"]]

    # the same command again where the workdirs are (every run finished before): the records are written again
    # from the workdirs with the same content, so a record keeps when its run first finished
    stamped = json.loads(records[("xcorr", 0)].read_text())
    stamped["written_utc"] = "2000-01-01T00:00:00Z"
    records[("xcorr", 0)].write_text(json.dumps(stamped, indent=1) + "\n")
    logged = []
    again = ablation.run_ablation(cfg, workdirs=str(tmp_path / "machine1"), log=logged.append, carry=str(carry))
    assert again["trained_runs"] == 0 and sum("(finished before)" in line for line in logged) == 6
    assert json.loads(records[("xcorr", 0)].read_text())["written_utc"] == "2000-01-01T00:00:00Z"
    # a fresh machine (no workdirs): every run comes from its record, nothing trains and nothing is rewritten
    before = {k: p.read_text() for k, p in records.items()}
    logged = []
    second = ablation.run_ablation(cfg, workdirs=str(tmp_path / "machine2"), log=logged.append, carry=str(carry))
    assert second["trained_runs"] == 0 and len(second["carried_runs"]) == 6
    assert sum("(carried: " in line for line in logged) == 6 and not (tmp_path / "machine2" / "conv").exists()
    assert {k: p.read_text() for k, p in records.items()} == before
    same(first, second, ("train_error", "train_loss", "eval_accuracy", "generalization_gap", "train_error_eval",
                         "wall_s"))
    assert second["train_wall_s"] == first["train_wall_s"] > 0  # the carried runs' training time is counted
    # a damaged record and one of another config train again (to the same numbers); the rest are carried
    records[("conv", 1)].write_text("{not json")
    other = json.loads(records[("xcorr", 2)].read_text())
    other["config"]["config"]["optimizer"]["learning_rate"] = 0.5
    records[("xcorr", 2)].write_text(json.dumps(other))
    logged = []
    third = ablation.run_ablation(cfg, workdirs=str(tmp_path / "machine3"), log=logged.append, carry=str(carry))
    assert third["trained_runs"] == 2 and len(third["carried_runs"]) == 4
    assert any("seed1.json is damaged" in line for line in logged)
    assert any("seed2.json is of another config (optimizer.learning_rate differ)" in line for line in logged)
    assert sorted(os.listdir(tmp_path / "machine3" / "conv")) == ["seed1"]
    assert json.loads(records[("conv", 1)].read_text())["final"] == stored["final"]  # rewritten
    same(first, third)
    # what changes the result but not a checkpoint (the test split's size, the images the gap is scored on)
    # is part of a run's meaning here: those runs train again (and their records then hold the new config)
    for key, value, why in (("eval_examples", 48, "eval_examples"), ("ablation.gap_examples", 32,
                                                                       "ablation.gap_examples")):
        changed = _tiny_config(extras=())
        changed.ablation.claims, changed.ablation.gap_examples = cfg.ablation.claims, 48
        ablation.spec._set_all(changed, {key: value})
        logged = []
        ablation.run_ablation(changed, workdirs=str(tmp_path / f"machine_{why}"), log=logged.append,
                              carry=str(tmp_path / "out" / "runs"), stop_after_runs=1)
        assert any("is of another config (" in line and why in line for line in logged), logged


def test_carry_is_refused_where_a_result_needs_the_trained_parameters(tmp_path):
    logged = []
    assert ablation.run_ablation(_tiny_config(), workdirs=str(tmp_path / "runs"), log=logged.append,
                                 carry=str(tmp_path / "out" / "runs"), stop_after_runs=1)["stopped"]
    assert "not carried between machines for tiny: its extras ['kernels', 'twin_flip'] need every run's " \
           "trained parameters" in logged[0]
    assert not (tmp_path / "out" / "runs").exists()


def _tiny_finetune_config():
    """Two fine-tuning arms as transfer's: a new head on the seed's pretrained backbone vs the same net from
    scratch, both on 3 of the 10 synthetic classes."""
    arms = [dict(label="head", overrides={"finetune.source": "checkpoint", "finetune.path": "pretrain"}),
            dict(label="scratch", overrides={"finetune.source": "none"})]
    c = ablation.ablation_config("tinyft", title="tiny fine-tuning", claim="none",
                                 field="finetune.source,finetune.path", arms=arms,
                                 claims=("eval_accuracy: head > scratch",), model=dict(name="fashion_cnn_tiny"))
    c.dataset, c.synthetic_size, c.synthetic_shape = "synthetic", 96, (12, 12, 1)
    c.batch_size, c.eval_batch_size, c.log_every, c.checkpoint_every = 16, 48, 2, 3
    c.optimizer.warmup_steps = 0
    c.classes = (0, 1, 2)
    c.finetune.pretrained_num_classes, c.finetune.head_steps, c.finetune.full_steps = 10, 2, 0
    c.ablation.finetune = True
    c.ablation.pretrain = {"classes": (), "num_steps": 4}
    return c


def test_finetune_ablation_pretrains_once_per_seed_and_counts_that_time(tmp_path):
    cfg = _tiny_finetune_config()
    logged = []
    result = ablation.run_ablation(cfg, workdirs=str(tmp_path / "runs"), log=logged.append)
    assert sum(line.startswith("  pretrain seed") for line in logged) == 3

    def last_wall(wd):  # one piece per run here: its training time is its last record's clock
        recs = [json.loads(line) for line in open(wd / "metrics.jsonl")]
        return [r["wall_time_sec"] for r in recs if "train_loss" in r][-1]

    pretrain = [last_wall(tmp_path / "runs" / "pretrain" / f"seed{s}") for s in (0, 1, 2)]
    arms = [last_wall(tmp_path / "runs" / arm / f"seed{s}") for arm in ("head", "scratch") for s in (0, 1, 2)]
    assert result["pretrain_wall_s"] == pytest.approx(sum(pretrain)) and min(pretrain) > 0
    assert result["train_wall_s"] == pytest.approx(sum(pretrain) + sum(arms))
    # the head arm's backbone is its seed's pretrained one: conv1 as the pretraining run left it
    pre = _weights(tmp_path / "runs" / "pretrain" / "seed1", num_classes=10)
    head = _weights(tmp_path / "runs" / "head" / "seed1", num_classes=3)
    scratch = _weights(tmp_path / "runs" / "scratch" / "seed1", num_classes=3)
    np.testing.assert_array_equal(head["params"]["conv1"]["kernel"], pre["params"]["conv1"]["kernel"])
    assert not np.array_equal(scratch["params"]["conv1"]["kernel"], pre["params"]["conv1"]["kernel"])
    ablation.write_results(result, str(tmp_path / "out"), config=cfg, command="test", wall_time_s=1.0,
                           quick=False, load_before=[0.0, 0.0, 0.0])
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["pretrain_wall_time_s"] == round(sum(pretrain), 1)
    assert run["eval_examples_per_arm"] == {"head": run["eval_examples"], "scratch": run["eval_examples"]}
    # run again: the pretraining runs are found finished, and their time still counts
    again = ablation.run_ablation(cfg, workdirs=str(tmp_path / "runs"), log=logged.append)
    assert sum("(finished before)" in line for line in logged) == 3 + 6
    assert again["pretrain_wall_s"] == result["pretrain_wall_s"]


def _weights(workdir, num_classes):
    from jaxcnn import load_checkpoint_weights

    return load_checkpoint_weights("fashion_cnn_tiny", str(workdir), input_shape=(12, 12, 1),
                                   num_classes=num_classes)


def _script(args, env=None, timeout=300):
    return subprocess.run([sys.executable, SCRIPT] + args, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": ROOT, **(env or {})})


def test_script_on_two_devices_under_mesh(tmp_path):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    r = _script(["conv_mode", "--quick", "--out", str(tmp_path / "out"), "--workdirs", str(tmp_path / "runs"),
                 "--config.parallel=mesh", "--config.num_steps=4", "--config.batch_size=8",
                 "--config.eval_batch_size=50", "--config.eval_examples=100", "--config.dataset=synthetic",
                 "--config.synthetic_size=64", "--config.synthetic_shape=(28,28,1)", "--config.log_every=2",
                 "--config.ablation.seeds=(0,1,2)"], env)  # 3 arms x 3 seeds: what the check needs
    assert r.returncode == 0, r.stderr[-3000:]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["quick"] is True and run["config"]["parallel"] == "mesh" and len(run["environment"]["devices"]) == 2
    assert "[mesh, 2 dev]" not in r.stdout  # no progress bar in ablations; the device count is in run.json
    twin = run["extras"]["twin"]["0"]
    assert twin["argmax_agreement"] == 1.0 and run["seeds"] == [0, 1, 2]


def test_script_checks_the_output_folder_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = _script(["conv_mode", "--quick", "--out", str(blocker / "res")], timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "is not writable" in r.stderr, r.stderr
    full = tmp_path / "committed"
    full.mkdir()
    (full / "run.json").write_text(json.dumps({"quick": False}))
    r = _script(["conv_mode", "--quick", "--out", str(full)], timeout=120)
    assert r.returncode == 2 and "never writes over it" in r.stderr, r.stderr
    many = len(os.sched_getaffinity(0)) + 1  # more lanes than cores: refused before anything trains
    r = _script(["conv_mode", "--quick", "--lanes", str(many), "--out", str(tmp_path / "lanes"),
                 "--workdirs", str(tmp_path / "lanes_runs")], timeout=120)
    assert r.returncode == 2 and f"{many} lanes need {many} cores" in r.stderr, r.stderr
    assert not (tmp_path / "lanes_runs").exists()


def test_script_help_and_unknown_ablation():
    r = _script(["--help"], timeout=60)
    assert r.returncode == 0 and "--config.KEY=VALUE" in r.stdout and "--quick" in r.stdout and "--no-carry" in r.stdout
    r = _script(["nope"], timeout=120)
    assert r.returncode == 2 and "unknown ablation 'nope'" in r.stderr


def test_grad_norms_cover_every_convolution_in_forward_order():
    # stem + 3 stages x 1 basic block x 2 convs; shortcut "A" (identity / zero-pad) has no convolution
    model = create_model("resnet20", stage_sizes=(1, 1, 1), num_classes=10)
    key = jax.random.key(0)
    images = jax.random.normal(key, (4, 8, 8, 1))
    rows = ablation.grad_norms_at_init(model, (8, 8, 1), images, jnp.arange(4) % 10, key)
    assert len(rows) == 1 + 3 * 2
    assert rows[0][0] == ablation.analyses.conv_layers(model, (8, 8, 1))[0]
    assert [r[0] for r in rows[1:3]] == sorted(r[0] for r in rows[1:3])  # block0's conv1 before conv2
    assert all(np.isfinite(n) and n > 0 for _, n in rows)


def test_curves_beyond_two_panels_go_two_to_a_row(tmp_path):
    from PIL import Image

    from jaxcnn.ablation.plots import plot_curves

    steps = np.array([1, 2, 3])
    curves = {f"arm{i}": (steps, np.full((3, 3), 0.1 * i)) for i in range(3)}
    plot_curves(curves, str(tmp_path / "two.png"), "t", panels=[("a", ["arm0"]), ("b", ["arm1", "arm2"])])
    plot_curves(curves, str(tmp_path / "three.png"), "t", panels=[("a", ["arm0"]), ("b", ["arm1"]), ("c", ["arm2"])])
    # each axis is 6.4 x 4.2 inches at 110 dpi: two side by side 1408 x 462 px; three as two rows of two 1408 x 924
    assert Image.open(tmp_path / "two.png").size == (1408, 462)
    assert Image.open(tmp_path / "three.png").size == (1408, 924)


def test_a_long_curve_title_wraps_within_its_axis(tmp_path, monkeypatch):
    import matplotlib.figure

    from jaxcnn.ablation.plots import plot_curves

    titles = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, path, **kw: titles.extend(ax.get_title() for ax in fig.axes))
    steps = np.array([1, 2, 3])
    curves = {"a": (steps, np.full((2, 3), 0.1))}
    words = "Dropout 0.5 vs none in AlexNet's fc layers (half-width AlexNet, 5,000 Fashion-MNIST images, 67x67)"
    plot_curves(curves, str(tmp_path / "c.png"), words)
    # 98 characters on one 6.4-inch axis: two lines of at most 80, no word split at its hyphen, nothing lost
    lines = titles[0].split("\n")
    assert len(lines) == 2 and max(map(len, lines)) <= 80 and "Fashion-MNIST" in titles[0]
    assert " ".join(lines) == words
    plot_curves(curves, str(tmp_path / "d.png"), "short title")
    assert titles[1] == "short title"


def test_lrn_data_term_by_hand():
    import flax.linen as nn

    from jaxcnn.ablation.analyses import lrn_data_term
    from jaxcnn.layers import LRN

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return LRN(size=3, k=2.0, alpha=0.5, beta=1.0, name="norm")(nn.relu(x))

    # one pixel, channels (1, 2, -1, 3): the positive responses are channels 0, 1, 3. Sums of squares over the
    # 3 neighbouring channels (relu(-1) = 0, clipped at the ends): 0+1+4 = 5, 1+4+0 = 5, 0+9 = 9; the data
    # term's share alpha*S/k = 1.25, 1.25, 2.25; the factor 1/(k + alpha*S) = 1/4.5, 1/4.5, 1/6.5.
    x = jnp.array([1.0, 2.0, -1.0, 3.0]).reshape(1, 1, 1, 4)
    r = lrn_data_term(Net(), {}, x)["norm"]
    assert r["responses"] == 3 and r["share_median"] == pytest.approx(1.25) and r["share_max"] == pytest.approx(2.25)
    assert r["factor_min"] == pytest.approx(1 / 6.5) and r["factor_max"] == pytest.approx(1 / 4.5)
    assert r["factor_median"] == pytest.approx(1 / 4.5) and r["fixed_scale"] == 0.5


def test_flip_kernels_makes_convolution_equal_cross_correlation():
    x = jax.random.normal(jax.random.key(1), (2, 28, 28, 1))
    xc = create_model("fashion_cnn_tiny", batch_norm=False)
    cv = create_model("fashion_cnn_tiny", batch_norm=False, conv_mode="convolution")
    params = xc.init(jax.random.key(0), x)["params"]
    np.testing.assert_allclose(cv.apply({"params": ablation.flip_kernels(params)}, x),
                               xc.apply({"params": params}, x), atol=1e-5)


def test_equivalence_and_ratio_claims_parse():
    cfg = _tiny_config()
    cfg.ablation.claims = ("eval_accuracy: xcorr ~ conv within 0.02", "steps_to_target: conv < xcorr")
    claims = ablation.claims_of(cfg)
    assert [(c.op, c.margin) for c in claims] == [("~", 0.02), ("<", 0.0)]
    assert str(claims[0]) == "eval_accuracy: xcorr ~ conv within 0.02"
    cfg.ablation.claims = ("eval_accuracy: xcorr ~ conv",)
    with pytest.raises(ValueError, match="needs a margin"):
        ablation.claims_of(cfg)
    # a ratio: "A / B op R" (a slash with spaces; a label may hold one without, as transfer's "similar/10 head")
    cfg.ablation.claims = ("steps_to_target: conv / xcorr > 1", "steps_to_target: conv / xcorr ~ 6 within factor 2")
    ratio, near = ablation.claims_of(cfg)
    assert (ratio.a, ratio.b, ratio.op, ratio.ratio) == ("conv", "xcorr", ">", 1.0)
    assert (near.op, near.ratio, near.margin) == ("~", 6.0, 2.0)
    assert [str(c) for c in (ratio, near)] == list(cfg.ablation.claims)
    cfg.ablation.claims = ("steps_to_target: conv / xcorr ~ 6",)
    with pytest.raises(ValueError, match="needs a factor"):
        ablation.claims_of(cfg)


def test_run_summary_reads_the_curve_the_target_and_the_step_time():
    from jaxcnn.ablation.runner import _summary_of

    records = [{"step": s, "train_loss": 1.0 / s, "train_accuracy": acc, "images_per_sec": 100.0 * s}
               for s, acc in ((10, 0.5), (20, 0.7), (30, 0.8), (40, 0.9))]
    info = _summary_of(records, batch_size=50, target=0.25)
    assert info["steps_to_target"] == 30.0  # training error 0.2 <= 0.25 first at step 30
    assert info["train_error"] == pytest.approx(0.1) and info["train_loss"] == 1.0 / 40
    assert info["step_time_s"] == pytest.approx(np.median([50 / 2000, 50 / 3000, 50 / 4000]))  # step 10 compiles
    # never reached: censored (inf), not a number of steps to average in
    assert _summary_of(records, batch_size=50, target=0.05)["steps_to_target"] == float("inf")
    # a run resumed once: its clock restarts at the second piece; the training wall time adds both pieces
    walls = [5.0, 9.0, 2.0, 6.5]  # the first piece ran 9 s, the second 6.5 s
    info = _summary_of([dict(r, wall_time_sec=w) for r, w in zip(records, walls)], batch_size=50, target=0.25)
    assert info["wall_s"] == 9.0 + 6.5


def _tuned_config(**tune):
    cfg = _tiny_config(extras=())
    cfg.ablation.field = "model.conv_mode,optimizer.learning_rate"
    cfg.ablation.tune = {"key": "optimizer.learning_rate", "values": (0.05, 1e30), "seed": 7,
                         "metric": "train_loss", "num_steps": 3, **tune}
    return cfg


def test_tuning_refuses_what_would_not_be_a_fair_choice():
    with pytest.raises(ValueError, match="must be one of ablation.field's keys"):
        ablation.validate_ablation(_tuned_config(key="optimizer.momentum"))
    with pytest.raises(ValueError, match="the test split never selects"):
        ablation.validate_ablation(_tuned_config(metric="eval_accuracy"))
    with pytest.raises(ValueError, match="is one of the scored seeds"):
        ablation.validate_ablation(_tuned_config(seed=1))
    with pytest.raises(ValueError, match="at least two distinct values"):
        ablation.validate_ablation(_tuned_config(values=(0.05,)))
    with pytest.raises(ValueError, match="unknown ablation.tune keys"):
        ablation.validate_ablation(_tuned_config(grid=(1, 2)))


def test_tuning_choice_ranks_metric_then_loss_then_grid_order():
    from jaxcnn.ablation.tuning import choose

    trials = [{"value": 0.1, "metric": None, "train_loss": None, "diverged": True},
              {"value": 0.03, "metric": 400.0, "train_loss": 0.30, "diverged": False},
              {"value": 0.01, "metric": 400.0, "train_loss": 0.25, "diverged": False},
              {"value": 0.003, "metric": 400.0, "train_loss": 0.25, "diverged": False}]
    assert choose(trials)["value"] == 0.01  # the same steps; the lower loss; then the earlier of equal ones
    assert choose(trials[:1] + [dict(trials[1], metric=float("nan"))])["value"] == 0.03  # NaN ranks like a loss


def test_tuning_table_says_not_reached_for_a_target_never_reached_in_the_run_or_in_run_json():
    from jaxcnn.ablation.tuning import tuning_table

    trials = [dict(value=0.001, metric=float("inf"), diverged=False), dict(value=0.01, metric=None, diverged=False),
              dict(value=0.03, metric=610.0, diverged=False), dict(value=0.1, metric=None, diverged=True)]
    table = tuning_table({"relu": dict(key="optimizer.learning_rate", seed=100, num_steps=3000,
                                       metric="steps_to_target", trials=trials, chosen=0.03)})
    row = next(line for line in table.splitlines() if line.startswith("| relu |"))
    assert row == "| relu | not reached | not reached | **610** | diverged |", row


def test_tuned_ablation_runs_each_arm_at_its_chosen_value(tmp_path):
    cfg = _tuned_config()
    logged = []
    result = ablation.run_ablation(cfg, workdirs=str(tmp_path / "runs"), log=logged.append)
    # a learning rate of 1e30 overflows float32 in the first update: that trial diverges and ranks last
    for arm in ("xcorr", "conv"):
        t = result["tuning"][arm]
        assert [x["diverged"] for x in t["trials"]] == [False, True] and t["chosen"] == 0.05
        assert (tmp_path / "runs" / "tune" / arm / "1e+30" / "diverged.json").exists()
        trial = json.loads((tmp_path / "runs" / "tune" / arm / "0.05" / "config.json").read_text())["config"]
        assert trial["seed"] == 7 and trial["num_steps"] == 3  # the tuning seed and budget, not the scored ones
        for seed in (0, 1, 2):
            scored = json.loads((tmp_path / "runs" / arm / f"seed{seed}" / "config.json").read_text())["config"]
            assert scored["optimizer"]["learning_rate"] == 0.05 and scored["num_steps"] == 4
    files = ablation.write_results(result, str(tmp_path / "out"), config=cfg, command="test", wall_time_s=1.0,
                                   quick=False, load_before=[0.0, 0.0, 0.0])
    assert str(tmp_path / "out" / "tuning.csv") in files
    rows = _rows(tmp_path / "out" / "tuning.csv")
    assert [(r["arm"], r["value"], r["diverged"], r["chosen"]) for r in rows] == [
        ("xcorr", "0.05", "False", "True"), ("xcorr", "1e+30", "True", "False"),
        ("conv", "0.05", "False", "True"), ("conv", "1e+30", "True", "False")]
    run = json.loads((tmp_path / "out" / "run.json").read_text())  # strict JSON: no Infinity for the diverged
    assert [a["overrides"]["optimizer.learning_rate"] for a in run["arms"]] == [0.05, 0.05]
    assert run["tuning"]["xcorr"]["trials"][1]["metric"] is None
    assert "Tuning (optimizer.learning_rate, seed 7, 3 steps" in (tmp_path / "out" / "table.md").read_text()
    # run again: every tuning trial and scored run is found finished (the diverged one by its marker)
    again = []
    result = ablation.run_ablation(cfg, workdirs=str(tmp_path / "runs"), log=again.append)
    assert sum("(finished before)" in line for line in again) == 6 and result["trained_runs"] == 0
    assert [line for line in again if "tune" in line] == [line for line in logged if "tune" in line]
    # written again from finished runs only: the wall time and load of the invocation that trained stay
    ablation.write_results(result, str(tmp_path / "out"), config=cfg, command="test", wall_time_s=99.0,
                           quick=False, load_before=[5.0, 5.0, 5.0])
    rewritten = json.loads((tmp_path / "out" / "run.json").read_text())
    assert rewritten["wall_time_s"] == 1.0 and rewritten["load_average_1_5_15min"]["before"] == [0.0, 0.0, 0.0]
    assert "regenerated_utc" in rewritten and rewritten["train_wall_time_s"] == run["train_wall_time_s"] > 0


def test_core_groups_split_the_cores_and_refuse_what_cannot_run():
    from jaxcnn.ablation.lanes import core_groups

    assert core_groups(2, [4, 0, 1, 2, 3]) == [(0, 1, 2), (3, 4)]  # consecutive, sizes within one
    assert core_groups(3, [0, 1, 2, 3]) == [(0, 1), (2,), (3,)]
    assert core_groups(1, [1, 0]) == [(0, 1)]
    with pytest.raises(ValueError, match="pass --lanes 2 or fewer"):
        core_groups(3, [0, 1])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="whole number >= 1"):
            core_groups(bad, [0, 1])


def test_lanes_refuse_runs_that_must_share_a_process(tmp_path):
    # conv_mode's twin starts one arm from the other's kernels and must train with the same floats; the kernels
    # extra reads every run's parameters: in lanes, refused before anything trains
    with pytest.raises(ValueError, match=r"tiny: its extras \['kernels', 'twin_flip'\] need every run's trained "
                                         r"parameters; run it without --lanes"):
        ablation.run_lanes(_tiny_config(), workdirs=str(tmp_path / "runs"), lanes=2, cores=[0, 0])
    assert not (tmp_path / "runs").exists()


def test_lanes_train_each_free_run_once_and_leave_run_ablations_result(tmp_path, capfd):
    """Two lanes, processes pinned to a core each (one core twice where this process may use only one), after
    the tuning trials ran here once: every run is trained by one lane only, a run another process has claimed
    is left to the collecting pass, which trains it and finds the rest finished."""
    from jaxcnn._locks import target_lock

    cfg = _tuned_config()
    free = sorted(os.sched_getaffinity(0))
    cores = free[:2] if len(free) > 1 else free * 2
    logged = []
    with target_lock(str(tmp_path / "runs" / "conv" / "seed1") + ".lane", "the test"):
        result = ablation.run_lanes(cfg, workdirs=str(tmp_path / "runs"), log=logged.append, lanes=2, cores=cores)
    trained = {}
    for line in capfd.readouterr().out.splitlines():
        m = re.match(r"\[lane (\d)\] (\w+) seed (\d): train error", line)
        if m:
            trained.setdefault((m[2], int(m[3])), []).append(int(m[1]))
    runs = {(arm, seed) for arm in ("xcorr", "conv") for seed in (0, 1, 2)}
    assert trained.keys() == runs - {("conv", 1)} and all(len(lanes) == 1 for lanes in trained.values()), trained
    scored = [line for line in logged if "train error" in line]
    assert len(scored) == 6 and [line for line in scored if "finished before" not in line] == [
        line for line in scored if line.startswith("  conv seed 1:")]
    assert sum("tune" in line and "finished before" not in line for line in logged) >= 1  # tuned here, once
    assert result["trained_runs"] == 6
    assert result["lanes"] == {"lanes": 2, "cores": [[c] for c in cores], "exit_codes": [0, 0]}
    for arm in ("xcorr", "conv"):  # the lanes trained the arms at their tuned value
        assert result["tuning"][arm]["chosen"] == 0.05
        for seed in (0, 1, 2):
            scored_cfg = json.loads((tmp_path / "runs" / arm / f"seed{seed}" / "config.json").read_text())["config"]
            assert scored_cfg["optimizer"]["learning_rate"] == 0.05 and scored_cfg["num_steps"] == 4
    ablation.write_results(result, str(tmp_path / "out"), config=cfg, command="test", wall_time_s=1.0, quick=False,
                           load_before=[0.0, 0.0, 0.0])
    assert json.loads((tmp_path / "out" / "run.json").read_text())["lanes"]["cores"] == [[c] for c in cores]


def _run_json(folder, name, quick=False, **kw):
    run = {"claim": f"the paper of {name}", "title": f"{name} title", "quick": quick, "seeds": [0, 1, 2],
           "num_steps": 3000, "batch_size": 128, "eval_examples": 10000, "arms": [{"label": "a"}, {"label": "b"}],
           "wall_time_s": 10.0, "train_wall_time_s": 5400.0, "environment": {"cpu_count": 2},
           "load_average_1_5_15min": {"before": [1.0, 1.0, 1.0], "after": [2.5, 2.0, 1.5]},
           "claims": [{"claim": "eval_accuracy: a > b", "mean": 0.0123, "low": 0.0045, "high": 0.0201, "n": 3,
                       "std": 0.003, "verdict": stats.REPRODUCED}], **kw}
    os.makedirs(folder / name)
    (folder / name / "run.json").write_text(json.dumps(run))


def test_summary_table_over_committed_results_and_readme_block(tmp_path):
    results = tmp_path / "results"
    _run_json(results, "zeta")
    _run_json(results, "alpha")
    _run_json(results, "smoke", quick=True)  # a quick run is never a committed result: left out
    table = ablation.overview_table(str(results), order=["zeta"])
    rows = table.splitlines()[2:]
    assert [r.split("**")[1].rstrip(":") for r in rows] == ["zeta", "alpha"]  # the order given, then the rest
    # 0.0123 -> +1.23 pp, [0.0045, 0.0201] -> [+0.45, +2.01]; 5,400 s of training -> 1.5 h; load 1.0 then 2.5
    assert "`eval_accuracy: a > b`: +1.23 pp [+0.45, +2.01]" in rows[0] and "**reproduced**" in rows[0]
    assert "2 arms x 3 seeds x 3,000 steps x 128, 10,000 test images; 1.5 h training on 2 CPU cores (load " \
           "1.0-2.5)" in rows[0]
    # arms that score different test splits (transfer's cells) show the range of their counts
    _run_json(results, "cells", eval_examples=5000, eval_examples_per_arm={"a": 5000, "b": 12000})
    row = [r for r in ablation.overview_table(str(results)).splitlines() if "**cells**" in r][0]
    assert "x 128, 5,000-12,000 (by arm) test images; " in row
    (results / "cells" / "run.json").unlink()
    # family-wise and unadjusted verdicts side by side, p and p_holm, a check apart, the design column (no git
    # history in a temporary folder: unknown, not an error)
    _run_json(results, "fam", claims=[
        {"claim": "eval_accuracy: a > b", "mean": 0.01, "low": 0.001, "high": 0.019, "n": 3, "std": 0.003,
         "p_value": 0.04, "p_holm": 0.2, "verdict": stats.INCONCLUSIVE, "verdict_unadjusted": stats.REPRODUCED,
         "kind": "claim"},
        {"claim": "eval_accuracy: a ~ c within 0.001", "mean": 0.0, "low": 0.0, "high": 0.0, "n": 3, "std": 0.0,
         "p_value": 0.0, "p_holm": None, "verdict": stats.REPRODUCED, "kind": "check"}])
    row = [r for r in ablation.overview_table(str(results)).splitlines() if "**fam**" in r][0]
    cells = row.split(" | ")
    assert "p 0.04, p_holm 0.2" in cells[1] and "check `eval_accuracy: a ~ c within 0.001`" in cells[1]
    assert cells[2] == f"**{stats.INCONCLUSIVE}**<br>check: {stats.REPRODUCED}"
    assert cells[3] == f"{stats.REPRODUCED}<br>check: {stats.REPRODUCED}"
    assert cells[5].startswith("unknown")
    (results / "fam" / "run.json").unlink()
    readme = tmp_path / "README.md"
    readme.write_text("# Experiments\n<!-- overview:start -->\nold table\n<!-- overview:end -->\n\nmore text\n")
    r = _script(["--summary", "--results", str(results), "--readme", str(readme)])
    assert r.returncode == 0, r.stderr
    text = readme.read_text()
    assert "old table" not in text and text.endswith("<!-- overview:end -->\n\nmore text\n")
    assert text.count("\n| **") == 2 and "smoke" not in text
    readme.write_text("no markers\n")
    r = _script(["--summary", "--results", str(results), "--readme", str(readme)])
    assert r.returncode == 2 and "<!-- overview:start -->" in r.stderr and readme.read_text() == "no markers\n"


def test_full_size_estimate_scales_the_measured_time_by_multiply_adds(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("full_size", os.path.join(ROOT, "experiments", "full_size.py"))
    full_size = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(full_size)
    _run_json(tmp_path, "skip", environment={"cpu_count": 2})
    with open(tmp_path / "skip" / "results.csv", "w") as f:
        f.write("arm,macs,step_time_ms,batch_size,steps\na,1000000,128,128,4000\nb,2000000,256,128,4000\n")
    (row,) = full_size.estimate(str(tmp_path))
    # ResNet-56 on 32x32x3 (16-32-64 maps): 125,485,696 multiply-adds per image, 64k x 128 images per run.
    # Both arms take 1 ms per image per 1M multiply-adds: 1e-3 s x 125.485696 x 8,192,000 images x 3 seeds
    # = 3,083,936.5 s per arm, two arms: 1,713.3 h.
    assert row["full_macs"] == 125_485_696 and row["full_images"] == 8_192_000 and row["runs"] == 6
    assert row["cpu_hours"] == pytest.approx(2 * 1e-3 * 125.485696 * 8_192_000 * 3 / 3600)
    assert row["ours_images"] == 4000 * 128 and row["ours_hours"] == pytest.approx(1.5)
    assert "1,713 h on these 2 cores (71 days) for its 6 runs" in full_size.table([row])


def test_arm_table_shows_the_claimed_metrics_columns():
    row = {"arm": "relu", "params": 1234, "macs": 5678, "step_time_ms": 12.34, "train_error_mean": 0.0728,
           "train_error_std": 0.0064, "eval_accuracy_mean": 0.8977, "eval_accuracy_std": 0.0036,
           "steps_to_target_mean": 512.0, "steps_to_target_std": 40.5}
    plain = ablation.markdown_table([row])
    assert plain.splitlines()[2] == "| relu | 1,234 | 5,678 | 12.3 | 7.28 ± 0.64 | 89.77 ± 0.36 |"
    table = ablation.markdown_table([row], [{"claim": "steps_to_target: tanh > relu"}])
    assert table.splitlines()[0].endswith("| steps to target |")
    assert table.splitlines()[2].endswith("| 89.77 ± 0.36 | 512 ± 40 |")  # steps as is, no decimals (40.5 -> 40)


def test_shared_report_helpers_live_in_train_records_and_the_old_paths_warn(tmp_path):
    from jaxcnn.ablation import report, runner
    from jaxcnn.train import records

    # two pieces of one run (the engine's clock restarts at the resume): 30 s + 12 s
    pieces = [{"wall_time_sec": 10.0}, {"wall_time_sec": 30.0}, {"wall_time_sec": 5.0}, {"wall_time_sec": 12.0}]
    assert records.training_wall_seconds(pieces) == 42.0
    with pytest.warns(DeprecationWarning, match="jaxcnn.train.records.training_wall_seconds"):
        assert runner.training_wall_seconds(pieces) == 42.0
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- a -->\nold\n<!-- b -->\nend\n")
    records.replace_block(str(readme), ("<!-- a -->", "<!-- b -->"), "new")
    assert readme.read_text() == "intro\n<!-- a -->\nnew\n<!-- b -->\nend\n"
    with pytest.warns(DeprecationWarning, match="jaxcnn.train.records.replace_block"):
        report.replace_block(str(readme), ("<!-- a -->", "<!-- b -->"), "newer")
    assert "newer" in readme.read_text()


def test_an_ablations_analyses_are_named_extras_picked_by_its_config():
    from jaxcnn.ablation import carried, extras, spec

    # the extras whose figures need every run's parameters are those whose runs are never carried
    assert {n for n, cls in extras.EXTRA_TYPES.items() if cls.needs_params} == {"twin_flip", "kernels"}
    assert "['kernels', 'twin_flip'] need every run's trained parameters" in carried.unsupported(_tiny_config())
    assert carried.unsupported(_tiny_config(extras=("grad_norms",))) is None
    assert [e.name for e in extras.extras_of(_tiny_config())] == ["twin_flip", "kernels", "facts"]
    c = _tiny_config(extras=("grad_norms",))
    c.ablation.claims = ("generalization_gap: xcorr > conv",)
    c.ablation.pretrain = {"num_steps": 2}
    assert [e.name for e in extras.extras_of(c)] == ["pretrain", "gap", "grad_norms", "facts"]  # the order they act
    with pytest.raises(ValueError, match="registered twice"):
        extras.register_extra(extras.Gap)
    # ablation.extras names the extras picked by name; one that its config picks otherwise is refused, saying how
    ablation.validate_ablation(_tiny_config(extras=("grad_norms", "twin_flip", "kernels")))
    with pytest.raises(ValueError, match="'gap' is picked by a claim on generalization_gap: take it out"):
        ablation.validate_ablation(_tiny_config(extras=("gap",)))
    with pytest.raises(ValueError, match=r"unknown extras \['grad_norm'\]; allowed: \('twin_flip', 'kernels', "
                                         r"'grad_norms'\)"):
        ablation.validate_ablation(_tiny_config(extras=("grad_norm",)))
    # the old names of the registry's views still answer, with a warning
    with pytest.warns(DeprecationWarning, match="named_extras"):
        assert spec.EXTRAS == ("twin_flip", "kernels", "grad_norms")
    with pytest.warns(DeprecationWarning, match="needs_params"):
        assert carried.NEEDS_PARAMS == ("twin_flip", "kernels")


class _Probe:
    """A test's own extra (made an Extra subclass and registered by the test that uses it): it notes every call
    of the run's hooks and adds a metric, a figure, a file, a run.json entry and a check row of its own."""

    name = "probe"
    needs_params = True
    metrics = ("probe_metric",)
    calls: list = []

    def before(self, run):
        self.calls.append("before")

    def configure(self, run, ai, arm, seed, c):
        self.calls.append(("configure", arm.label, seed))

    def prepare(self, run, ai, arm, seed, setup):
        self.calls.append(("prepare", arm.label, seed))

    def measure(self, run, arm, seed, setup, record, kept):
        return {"probe_metric": 0.5 * (arm.label == "xcorr") + seed / 10}

    def collect(self, run, result):
        result["extras"]["probe"] = {"arms": [a.label for a in run.arms]}
        result["claims"].append(self._row(result["extras"]["probe"]))

    def report(self, result, out):
        with open(out("probe.txt"), "w") as f:
            f.write(" ".join(result["extras"]["probe"]["arms"]))

    def recorded(self, result):
        return {"probe": result["extras"]["probe"]}

    def rescore(self, run, stored):
        return [self._row(stored["extras"]["probe"])]

    @staticmethod
    def _row(probe):
        from jaxcnn.ablation import family

        return {"claim": f"probe: {len(probe['arms'])} arms", "kind": family.CHECK, "verdict": stats.REPRODUCED,
                "difference": {"mean": None, "low": None, "high": None, "n": 3, "std": None}, "p_value": None,
                "p_holm": None, "display": "probed", "check_reason": "a test's probe"}


def test_an_extra_added_with_register_extra_is_named_in_the_config_and_every_hook_is_called(tmp_path, monkeypatch):
    from jaxcnn.ablation import carried, extras, rescore, runner

    # the runs themselves are the engine's (tested above): here each "trains" to a fixed record at once
    log = [{"step": s, "train_loss": 1.0, "train_accuracy": 0.5, "images_per_sec": 100.0} for s in (2, 4)]
    monkeypatch.setattr(runner, "run", lambda setup, wd: {"step": 4, "eval_accuracy": 0.5, "state": None})
    monkeypatch.setattr(runner, "read_metrics", lambda path: log)
    cfg = _tiny_config(extras=("probe",))
    with pytest.raises(ValueError, match=r"unknown extras \['probe'\]"):
        ablation.validate_ablation(cfg)
    probe = extras.register_extra(type("Probe", (_Probe, extras.Extra), {"calls": []}))
    try:
        ablation.validate_ablation(cfg)  # the registry is what ablation.extras is checked against
        assert "its extras ['probe'] need every run's trained parameters" in carried.unsupported(cfg)
        result = ablation.run_ablation(cfg, workdirs=str(tmp_path / "runs"), log=lambda s: None)
        files = ablation.write_results(result, str(tmp_path / "out"), config=cfg, command="test", wall_time_s=1.0,
                                       quick=False, load_before=[0.0, 0.0, 0.0])
        scored = rescore.score_result(str(tmp_path / "out"))
        values = rescore.per_seed_values(rescore.read_rows(str(tmp_path / "out" / "results.csv")))
    finally:
        extras.EXTRA_TYPES.pop("probe", None)
    runs = [(arm, seed) for arm in ("xcorr", "conv") for seed in (0, 1, 2)]
    # before the runs, then each run's config and its setup
    assert probe.calls == ["before"] + [(hook, arm, seed) for arm, seed in runs for hook in ("configure", "prepare")]
    # its metric is summed up in the rows: xcorr 0.5 + (0, 0.1, 0.2) -> mean 0.6; conv (0, 0.1, 0.2) -> 0.1
    rows = {r["arm"]: r for r in _rows(tmp_path / "out" / "results.csv")}
    assert rows["xcorr"]["probe_metric_per_seed"] == "0.5 0.6 0.7" and float(rows["xcorr"]["probe_metric_mean"]) == 0.6
    assert rows["conv"]["probe_metric_per_seed"] == "0 0.1 0.2" and float(rows["conv"]["probe_metric_mean"]) == 0.1
    # collect, report and recorded: its figure, its file, run.json's entry and its check row
    assert result["extras"]["probe"] == {"arms": ["xcorr", "conv"]}
    assert str(tmp_path / "out" / "probe.txt") in files and (tmp_path / "out" / "probe.txt").read_text() == "xcorr conv"
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["extras"] == {"probe": {"arms": ["xcorr", "conv"]}, "facts": {}}
    assert [c["claim"] for c in run["claims"]] == ["eval_accuracy: xcorr > conv", "probe: 2 arms"]
    # scored again: its metric read back from results.csv, its row rebuilt by its rescore hook (not parsed as a
    # claim), after the claims
    assert [c["claim"] for c in scored["claims"]] == ["eval_accuracy: xcorr > conv", "probe: 2 arms"]
    assert scored["claims"][1]["display"] == "probed"
    assert values[("xcorr", "probe_metric")] == [0.5, 0.6, 0.7]


def test_a_claim_on_train_error_eval_measures_it_and_carried_records_without_it_train_again(tmp_path):
    from jaxcnn.ablation import carried, extras
    from jaxcnn.ablation.runner import AblationRun

    c = _tiny_config()
    c.ablation.claims = ("generalization_gap: xcorr > conv", "train_error_eval: xcorr > conv")
    c.ablation.gap_examples = 48
    chosen = extras.extras_of(c)
    assert [e.name for e in chosen] == ["twin_flip", "gap", "train_error_eval", "kernels", "facts"]
    run = AblationRun(c, ablation.arms_of(c), [0], str(tmp_path / "runs"), None, None)
    identity = {k: v for e in chosen for k, v in e.carried_identity(run).items()}
    assert identity == {"gap_examples": 48, "train_error_eval_examples": 0}  # 0: the whole training split
    assert [f for e in chosen for f in e.kept_figures] == ["train_eval_accuracy", "train_error_eval"]
    # the flipped twin's arms are one function by construction: claims between them are checks
    assert [e.checked_arms(run) for e in chosen] == [("xcorr", "conv"), None, None, None, None]
    # a record written before the claim on train_error_eval (the gap's figures only) is trained again
    arm, train = run.arms[1], [{"step": 4, "train_loss": 2.0, "train_accuracy": 0.25}]
    carried.write(str(tmp_path), arm, 0, c, {}, train, {"step": 4, "eval_accuracy": 0.5},
                  {"gap_examples": 48, "train_eval_accuracy": 0.6})
    kept, why = carried.load(str(tmp_path), arm, 0, c, {}, identity)
    assert kept is None and "ablation.train_error_eval_examples" in why
    carried.write(str(tmp_path), arm, 0, c, {}, train, {"step": 4, "eval_accuracy": 0.5},
                  {**identity, "train_eval_accuracy": 0.6, "train_error_eval": 0.3})
    kept, why = carried.load(str(tmp_path), arm, 0, c, {}, identity)
    assert why == "" and kept["extra"]["train_error_eval"] == 0.3
    # a carried run's figures are read back from its record, not measured again
    figures = chosen[2].measure(run, arm, 0, None, {"carried": True, "eval_accuracy": 0.5}, kept)
    assert figures == {"train_error_eval": 0.3}
