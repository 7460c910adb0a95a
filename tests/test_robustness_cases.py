"""Reliability II (issue 17): nothing poisons a run silently, no work is lost, every refusal is one line.

Each numbered case of the issue, reproduced as its reporter did (scripts on a tiny synthetic config:
fashion_cnn_tiny, 12x12x1 images, batch 8, a checkpoint every 2 steps), then the same principles beyond
the list: every config value and model field is checked by kind, range and finiteness; every public op
and every model's apply refuses wrong types, dtypes and shapes in one line. The faults injected at random
(kill -9, full disks, flipped bytes, ...) are in tests/test_robustness_faults.py.
"""

import errno
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxcnn
from jaxcnn import ops
from jaxcnn.train import (Workdir, WorkdirError, TrainingDiverged, build, create_train_state, run,
                          train_and_evaluate, train_step, validate_config)
from jaxcnn.train.checkpoint import Checkpointer, CheckpointError
from jaxcnn.train.workdir import read_metrics, write_atomic

sys.path.insert(0, os.path.dirname(__file__))
import fault_tools  # noqa: E402
from test_train_loop import _equal_trees, _metrics, tiny_config, tiny_config_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tests", "fault_tools.py")
TINY = tiny_config_file(6, 1, 3, 2)


def _env(**extra) -> dict:
    cache = os.path.join(fault_tools.session_dir(), "jax_cache_cases")
    return {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": cache,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", **extra}


def _script(name, args, *, timeout=600, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", name)] + list(args), capture_output=True,
                          text=True, timeout=timeout, env=env or _env())


def _one_line(r, code: int = 2) -> str:
    """The refusal: exit status `code` and exactly one non-empty line on stderr, no traceback."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == code and len(lines) == 1, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr
    return lines[0]


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(TINY)
    return str(path)


def _files(directory) -> dict:
    out = {}
    for d, _, fs in os.walk(directory):
        for f in fs:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), directory)] = fh.read()
    return out


# ---------------------------------------------------------------------------------------------------------
# 1. A NaN learning rate never changes the state nor gets checkpointed.


def _nan_schedule(step):
    return jnp.nan * jnp.asarray(step, jnp.float32)


def test_1_nan_learning_rate_in_the_step_changes_no_params_stats_or_optimizer_state():
    from jaxcnn.data import augment, datasets

    tx = optax.sgd(_nan_schedule, momentum=0.9)
    state = create_train_state(jaxcnn.create_model("fashion_cnn_tiny"), tx, jax.random.key(0), (12, 12, 1))
    assert jax.tree_util.tree_leaves(state.batch_stats)  # the model has BatchNorm statistics to protect
    data = datasets.synthetic((12, 12, 1), size=8)
    step = jax.jit(lambda s, b, k: train_step(s, b, k, preprocess=augment.make_preprocess()))
    new, m = step(state, {"image": data.images, "label": data.labels}, jax.random.key(1))
    assert float(m["finite"]) == 0.0 and np.isfinite(float(m["loss"]))  # finite loss, NaN update
    assert int(new.step) == 1
    for a, b in ((new.params, state.params), (new.batch_stats, state.batch_stats), (new.opt_state, state.opt_state)):
        assert _equal_trees(a, b)


def test_1_nan_schedule_through_the_engine_is_never_checkpointed(tmp_path):
    c = tiny_config(num_steps=3, checkpoint_every=1, eval_every=0)
    tx = optax.sgd(_nan_schedule)
    with pytest.raises(TrainingDiverged, match=r"NaN/Inf at step 1; training stopped .*Last checkpoint: none"):
        run(build(c, optimizer=(tx, _nan_schedule)), str(tmp_path / "w"))
    assert Checkpointer(str(tmp_path / "w" / "checkpoints")).latest_step() is None


def test_1_every_step_skipped_is_not_a_finished_run(tmp_path):
    c = tiny_config(num_steps=3, checkpoint_every=1, eval_every=0, nan_policy="skip")
    tx = optax.sgd(_nan_schedule)
    setup = build(c, optimizer=(tx, _nan_schedule))
    wd = str(tmp_path / "w")
    with pytest.raises(TrainingDiverged, match=r"every one of the 3 steps of this run was skipped"):
        run(setup, wd)
    saved = fault_tools.arrays(wd, 3)  # what was saved is the initial state, finite
    init = setup.init_state()
    want = {jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(
        {"params": init.params, "batch_stats": init.batch_stats})[0]}
    for k, x in want.items():
        np.testing.assert_array_equal(saved[k], x)
    with pytest.raises(TrainingDiverged, match="every one of the 3 steps"):  # and the same command says so again
        run(build(c, optimizer=(tx, _nan_schedule)), wd)


def test_1_nan_learning_rate_flag_is_refused_before_anything_is_written(tmp_path, tiny):
    wd = tmp_path / "w"
    r = _script("train.py", ["--config", tiny, "--workdir", str(wd), "--config.optimizer.learning_rate=nan",
                             "--config.checkpoint_every=1"])
    line = _one_line(r)
    assert "config.optimizer.learning_rate must be a finite number" in line
    assert not (wd / "checkpoints").exists()


# ---------------------------------------------------------------------------------------------------------
# 2, 3, 15. A classifier narrower than the labels; a rerun with another meaning; a data_dir pointing nowhere.


def test_2_num_classes_narrower_than_the_labels_is_refused(tmp_path, tiny):
    r = _script("train.py", ["--config", tiny, "--workdir", str(tmp_path / "w"), "--config.model.num_classes=3"])
    line = _one_line(r)
    assert "num_classes=3" in line and "--config.model.num_classes=10" in line


def test_3_and_15_resuming_with_another_meaning_or_data_dir_is_refused_and_the_workdir_untouched(tmp_path, tiny):
    wd = str(tmp_path / "w")
    first = _script("train.py", ["--config", tiny, "--workdir", wd, "--config.num_steps=4"])
    assert first.returncode == 0, first.stderr[-3000:]
    before = _files(wd)
    for flag, shown in [("--config.batch_size=16", "batch_size (8 -> 16)"),
                        ("--config.optimizer.learning_rate=0.01", "optimizer.learning_rate (0.002 -> 0.01)"),
                        ("--config.seed=3", "seed (0 -> 3)"),
                        ("--config.model.conv_mode=convolution",
                         "model.conv_mode ('cross_correlation' -> 'convolution')")]:
        line = _one_line(_script("train.py", ["--config", tiny, "--workdir", wd, "--config.num_steps=4", flag]))
        assert f"holds a run with another config: {shown} differ; use a new --workdir" in line, line
    line = _one_line(_script("train.py", ["--config", tiny, "--workdir", wd, "--config.num_steps=4",
                                          f"--config.data_dir={tmp_path / 'nowhere'}"]))
    assert line.startswith(f"error: config.data_dir '{tmp_path / 'nowhere'}' is not a directory")
    after = _files(wd)
    assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}


# ---------------------------------------------------------------------------------------------------------
# 4. One flipped byte in the largest file of a checkpoint step.


def test_4_flipped_byte_in_the_largest_checkpoint_file_is_refused_and_the_fix_resumes_exactly(tmp_path):
    full = train_and_evaluate(tiny_config(), str(tmp_path / "full"))
    wd = str(tmp_path / "w")
    train_and_evaluate(tiny_config(), wd, stop_after_steps=5)  # checkpoints 2 and 4
    step_dir = os.path.join(wd, "checkpoints", "4")
    files = [os.path.join(d, f) for d, _, fs in os.walk(step_dir) for f in fs]
    largest = max(files, key=os.path.getsize)
    with open(largest, "r+b") as f:
        f.seek(os.path.getsize(largest) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x01]))
    with pytest.raises(CheckpointError) as info:
        train_and_evaluate(tiny_config(), wd)
    msg = str(info.value)
    assert "\n" not in msg and f"checkpoint {step_dir}" in msg and f"rm -r {step_dir}" in msg, msg
    shutil.rmtree(step_dir)  # the fix it names: resume from step 2
    resumed = train_and_evaluate(tiny_config(), wd)
    assert _equal_trees(resumed["state"].arrays(), full["state"].arrays())
    assert _metrics(wd) == _metrics(str(tmp_path / "full"))


def test_4_the_pending_metrics_record_has_its_own_checksum(tmp_path):
    ck = Checkpointer(str(tmp_path / "ck"))
    ck.save(1, {"w": np.arange(3, dtype=np.float32)}, {"window": [{"loss": 2.25, "finite": 1.0}], "phase": "train"})
    path = tmp_path / "ck" / "1" / "extra" / "metadata"
    path.write_text(path.read_text().replace("2.25", "2.35"))  # valid JSON, another number
    with pytest.raises(CheckpointError, match=r"its record \(extra/, the pending metrics\) does not match"):
        Checkpointer(str(tmp_path / "ck")).restore({"w": np.zeros(3, np.float32)})


# ---------------------------------------------------------------------------------------------------------
# 6, 10, 17. Refusals of the scripts' inputs.


def test_6_finetune_into_its_own_pretrained_workdir_is_refused(tmp_path):
    wd = str(tmp_path / "pre")
    r = _script("finetune.py", ["--config", os.path.join(ROOT, "experiments", "configs", "finetune.py"),
                                "--workdir", wd, f"--config.finetune.path={wd}"])
    assert "is the fine-tuning --workdir itself" in _one_line(r)


@pytest.mark.parametrize("script", ["train.py", "finetune.py"])
def test_10_config_file_missing_broken_or_without_get_config(tmp_path, script):
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n    pass\n")
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    for path, want in [(tmp_path / "absent.py", f"no config file '{tmp_path / 'absent.py'}'"),
                       (broken, f"config file {broken} has a syntax error at line 1"),
                       (empty, f"config file {empty} defines no get_config()")]:
        line = _one_line(_script(script, ["--config", str(path), "--workdir", str(tmp_path / "w")]))
        assert line.startswith("error: " + want), line


def test_17_ablate_bad_dataset_and_negative_steps_are_one_line(tmp_path):
    common = ["conv_mode", "--quick", "--out", str(tmp_path / "out"), "--workdirs", str(tmp_path / "runs")]
    line = _one_line(_script("ablate.py", common + ["--config.dataset=fashon"]))
    assert "unknown dataset 'fashon'" in line and "Did you mean" in line
    line = _one_line(_script("ablate.py", common + ["--config.num_steps=-3"]))
    assert "config.num_steps must be positive, got -3" in line


# ---------------------------------------------------------------------------------------------------------
# 11. Ctrl-C in fine-tuning and in an ablation: a checkpoint of the last finished step, one line, resumable.

def _finetune_config(pre: str) -> str:
    """TINY as fine-tuning from the run in `pre`: a new 3-class head for 4 steps, then 4 of every weight."""
    return TINY.replace("    return c\n", f"""    c.classes = (0, 1, 2)
    c.finetune.source, c.finetune.path, c.finetune.pretrained_num_classes = "checkpoint", {pre!r}, 10
    c.finetune.head_steps, c.finetune.full_steps = 4, 4
    c.log_every, c.eval_every = 3, 0
    return c
""")


def _paused(cmd, workdir, event, tmp_path, env):
    ready, release = str(tmp_path / f"ready{event}"), str(tmp_path / f"release{event}")
    proc = subprocess.Popen([sys.executable, TOOLS, "pause-at", str(event), workdir, ready, release, "--"] + cmd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time

    deadline = time.time() + 600
    while not os.path.exists(ready) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert os.path.exists(ready), proc.communicate()[1][-3000:]
    return proc, release


def _interrupt(proc, release) -> str:
    proc.send_signal(signal.SIGINT)
    open(release, "w").close()
    _, err = proc.communicate(timeout=600)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130 and len(lines) == 1, (proc.returncode, err[-3000:])
    assert lines[0].startswith("SIGINT (Ctrl-C): stopped after step") and "run the same command again" in lines[0]
    return lines[0]


def test_11_ctrl_c_in_finetune_saves_the_last_step_and_resumes_bit_identical(tmp_path, tiny):
    pre = str(tmp_path / "pre")
    assert _script("train.py", ["--config", tiny, "--workdir", pre]).returncode == 0
    cfg = tmp_path / "ft.py"
    cfg.write_text(_finetune_config(pre))
    wd = str(tmp_path / "ft")
    script = os.path.join(ROOT, "scripts", "finetune.py")
    proc, release = _paused([script, "--config", str(cfg), "--workdir", wd], wd, 25, tmp_path, _env())
    line = _interrupt(proc, release)
    step = int(re.search(r"stopped after step (\d+) of", line).group(1))
    assert step in fault_tools.committed_steps(wd)  # the step it names was saved
    again = _script("finetune.py", ["--config", str(cfg), "--workdir", wd])
    assert again.returncode == 0, again.stderr[-3000:]
    whole = _script("finetune.py", ["--config", str(cfg), "--workdir", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert fault_tools.same_as_reference(wd, str(tmp_path / "whole"), 8) == ""


ABLATION = """
from jaxcnn.ablation import ablation_config


def get_config():
    c = ablation_config("tiny", title="tiny", claim="none", field="model.conv_mode",
                        arms=[dict(label="xcorr", overrides={"model.conv_mode": "cross_correlation"}),
                              dict(label="conv", overrides={"model.conv_mode": "convolution"})],
                        model=dict(name="fashion_cnn_tiny"))
    c.dataset, c.synthetic_size, c.synthetic_shape = "synthetic", 96, (12, 12, 1)
    c.num_steps, c.batch_size, c.eval_batch_size, c.log_every, c.checkpoint_every = 4, 8, 48, 2, 2
    c.optimizer.warmup_steps = 0
    return c
"""


def test_11_ctrl_c_in_an_ablation_saves_the_last_step_and_the_same_command_resumes(tmp_path):
    (tmp_path / "abl").mkdir()
    (tmp_path / "abl" / "tiny.py").write_text(ABLATION)
    runs = str(tmp_path / "runs")
    args = ["tiny", "--ablations", str(tmp_path / "abl"), "--out", str(tmp_path / "out"), "--workdirs", runs]
    proc, release = _paused([os.path.join(ROOT, "scripts", "ablate.py")] + args, runs, 40, tmp_path, _env())
    line = _interrupt(proc, release)
    saved = re.search(r"saved a checkpoint of it in (\S+?);", line).group(1)
    step = int(re.search(r"stopped after step (\d+) of", line).group(1))
    assert os.path.isdir(os.path.join(saved, str(step)))
    again = _script("ablate.py", args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(finished before)" in again.stdout and os.path.exists(tmp_path / "out" / "results.csv")
    # another machine: the workdirs are gone, the result folder (committed) is there; the same command takes
    # the six finished runs from their records, trains none and writes the same table
    table = (tmp_path / "out" / "results.csv").read_text()
    shutil.rmtree(runs)
    moved = _script("ablate.py", args)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert moved.stdout.count("(carried: ") == 6 and "6 of 6 runs were carried" in moved.stdout
    assert not os.path.exists(os.path.join(runs, "xcorr")) and (tmp_path / "out" / "results.csv").read_text() == table


# ---------------------------------------------------------------------------------------------------------
# 12. A full disk names the path and the size (for real in tests/test_robustness_faults.py).


def test_12_full_disk_while_writing_config_json_or_metrics_names_the_path(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open

    def full(path, mode="r", *a, **k):
        if "w" in mode or "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full)
    target = str(tmp_path / "config.json")
    with pytest.raises(WorkdirError, match=rf"no space left on the device of {re.escape(target)} \(writing 11 "
                                           r"bytes\); free some space"):
        write_atomic(target, "0123456789\n")
    from jaxcnn.train.records import MetricsLog

    log = MetricsLog.__new__(MetricsLog)
    log.path, log.enabled, log.writer = str(tmp_path / "metrics.jsonl"), True, None
    with pytest.raises(WorkdirError, match=r"no space left on the device of .*metrics.jsonl \(appending \d+ bytes"):
        log.write({"step": 1, "train_loss": 2.0})


def test_12_a_writer_thread_failing_on_a_full_disk_after_the_save_adds_no_traceback(tmp_path):
    """A full disk fails every writer thread of a save; the main thread reports the first failure in one line,
    and a second thread's report of the same limit (ENOSPC as an OSError, or as tensorstore's text in a
    ValueError) is dropped, while any other thread exception still reaches the hook that was there before."""
    import threading

    reached = []
    threading.excepthook = lambda args: reached.append(str(args.exc_value))  # conftest puts the hook back
    Checkpointer(str(tmp_path / "ckpt")).save(1, {"w": np.zeros(3, np.float32)})

    def fail_with(e):
        def target():
            raise e
        t = threading.Thread(target=target)
        t.start()
        t.join()

    fail_with(OSError(errno.ENOSPC, "No space left on device", "/x/0.data"))
    fail_with(ValueError("Error writing local file \"/x/d/0\": [RESOURCE_EXHAUSTED] No space left on device"))
    fail_with(OSError(errno.EDQUOT, "Disk quota exceeded", "/x/1.data"))
    assert reached == []
    fail_with(RuntimeError("a real bug in a thread"))
    assert reached == ["a real bug in a thread"]


def test_12_orbax_writer_threads_logging_after_a_save_cut_by_a_full_disk_stay_quiet(monkeypatch):
    """orbax's writer threads of a save cut by a full disk log their tracebacks at ERROR after the save has
    raised (absl), and their abandoned tasks log when collected (asyncio); both loggers are left at CRITICAL
    then. Any other failure restores the levels they had, and so does JAXCNN_TRACEBACKS=1."""
    import logging

    from jaxcnn.train.checkpoint import _QuietOrbax

    monkeypatch.delenv("JAXCNN_TRACEBACKS", raising=False)
    loggers = [logging.getLogger("absl"), logging.getLogger("asyncio")]  # conftest puts their levels back

    def levels_after(error):
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with pytest.raises(type(error)):
            with _QuietOrbax():
                raise error
        return [logger.level for logger in loggers]

    full = ValueError("RESOURCE_EXHAUSTED: Failed to write 185 bytes to file 19: No space left on device")
    assert levels_after(full) == [logging.CRITICAL] * 2
    assert levels_after(RuntimeError("a tree that does not match")) == [logging.ERROR] * 2
    monkeypatch.setenv("JAXCNN_TRACEBACKS", "1")
    assert levels_after(full) == [logging.ERROR] * 2


def test_12_the_one_line_is_printed_after_the_late_reports_are_quieted(monkeypatch, capsys):
    """cli.main quiets the libraries' hooks before it prints the error line: a thread that fails between the two
    cannot put its traceback under the line."""
    from jaxcnn.train import cli

    order = []
    monkeypatch.setattr(cli, "_quiet_after_failure", lambda: order.append("quiet"))
    monkeypatch.setattr(sys, "stderr", type("E", (), {"write": lambda self, s: order.append(s) if s.strip() else None,
                                                      "flush": lambda self: None})())

    def full():
        raise OSError(errno.ENOSPC, "No space left on device", "/d/w")

    assert cli.main(full) == 2
    assert order[0] == "quiet" and order[1].startswith("error: no space left on the device of /d/w")


def test_12_tracebacks_on_request_show_where_an_error_came_from(monkeypatch, capsys):
    """A TypeError is a user's bad value or a bug; its one line cannot tell which. JAXCNN_TRACEBACKS=1 prints
    the traceback above the line, with the same exit status."""
    from jaxcnn.train import cli

    monkeypatch.setattr(cli, "_quiet_after_failure", lambda: None)  # leave this process's hooks alone

    def deep_inside():
        return len(None)

    monkeypatch.delenv("JAXCNN_TRACEBACKS", raising=False)
    assert cli.main(deep_inside) == 2
    err = capsys.readouterr().err
    assert err == "error: object of type 'NoneType' has no len()\n"
    monkeypatch.setenv("JAXCNN_TRACEBACKS", "1")
    assert cli.main(deep_inside) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in deep_inside" in err
    assert err.endswith("error: object of type 'NoneType' has no len()\n")


# ---------------------------------------------------------------------------------------------------------
# 13. Damaged data at the loading boundary (real files in tests/test_robustness_faults.py).


def test_13_damage_is_named_with_the_way_to_rebuild_and_our_own_refusals_pass_through(tmp_path):
    from jaxcnn.data import integrity

    @integrity.readable
    def load(name, split, *, data_dir_path=None):
        if name == "ours":
            raise ValueError("unknown dataset 'ours'")
        raise RuntimeError("Corrupted Riegeli/records file: chunk header hash mismatch\nmore detail")

    folder = os.path.join(str(tmp_path), "cifar10")
    with pytest.raises(integrity.DatasetDamaged) as info:  # no folder yet: nothing to delete, it was never written
        load("cifar10", "train", data_dir_path=str(tmp_path))
    assert str(info.value).startswith(f"dataset 'cifar10' could not be prepared in {tmp_path} (RuntimeError: ")
    os.makedirs(folder)  # a written folder that fails to read is damaged: the message says how to rebuild it
    with pytest.raises(integrity.DatasetDamaged) as info:
        load("cifar10", "train", data_dir_path=str(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"dataset 'cifar10' in {folder} is damaged (RuntimeError: Corrupted")
    assert f"rm -r {folder}" in msg and "scripts/prepare_data.py" in msg and "tfds build cifar10" in msg
    with pytest.raises(ValueError, match="^unknown dataset 'ours'$"):
        load("ours", "train")
    with pytest.raises(RuntimeError):  # synthetic data has no files to be damaged: a bug stays a bug
        load("synthetic", "train")


# ---------------------------------------------------------------------------------------------------------
# 14. metrics.jsonl that is a directory, or holds lines that are not records.


def test_14_metrics_lines_that_are_not_records_are_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "train_loss": 2.0}\n[1, 2]\n"text"\n{"step": "2"}\n{"no_step": 1}\n'
                    '{"step": 3, "train_loss": 1.5}\n{"step": 4, "train_lo')
    assert [r["step"] for r in read_metrics(str(path))] == [1, 3]
    assert [r["step"] for r in read_metrics(str(path), upto=2)] == [1]


def test_14_metrics_jsonl_that_is_a_directory_is_one_line(tmp_path, tiny):
    wd = tmp_path / "w"
    (wd / "metrics.jsonl").mkdir(parents=True)
    with pytest.raises(WorkdirError, match=r"metrics.jsonl is a directory, not a metrics file; move it away"):
        read_metrics(str(wd / "metrics.jsonl"))
    line = _one_line(_script("train.py", ["--config", tiny, "--workdir", str(wd)]))
    assert "metrics.jsonl is a directory, not a metrics file" in line


# ---------------------------------------------------------------------------------------------------------
# 16. A checkpoint trained at another input size is named as such (not as another class count).


def test_16_checkpoint_of_another_input_size_says_so(tmp_path):
    train_and_evaluate(tiny_config(num_steps=2, eval_every=0), str(tmp_path / "w"))  # 12x12 images
    with pytest.raises(ValueError) as info:
        jaxcnn.load_checkpoint_weights("fashion_cnn_tiny", str(tmp_path / "w"), input_shape=(28, 28, 1))
    msg = str(info.value)
    assert "trained on images of another size" in msg and "num_classes=" not in msg, msg
    with pytest.raises(ValueError, match=r"pass num_classes=10 \(the checkpoint classifies 10 classes\)"):
        jaxcnn.load_checkpoint_weights("fashion_cnn_tiny", str(tmp_path / "w"), input_shape=(12, 12, 1),
                                       num_classes=4)


# ---------------------------------------------------------------------------------------------------------
# 18. Weight files: safetensors that are not, and pickles that are refused unexecuted.


def _safetensors(path, header: dict, data: bytes, length=None):
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h) if length is None else length) + h + data)


def test_18_broken_safetensors_files_are_one_line_naming_the_file(tmp_path):
    import pickle

    from jaxcnn.pretrained.files import read_state_dict

    pickled = tmp_path / "pickled.safetensors"
    pickled.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    huge = tmp_path / "huge.safetensors"
    _safetensors(huge, {}, b"", length=2**63)
    cut = tmp_path / "cut.safetensors"
    _safetensors(cut, {"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]},
                       "b": {"dtype": "F32", "shape": [4], "data_offsets": [64, 80]}}, b"\0" * 70)
    for path, detail in [(pickled, "it is a pickle or torch.save file, not safetensors"),
                         (huge, f"its header claims {2**63} bytes"),
                         (cut, "tensor 'b' needs data bytes 64..80, the file holds 70: it was cut short")]:
        with pytest.raises(ValueError) as info:
            read_state_dict(str(path))
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith(f"{path} is not a readable .safetensors file") and detail in msg


def test_18_refused_pickle_keeps_torchs_warning(tmp_path):
    torch = pytest.importorskip("torch")
    from jaxcnn.pretrained.files import read_state_dict

    torch.save({"w": torch.zeros(2), "opt": {"lr": 0.1, "f": print}}, tmp_path / "ckpt.pth")
    with pytest.raises(ValueError) as info:
        read_state_dict(str(tmp_path / "ckpt.pth"))
    msg = str(info.value)
    assert "\n" not in msg and "refusing to read" in msg
    assert "weights_only=False can run arbitrary code" in msg


# ---------------------------------------------------------------------------------------------------------
# 8, 9 and beyond: ops refuse what they would misread.


def _x(dtype=jnp.float32, shape=(1, 8, 8, 2)):
    return jnp.ones(shape, dtype)


def _w(dtype=jnp.float32):
    return jnp.ones((3, 3, 2, 4), dtype)


@pytest.mark.parametrize("call", [
    lambda: ops.cross_correlate(_x(), _w(), stride=(1.5, 1.5)),
    lambda: ops.cross_correlate(_x(), _w(), stride=(2.9, 2.9)),
    lambda: ops.cross_correlate(_x(), _w(), stride=2.0),
    lambda: ops.convolve(_x(), _w(), dilation=1.5),
    lambda: ops.cross_correlate(_x(), _w(), padding=1.5),
    lambda: ops.cross_correlate(_x(), _w(), padding=((1, 1.5), (1, 1))),
    lambda: ops.conv_transpose(_x(shape=(1, 4, 4, 4)), _w(), stride=(2.5, 2)),
    lambda: ops.max_pool(_x(), 2.5),
    lambda: ops.avg_pool(_x(), 2, stride=1.5),
    lambda: ops.max_pool_with_argmax(_x(), (2, 2.0)),
    lambda: ops.im2col(_x(), 3.0, 3),
    lambda: ops.conv_output_size(28, 5, 1.5),
    lambda: ops.conv_output_size(28, 5, 1, 2.5),
    lambda: ops.local_response_norm(_x(), size=4.5),
    lambda: ops.spatial_pyramid_pool(_x(), levels=(1, 2.5)),
    lambda: ops.roi_pool(_x(), jnp.zeros((1, 5)), output_size=(2.5, 2)),
    lambda: ops.conv_macs(7, 3, 6.5, 8),
    lambda: ops.receptive_field([(3, 1.5)]),
], ids=["stride_1.5", "stride_2.9", "stride_2.0", "dilation", "padding", "padding_pairs", "transpose_stride",
        "max_pool_window", "avg_pool_stride", "argmax_window", "im2col_kh", "output_size_stride",
        "output_size_padding", "lrn_size", "spp_levels", "roi_output_size", "macs_channels", "receptive_field"])
def test_8_fractional_sizes_are_refused_not_truncated(call):
    with pytest.raises(TypeError) as info:
        call()
    assert "\n" not in str(info.value) and re.search(r"\ban? (positive )?int\b", str(info.value)), info.value


@pytest.mark.parametrize("call, match", [
    (lambda: ops.cross_correlate(_x(), _w(), stride=True), r"got True"),
    (lambda: ops.max_pool(_x(), True), r"got True"),
    (lambda: ops.cross_correlate(_x(), _w(), groups=True), r"groups must be an int, got the bool True"),
    (lambda: ops.cross_correlate(_x(), _w(), padding=True), r"padding must be 'VALID', 'SAME'"),
    (lambda: ops.local_response_norm(_x(), size=True), r"size must be an int, got the bool"),
    (lambda: ops.spatial_pyramid_pool(_x(), levels=(1, True)), r"level must be an int, got the bool"),
    (lambda: ops.avg_pool(_x(), 2, count_include_pad="no"), r"count_include_pad must be True or False"),
    (lambda: ops.global_avg_pool(_x(), keepdims=1), r"keepdims must be True or False"),
], ids=["stride", "window", "groups", "padding", "lrn_size", "spp_level", "count_include_pad", "keepdims"])
def test_bool_where_an_int_belongs_and_int_where_a_bool_belongs(call, match):
    with pytest.raises(TypeError, match=match):
        call()


OPS_ON_IMAGES = {  # name -> (call on an image x, whether integer images are meaningful)
    "cross_correlate": (lambda x: ops.cross_correlate(x, _w()), False),
    "convolve": (lambda x: ops.convolve(x, _w()), False),
    "conv_transpose": (lambda x: ops.conv_transpose(x, jnp.ones((3, 3, 4, 2))), False),
    "conv_im2col": (lambda x: ops.conv_im2col(x, _w()), False),
    "conv_reference": (lambda x: ops.conv_reference(x, _w()), False),
    "im2col": (lambda x: ops.im2col(x, 3, 3), True),
    "max_pool": (lambda x: ops.max_pool(x, 2), True),
    "max_pool_with_argmax": (lambda x: ops.max_pool_with_argmax(x, 2), True),
    "avg_pool": (lambda x: ops.avg_pool(x, 2), False),
    "global_avg_pool": (lambda x: ops.global_avg_pool(x), False),
    "local_response_norm": (lambda x: ops.local_response_norm(x), False),
    "spatial_pyramid_pool": (lambda x: ops.spatial_pyramid_pool(x, mode="avg"), False),
    "roi_pool": (lambda x: ops.roi_pool(x, jnp.zeros((1, 5))), False),
    "roi_spatial_pyramid_pool": (lambda x: ops.roi_spatial_pyramid_pool(x, jnp.zeros((1, 5))), False),
    "max_unpool": (lambda x: ops.max_unpool(x, jnp.zeros(getattr(x, "shape", (1, 8, 8, 4)), jnp.int32), (16, 16)),
                   True),
}


def test_every_public_op_on_images_is_in_the_table():
    # a new op joins the table below (and so the dtype/shape checks), or this fails
    others = {"conv_macs", "conv_output_size", "receptive_field", "flip_kernel", "normalize_padding", "check_image",
              "SPP_CORNERS",  # a constant
              "batch_norm"}  # any rank >= 2 (..., C): checked below
    assert set(ops.__all__) - others == set(OPS_ON_IMAGES)


@pytest.mark.parametrize("bad, error, match", [
    (lambda: jnp.ones((4, 3), jnp.complex64), TypeError, r"complex64; pass a real array"),
    (lambda: jnp.ones((4, 3), bool), TypeError, r"dtype bool"),
    (lambda: [[1.0] * 3] * 4, TypeError, r"must be an array .*got list; pass jnp.asarray"),
    (lambda: jnp.ones((4, 3), jnp.int32), TypeError, r"int32; convert it with \w+\.astype\(jnp\.float32\)"),
    (lambda: jnp.ones((3,)), ValueError, r"rank >= 2 \(\.\.\., C\), got shape \(3,\); .*x\[None\]"),
], ids=["complex", "bool", "list", "int", "rank1"])
def test_batch_norm_refuses_wrong_types_dtypes_and_ranks_in_one_line(bad, error, match):
    with pytest.raises(error) as info:
        ops.batch_norm(bad(), jnp.ones((3,)), jnp.zeros((3,)))
    assert "\n" not in str(info.value) and re.search(match, str(info.value)), str(info.value)


@pytest.mark.parametrize("name", sorted(OPS_ON_IMAGES))
@pytest.mark.parametrize("bad, error, match", [
    (lambda: jnp.ones((1, 8, 8, 4), jnp.complex64), TypeError, r"complex64; pass a real array"),
    (lambda: jnp.ones((1, 8, 8, 4), bool), TypeError, r"dtype bool"),
    (lambda: np.full((1, 8, 8, 4), "a"), TypeError, r"dtype <U1; pass numbers"),
    (lambda: [[[[1.0] * 4] * 8] * 8], TypeError, r"must be an array .*got list; pass jnp.asarray"),
    (lambda: "image.png", TypeError, r"must be an array .*got str"),
    (lambda: jnp.ones((8, 8, 4)), ValueError, r"rank 4 \(N, H, W, C\)"),
    (lambda: jnp.ones((1, 8, 8, 4), jnp.int32), TypeError, r"int32; convert it with \w+\.astype\(jnp\.float32\)"),
], ids=["complex", "bool", "strings", "list", "str", "rank3", "int"])
def test_ops_refuse_wrong_types_dtypes_and_ranks_in_one_line(name, bad, error, match):
    call, int_ok = OPS_ON_IMAGES[name]
    x = bad()
    x = x[..., :2] if name in ("cross_correlate", "convolve", "conv_im2col", "conv_reference") and hasattr(
        x, "ndim") and x.ndim == 4 else x
    if int_ok and "int32" in match:
        out = call(x)  # integers are meaningful here (a max, a copy, a placement): computed exactly
        assert jnp.issubdtype(out[0].dtype if isinstance(out, tuple) else out.dtype, jnp.integer)
        return
    with pytest.raises(error) as info:
        call(x)
    assert "\n" not in str(info.value) and re.search(match, str(info.value)), str(info.value)


def test_kernels_of_the_wrong_dtype_are_refused():
    with pytest.raises(TypeError, match=r"kernel must be a floating-point array, got dtype int32"):
        ops.cross_correlate(_x(), _w(jnp.int32))
    with pytest.raises(TypeError, match=r"indices must be an integer array, got dtype float32"):
        ops.max_unpool(_x(), jnp.zeros((1, 8, 8, 2)), (16, 16))


def test_9_max_unpool_refuses_positions_outside_the_output():
    y = jnp.arange(4.0).reshape(1, 2, 2, 1) + 1
    good = jnp.array([0, 3, 12, 15], jnp.int32).reshape(1, 2, 2, 1)
    out = ops.max_unpool(y, good, (4, 4))
    np.testing.assert_array_equal(np.asarray(out).ravel()[[0, 3, 12, 15]], [1, 2, 3, 4])
    for bad, first in ((16, 16), (-1, -1)):
        with pytest.raises(ValueError) as info:
            ops.max_unpool(y, good.at[0, 1, 0, 0].set(bad), (4, 4))
        msg = str(info.value)
        assert "1 of 4 indices are outside the 4x4 output (valid: 0..15" in msg and f"first: {first}" in msg


def test_9_under_jit_bad_positions_are_dropped_never_wrapped_and_checkify_reports_them():
    from jax.experimental import checkify

    y = jnp.ones((1, 2, 2, 1))
    idx = jnp.array([0, 5, -1, 99], jnp.int32).reshape(1, 2, 2, 1)
    out = np.asarray(jax.jit(lambda y, i: ops.max_unpool(y, i, (4, 4)))(y, idx)).ravel()
    assert out[0] == 1 and out[5] == 1 and out.sum() == 2  # -1 did not land on the last position
    err, _ = checkify.checkify(jax.jit(lambda y, i: ops.max_unpool(y, i, (4, 4))),
                               errors=checkify.index_checks)(y, idx)
    assert err.get() is not None and "out of bounds" in err.get()


# ---------------------------------------------------------------------------------------------------------
# Beyond the list: config values, model fields, model inputs.


@pytest.mark.parametrize("key, value, error, match", [
    ("seed", 2**32, ValueError, r"config.seed must be in 0\.\.4294967295, got 4294967296"),
    ("seed", -1, ValueError, r"config.seed must be in 0\.\."),
    ("optimizer.momentum", 1.0, ValueError, r"momentum must be < 1"),
    ("optimizer.momentum", float("nan"), ValueError, r"momentum must be a finite number"),
    ("optimizer.step_boundaries", (0.75, 0.5), ValueError, r"step_boundaries must be increasing"),
    ("optimizer.step_boundaries", ("half",), TypeError, r"step_boundaries must hold finite numbers"),
    ("classes", (1.5, 2), TypeError, r"config.classes must hold ints >= 0, got \(1.5, 2\)"),
    ("classes", (True,), TypeError, r"config.classes must hold ints"),
    ("synthetic_shape", (12, 0, 1), ValueError, r"synthetic_shape must hold ints >= 1"),
    ("preprocess.std", (float("inf"),), ValueError, r"preprocess.std must hold finite numbers > 0"),
    ("ablation.seeds", (0, "1", 2), TypeError, r"ablation.seeds must hold ints >= 0"),
    ("dataset", " ", ValueError, r"config.dataset is empty; e.g. 'fashion_mnist_offline'"),
    ("model.name", 3, TypeError, r"config.model.name must be a str"),
    ("label_smoothing", float("inf"), ValueError, r"label_smoothing must be a finite number"),
    ("optimizer.warmup_steps", 2.5, TypeError, r"warmup_steps must be an int"),
])
def test_config_values_are_checked_by_kind_range_and_finiteness(key, value, error, match):
    c = tiny_config()
    *path, last = key.split(".")
    target = c
    for p in path:
        target = target[p]
    target._fields[last] = value  # as a hand-written config file could
    with pytest.raises(error) as info:
        validate_config(c)
    assert "\n" not in str(info.value) and re.search(match, str(info.value)), str(info.value)


@pytest.mark.parametrize("field, value, error, match", [
    ("dropout", 1.5, ValueError, r"dropout of model 'fashion_cnn_tiny' must be in \[0.0, 1.0\), got 1.5; e.g. 0.5"),
    ("dropout", float("nan"), ValueError, r"must be a finite number"),
    ("widths", (4, 0, 8), ValueError, r"widths .* must be a tuple of ints >= 1"),
    ("widths", (4, 8.5, 8), TypeError, r"widths .* must be a tuple of ints"),
    ("hidden", 2.5, TypeError, r"hidden .* must be an int, got 2.5"),
    ("num_classes", 0, ValueError, r"num_classes .* must be an int >= 1, got 0"),
    ("num_classes", True, TypeError, r"num_classes .* must be an int, got True"),
    ("batch_norm", "False", TypeError, r"batch_norm .* must be True or False, got 'False'"),
    ("conv_mode", 1, TypeError, r"conv_mode .* must be a str"),
])
def test_model_fields_are_checked_where_a_model_is_created(field, value, error, match):
    with pytest.raises(error) as info:
        jaxcnn.create_model("fashion_cnn_tiny", **{field: value})
    assert "\n" not in str(info.value) and re.search(match, str(info.value)), str(info.value)


def test_model_fields_through_the_config_name_the_config_key(tmp_path):
    c = tiny_config()
    with c.unlocked():
        c.model.dropout = 1.5
    with pytest.raises(ValueError, match=r"^config.model.dropout must be in \[0.0, 1.0\), got 1.5; e.g. 0.5"):
        train_and_evaluate(c, str(tmp_path / "w"))


def test_a_value_the_model_refuses_is_refused_before_the_workdir_is_touched(tmp_path):
    wd = tmp_path / "w"
    with pytest.raises(ValueError, match=r"unknown conv_mode 'conv'"):
        train_and_evaluate(tiny_config(**{"model.conv_mode": "conv"}), str(wd))
    assert not (wd / "config.json").exists()  # so the corrected command is not refused as another run
    train_and_evaluate(tiny_config(num_steps=1, eval_every=0, **{"model.conv_mode": "convolution"}), str(wd))


def test_every_model_refuses_integer_bool_and_complex_images_and_lists():
    for name in jaxcnn.list_models():
        model = jaxcnn.create_model(name)
        shape = (1,) + jaxcnn.models.default_input_shape(name)
        for dtype, match in ((jnp.uint8, r"dtype uint8; convert it with images\.astype\(jnp\.float32\)"),
                             (jnp.bool_, r"dtype bool"), (jnp.complex64, r"dtype complex64")):
            with pytest.raises(TypeError) as info:
                jax.eval_shape(lambda x: model.init(jax.random.key(0), x), jax.ShapeDtypeStruct(shape, dtype))
            assert re.search(match, str(info.value)) and "\n" not in str(info.value), (name, str(info.value))
    with pytest.raises(TypeError, match=r"images must be an array, got list"):
        jaxcnn.create_model("fashion_cnn_tiny").init(jax.random.key(0), [[1.0]])


@pytest.mark.parametrize("emptied,message", [
    ("test", r"split 'test' holds no examples of classes \(0, 1\); nothing could be evaluated"),
    ("train", r"split 'train' holds no examples; check config.classes, config.train_examples_per_class"),
])
def test_empty_train_or_eval_split_is_refused(monkeypatch, emptied, message):
    from jaxcnn.data import datasets
    from jaxcnn.train import setup as train_setup

    real = datasets.load

    def only_classes(keep):  # the emptied split keeps only classes 5 and 6, so none of the config's 0 and 1
        def load(name, split, **kw):
            d = real(name, split, **kw)
            idx = np.flatnonzero(np.isin(d.labels, keep)) if split == emptied else np.arange(len(d))
            return datasets.ArrayDataset(d.images[idx], d.labels[idx], d.num_classes)
        return load

    monkeypatch.setattr(datasets, "load", only_classes([5, 6]))
    with pytest.raises(ValueError, match=message):
        train_setup.load_data(tiny_config(classes=(0, 1)))


def test_workdir_lock_message_names_the_pid(tmp_path):
    with Workdir(str(tmp_path / "w"), tiny_config()):
        with pytest.raises(WorkdirError, match=rf"is in use by pid {os.getpid()}"):
            Workdir(str(tmp_path / "w"), tiny_config()).__enter__()
