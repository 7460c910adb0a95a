"""Fault injection on a tiny run: fashion_cnn_tiny on synthetic 12x12x1 images, batch 8, 16 steps, a
checkpoint every 2 steps, a log line every 3 (so checkpoints carry pending metrics), run by
scripts/train.py exactly as a user runs it. The faults:

* kill -9 at seeded points: at exact write events (tests/fault_tools.py's audit hook: before config.json's
  rename, inside a checkpoint's metadata writes, before the rename that commits it, before a metrics
  line) and at seeded moments while training (timed), each followed by the same command;
* SIGTERM and SIGINT while training;
* a full disk (a small tmpfs mounted by the test; root only) and a file-size limit (RLIMIT_FSIZE);
* a flipped bit in every file of a checkpoint step (orbax metadata, array data, the JSON record), and a
  changed digit of a pending metric in that record;
* two runs on one workdir at once;
* damaged dataset files (a truncated and a bit-flipped array_record shard, a garbage dataset_info.json, a
  cut-off source archive).

Each must end bit-identical to one uninterrupted reference run (metrics.jsonl bar timings, every array of
the last checkpoint), or be refused in one line whose fix, applied, ends bit-identical — and never lose a
finished step (a committed checkpoint, a logged record). Each test tallies its faults as survived /
refused / lost; `pytest` prints the figures at the end (tests/conftest.py), and writes them to
$JAXCNN_FAULT_SUMMARY if set:

    python -m pytest -q -n 2 tests/test_robustness_faults.py
"""

import fcntl
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import fault_tools  # noqa: E402
from test_train_loop import tiny_config_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "train.py")
TOOLS = os.path.join(ROOT, "tests", "fault_tools.py")
NUM_STEPS = 16
CONFIG = tiny_config_file(NUM_STEPS, 3, 4, 2)
TALLY: dict = {}


def _count(kind: str, outcome: str, n: int = 1) -> None:
    assert outcome in fault_tools.OUTCOMES
    c = TALLY.setdefault(kind, {"injected": 0, **{o: 0 for o in fault_tools.OUTCOMES}})
    c["injected"] += n
    c[outcome] += n


@pytest.fixture(scope="module", autouse=True)
def _tally():
    yield
    if TALLY:
        fault_tools.write_tally(TALLY, f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}")


@pytest.fixture(scope="session")
def shared():
    """The config file, a JAX compilation cache and the uninterrupted reference run, made once per session
    (xdist's workers share them through session_dir(), under a lock)."""
    d = os.path.join(fault_tools.session_dir(), "shared")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = os.path.join(d, "config.py")
        if not os.path.exists(config):
            with open(config, "w") as f:
                f.write(CONFIG)
        ref = os.path.join(d, "reference")
        if not os.path.exists(os.path.join(d, "reference.done")):
            shutil.rmtree(ref, ignore_errors=True)
            r = subprocess.run(_cmd(config, ref), env=_env(d), capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, r.stderr[-3000:]
            open(os.path.join(d, "reference.done"), "w").close()
    return {"dir": d, "config": config, "reference": ref, "env": _env(d),
            "ref_metrics": {r["step"]: r for r in fault_tools.metrics(ref)}}


def _env(shared_dir: str) -> dict:
    # The persistent compilation cache makes each of the many short processes start in seconds; a cached
    # executable is the same program, so results stay bit-identical.
    return {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu",
            "JAX_COMPILATION_CACHE_DIR": os.path.join(shared_dir, "jax_cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def _cmd(config: str, workdir: str, *extra: str) -> list:
    return [sys.executable, SCRIPT, "--config", config, "--workdir", workdir, *extra]


def _lines(text: str) -> list:
    return [line for line in text.splitlines() if line.strip()]


def _metric_lines(workdir: str) -> int:
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            return sum(1 for line in f if line.endswith("\n"))
    except OSError:
        return 0


def _nothing_lost(workdir: str, shared: dict, floor: int) -> int:
    """After a fault: the committed checkpoints reach at least `floor` (the latest before the fault), the
    latest is intact (its checksums verify) and every complete record of metrics.jsonl is the reference's.
    Returns the latest committed step."""
    steps = fault_tools.committed_steps(workdir)
    latest = steps[-1] if steps else 0
    assert latest >= floor, f"checkpoint of step {floor} lost: {steps}"
    if latest:
        fault_tools.arrays(workdir, latest)  # raises if damaged
    for rec in fault_tools.metrics(workdir):
        assert rec == shared["ref_metrics"][rec["step"]], f"record of step {rec['step']} differs"
    return latest


def _finish(workdir: str, shared: dict, *extra: str) -> None:
    """The same command again, to the end; then the run must be the reference run, bit for bit."""
    r = subprocess.run(_cmd(shared["config"], workdir, *extra), env=shared["env"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    diff = fault_tools.same_as_reference(workdir, shared["reference"], NUM_STEPS)
    assert not diff, diff


# ---------------------------------------------------------------------------------------------------------
# kill -9


@pytest.mark.parametrize("chain", [0, 1])
def test_kill_9_at_seeded_points_never_loses_a_step(tmp_path, shared, chain):
    """A chain of 11 kill -9 on one workdir, alternating an exact write event (seeded; a run makes about 10
    at its start and 20 per checkpoint) and a seeded moment while training; after each, nothing finished is
    lost; then the same command ends bit-identical to the reference."""
    rng = random.Random(20261128 + chain)
    wd = str(tmp_path / "w")
    floor, kills = 0, []
    for attempt in range(16):
        if len(kills) == 11:
            break
        if attempt % 2 == 0:
            event = rng.randint(1, 30)
            cmd = [sys.executable, TOOLS, "kill-at", str(event), wd, "--"] + _cmd(shared["config"], wd)[1:]
            proc = subprocess.run(cmd, env=shared["env"], capture_output=True, text=True, timeout=600)
            code, point = proc.returncode, f"write event {event}"
        else:
            kept = sum(1 for r in fault_tools.metrics(wd) if r["step"] <= floor)  # what a restart keeps
            target = kept + 1
            delay = rng.uniform(0.0, 0.04)
            proc = subprocess.Popen(_cmd(shared["config"], wd), env=shared["env"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            deadline = time.time() + 600
            while proc.poll() is None and _metric_lines(wd) < target and time.time() < deadline:
                time.sleep(0.002)
            time.sleep(delay)
            proc.kill()
            code, point = proc.wait(), f"{target} metric lines + {delay * 1e3:.0f} ms"
        if code == 0:  # the run ended before the kill point: nothing was injected, nothing more to kill
            break
        assert code == -signal.SIGKILL, (point, code)
        floor = _nothing_lost(wd, shared, floor)
        kills.append((point, floor))
    assert len(kills) == 11, kills
    try:
        _finish(wd, shared)
    except AssertionError:
        _count("kill -9", "lost", len(kills))
        raise
    _count("kill -9", "survived", len(kills))


# ---------------------------------------------------------------------------------------------------------
# SIGTERM and SIGINT


def _paused(shared, wd, event, tmp_path, *extra):
    """scripts/train.py paused just before write event `event` (holding its lock, mid-run)."""
    ready, release = str(tmp_path / f"ready{event}"), str(tmp_path / f"release{event}")
    cmd = [sys.executable, TOOLS, "pause-at", str(event), wd, ready, release, "--"] + \
        _cmd(shared["config"], wd, *extra)[1:]
    proc = subprocess.Popen(cmd, env=shared["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while not os.path.exists(ready) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert os.path.exists(ready), proc.communicate()[1][-3000:]
    return proc, release


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_checkpoint_the_last_finished_step(tmp_path, shared, sig):
    wd = str(tmp_path / "w")
    event = random.Random(int(sig)).randint(30, 60)  # while training, after a few checkpoints
    proc, release = _paused(shared, wd, event, tmp_path)
    proc.send_signal(sig)
    open(release, "w").close()
    _, err = proc.communicate(timeout=600)
    lines = _lines(err)
    ok = (proc.returncode == 128 + sig and len(lines) == 1 and "saved a checkpoint" in lines[0]
          and "run the same command again to resume" in lines[0])
    assert ok, (proc.returncode, err[-3000:])
    step = int(re.search(r"stopped after step (\d+) of", lines[0]).group(1))
    assert _nothing_lost(wd, shared, 0) == step  # the step it names is the one it saved
    _finish(wd, shared)
    _count("SIGTERM / SIGINT", "survived")


# ---------------------------------------------------------------------------------------------------------
# A full disk, a file-size limit


def _mount_tmpfs(path, size: str) -> None:
    os.makedirs(path, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a tmpfs here ({e}); the RLIMIT_FSIZE case still runs")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root: {r.stderr.strip()[:100]}); the RLIMIT_FSIZE case "
                    "still runs")


def test_full_disk_is_one_line_and_the_same_command_resumes_once_space_is_freed(tmp_path, shared):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "200k")  # room for config.json, the logs and one or two checkpoints, not eight
    try:
        wd = str(disk / "w")
        r = subprocess.run(_cmd(shared["config"], wd), env=shared["env"], capture_output=True, text=True,
                           timeout=600)
        lines = _lines(r.stderr)
        assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr[-3000:])
        m = re.match(r"error: no space left on the device of (\S+): the checkpoint of step (\d+) needs about "
                     r"[\d.]+ (bytes|KiB|MiB)\. Free some space and rerun the same command: it resumes from "
                     r"(step (\d+)|the start)\.$", lines[0])
        assert m and m.group(1).startswith(str(disk)), lines[0]
        latest = _nothing_lost(wd, shared, 0)
        assert latest == int(m.group(5) or 0) and int(m.group(2)) > latest
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True, timeout=30)  # space freed
        _finish(wd, shared)
    except AssertionError:
        _count("full disk (tmpfs)", "lost")
        raise
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)
    _count("full disk (tmpfs)", "refused")


def test_file_size_limit_is_one_line_and_resumes_once_raised(tmp_path, shared):
    """The portable simulation of a disk that refuses writes: RLIMIT_FSIZE below a checkpoint's data file."""
    wd = str(tmp_path / "w")
    # ulimit -f counts 1024-byte blocks; with SIGXFSZ ignored, a write past the limit fails with EFBIG
    limited = ["bash", "-c", 'trap "" XFSZ; ulimit -f 12; exec "$@"', "bash"] + _cmd(shared["config"], wd)
    r = subprocess.run(limited, env=shared["env"], capture_output=True, text=True, timeout=600)
    lines = _lines(r.stderr)
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr[-3000:])
    assert re.match(r"error: cannot write the checkpoint of step 2 in \S+: a file would exceed the file size "
                    r"limit \(ulimit -f.*Raise the limit and rerun the same command: it resumes from the start\.$",
                    lines[0]), lines[0]
    _nothing_lost(wd, shared, 0)
    try:
        _finish(wd, shared)
    except AssertionError:
        _count("file size limit (RLIMIT_FSIZE)", "lost")
        raise
    _count("file size limit (RLIMIT_FSIZE)", "refused")


# ---------------------------------------------------------------------------------------------------------
# A flipped byte in every file of a checkpoint step


def test_flipped_bit_in_every_checkpoint_file(tmp_path, shared):
    """Checkpoints 6, 8, 10 and metrics up to step 11 (a run stopped there); one fault per file under
    checkpoints/10/ (whose record carries step 10's metrics, logged at 12) plus a changed digit of those
    pending metrics in the JSON record; run in one helper process
    (tests/fault_tools.py flip-runner: scripts/train.py's main, called again for each fault)."""
    out = str(tmp_path / "flips.json")
    r = subprocess.run([sys.executable, TOOLS, "flip-runner", shared["config"], shared["reference"],
                        str(tmp_path), out, str(NUM_STEPS), "11", "17"], env=shared["env"], capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out) as f:
        results = json.load(f)
    files = {x["file"] for x in results}
    # orbax's metadata, the arrays' data and the JSON record, all there
    assert {"_CHECKPOINT_METADATA", "extra/metadata", "state/_METADATA", "state/manifest.ocdbt"} <= files, files
    assert any(f.startswith("state/") and "/d/" in f for f in files), files
    for x in results:
        _count("flipped byte in a checkpoint file", x["outcome"])
    lost = [x for x in results if x["outcome"] == "lost"]
    assert not lost, lost
    digit = [x for x in results if "pending step's loss" in x["where"]][0]
    assert digit["outcome"] == "refused" and "record" in digit["stderr"][0], digit  # the record's own checksum


# ---------------------------------------------------------------------------------------------------------
# Two runs on one workdir


def test_second_run_on_a_busy_workdir_is_refused_and_the_first_is_untouched(tmp_path, shared):
    wd = str(tmp_path / "w")
    first, release = _paused(shared, wd, 40, tmp_path)  # mid-run, holding the lock
    second = subprocess.run(_cmd(shared["config"], wd), env=shared["env"], capture_output=True, text=True,
                            timeout=600)
    open(release, "w").close()
    _, err = first.communicate(timeout=600)
    lines = _lines(second.stderr)
    try:
        assert second.returncode == 2 and len(lines) == 1, second.stderr[-3000:]
        assert re.match(rf"error: workdir {re.escape(wd)} is in use by pid {first.pid}; wait for that run to end",
                        lines[0]), lines[0]
        assert first.returncode == 0, err[-3000:]
        diff = fault_tools.same_as_reference(wd, shared["reference"], NUM_STEPS)
        assert not diff, diff
    except AssertionError:
        _count("two runs on one workdir", "lost")
        raise
    _count("two runs on one workdir", "refused")


def test_two_runs_started_together_one_trains(tmp_path, shared):
    wd = str(tmp_path / "w")
    procs = [subprocess.Popen(_cmd(shared["config"], wd), env=shared["env"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    # one trains; the other is refused while it does, or (started after it ended) finds the run finished
    assert codes in ([0, 0], [0, 2]), [(p.returncode, o[1][-2000:]) for p, o in zip(procs, outs)]
    for p, (_, err) in zip(procs, outs):
        if p.returncode == 2:
            assert len(_lines(err)) == 1 and "is in use by pid" in err, err
    diff = fault_tools.same_as_reference(wd, shared["reference"], NUM_STEPS)
    assert not diff, diff
    _count("two runs on one workdir", "refused" if codes == [0, 2] else "survived")


# ---------------------------------------------------------------------------------------------------------
# Damaged dataset files


def _idx_files(directory, n_train=64, n_test=32, seed=0):
    """Small Fashion-MNIST-format IDX files (what Debian's package holds, smaller)."""
    import gzip

    import numpy as np

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        with gzip.open(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), "wb") as f:
            f.write(b"".join(v.to_bytes(4, "big") for v in (2051, n, 28, 28)) + images.tobytes())
        with gzip.open(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as f:
            f.write(b"".join(v.to_bytes(4, "big") for v in (2049, n)) + labels.tobytes())


def _truncate_half(path):
    os.truncate(path, os.path.getsize(path) // 2)


def _flip(path):
    with open(path, "r+b") as f:
        f.seek(1000)  # inside the first chunk of records (the file is padded to 64 KiB past them)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x10]))


def _garbage(path):
    with open(path, "w") as f:
        f.write('{"name": "fashion_mnist_offline", "splits": [')


DATASET_FAULTS = [
    ("array_record truncated", "fashion_mnist_offline-train.array_record-00000-of-00001", _truncate_half),
    ("array_record bit flip", "fashion_mnist_offline-test.array_record-00000-of-00001", _flip),
    ("dataset_info.json garbage", "dataset_info.json", _garbage),
]


def test_damaged_dataset_files_are_one_line_and_the_fix_works(tmp_path, shared):
    src, tfds_dir = str(tmp_path / "idx"), str(tmp_path / "tfds")
    _idx_files(src)
    os.makedirs(tfds_dir)
    env = {**shared["env"], "JAXCNN_FASHION_MNIST_DIR": src}
    flags = ["--config.dataset=fashion_mnist_offline", f"--config.data_dir={tfds_dir}", "--config.num_steps=4",
             "--config.eval_every=0", "--config.checkpoint_every=0"]

    def train(name):
        wd = str(tmp_path / name)
        r = subprocess.run(_cmd(shared["config"], wd, *flags), env=env, capture_output=True, text=True,
                           timeout=600)
        return r, wd

    good, good_wd = train("good")  # prepares the dataset from the IDX files, then trains
    assert good.returncode == 0, good.stderr[-3000:]
    version = os.path.join(tfds_dir, "fashion_mnist_offline", "1.0.0")
    folder = os.path.join(tfds_dir, "fashion_mnist_offline")
    for i, (what, name, damage) in enumerate(DATASET_FAULTS):
        damage(os.path.join(version, name))
        r, wd = train(f"bad{i}")
        lines = _lines(r.stderr)
        if r.returncode == 0:  # the damage missed everything read: then the run must be the good one
            assert fault_tools.metrics(wd) == fault_tools.metrics(good_wd), what
            _count("damaged dataset file", "survived")
            continue
        assert r.returncode == 2 and len(lines) == 1, (what, r.stderr[-3000:])
        assert lines[0].startswith(f"error: dataset 'fashion_mnist_offline' in {folder} is damaged"), lines[0]
        assert f"delete it (rm -r {folder}) and run again: it is rebuilt from Debian's files" in lines[0]
        shutil.rmtree(folder)  # the fix the line names
        again, wd = train(f"fixed{i}")
        if again.returncode != 0 or fault_tools.metrics(wd) != fault_tools.metrics(good_wd):
            _count("damaged dataset file", "lost")
            pytest.fail(f"{what}: after the fix: {again.stderr[-2000:]}")
        _count("damaged dataset file", "refused")
    # the source archive itself cut short, with nothing prepared yet
    shutil.rmtree(folder)
    archive = os.path.join(src, "train-images-idx3-ubyte.gz")
    shutil.copy(archive, archive + ".orig")
    _truncate_half(archive)
    r, _ = train("bad_source")
    lines = _lines(r.stderr)
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
    assert f"Fashion-MNIST source files in {src} are damaged" in lines[0] and "--reinstall dataset-fashion-mnist" \
        in lines[0], lines[0]
    shutil.move(archive + ".orig", archive)  # reinstalled
    shutil.rmtree(folder, ignore_errors=True)
    again, wd = train("fixed_source")
    assert again.returncode == 0 and fault_tools.metrics(wd) == fault_tools.metrics(good_wd), again.stderr[-2000:]
    _count("damaged dataset file", "refused")


# ---------------------------------------------------------------------------------------------------------
# The data changed under a workdir (issue 35): the dataset prepared again from other files under its name


def _script_cmd(name: str, *args: str) -> list:
    return [sys.executable, os.path.join(ROOT, "scripts", name), *args]


def _workdir_files(wd: str) -> dict:
    out = {}
    for d, _, fs in os.walk(wd):
        for f in fs:
            if f != ".lock":
                with open(os.path.join(d, f), "rb") as fh:
                    out[os.path.relpath(os.path.join(d, f), wd)] = fh.read()
    return out


DATA_CHANGES = [
    ("other images, the same classes and sizes", lambda src: _idx_files(src, seed=1)),
    ("fewer training examples", lambda src: _idx_files(src, n_train=48)),
]


def test_data_changed_under_a_workdir_is_refused_where_it_is_resumed_evaluated_or_predicted(tmp_path, shared):
    from PIL import Image

    src, tfds_dir = str(tmp_path / "idx"), str(tmp_path / "tfds")
    _idx_files(src)
    os.makedirs(tfds_dir)
    env = {**shared["env"], "JAXCNN_FASHION_MNIST_DIR": src}
    flags = ["--config.dataset=fashion_mnist_offline", f"--config.data_dir={tfds_dir}", "--config.eval_every=0",
             "--config.checkpoint_every=2"]
    wd = str(tmp_path / "w")
    picture = str(tmp_path / "garment.png")
    Image.new("L", (28, 28), 128).save(picture)

    def run(cmd):
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    first = run(_cmd(shared["config"], wd, *flags, "--config.num_steps=4"))
    assert first.returncode == 0, first.stderr[-3000:]
    kept = fault_tools.metrics(wd)
    folder = os.path.join(tfds_dir, "fashion_mnist_offline")
    actions = [("resume", _cmd(shared["config"], wd, *flags, "--config.num_steps=6")),
               ("evaluate", _script_cmd("evaluate.py", "--workdir", wd)),
               ("predict with", _script_cmd("predict.py", "--workdir", wd, picture))]
    for what, change in DATA_CHANGES:
        shutil.rmtree(folder)  # prepared again, on first use, from the changed files
        change(src)
        for action, cmd in actions:
            before = _workdir_files(wd)
            r = run(cmd)
            lines = _lines(r.stderr)
            ok = (r.returncode == 2 and len(lines) == 1 and lines[0].startswith(
                f"error: cannot {action} {wd}: dataset 'fashion_mnist_offline' is not the data this run was trained on")
                and _workdir_files(wd) == before)
            _count("data changed under a workdir", "refused" if ok else "lost")
            assert ok, (what, action, r.returncode, r.stderr[-2000:])
    shutil.rmtree(folder)  # the fix the line names: the original data back, prepared again
    _idx_files(src)
    again = run(actions[0][1])
    assert again.returncode == 0, again.stderr[-3000:]
    records = fault_tools.metrics(wd)
    assert records[:len(kept)] == kept and records[-1]["step"] == 6  # the run resumed where it stopped


# ---------------------------------------------------------------------------------------------------------
# Concurrent writers (issue 35): two processes writing one target at once


def test_concurrent_writers_take_turns_or_are_refused_naming_the_holder(tmp_path, shared):
    import _data_fakes

    env = shared["env"]
    # 1. two preparations of one dataset name, from different folders, at once
    data_dir = str(tmp_path / "tfds_prep")
    folders = {("cat", "dog"): str(tmp_path / "a"), ("apple", "banana", "cherry"): str(tmp_path / "b")}
    for classes, folder in folders.items():
        _data_fakes.image_folder(folder, classes=classes, per_class=40, test_per_class=2, sizes=((12, 13), (12, 13)))
    procs = {classes: subprocess.Popen(_script_cmd("prepare_data.py", "image_folder", folder, "--name", "x",
                                                   "--data_dir", data_dir), env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True) for classes, folder in folders.items()}
    outs = {c: p.communicate(timeout=600) for c, p in procs.items()}
    won = [c for c, p in procs.items() if p.returncode == 0]
    lost = [outs[c][1] for c, p in procs.items() if p.returncode != 0]
    ok = len(won) == 1 and all(p.returncode in (0, 2) for p in procs.values()) and all(
        len(_lines(e)) == 1 and ("is being written by pid" in e or "already exists" in e) for e in lost)
    if ok:
        check = subprocess.run([sys.executable, "-c", "import sys; from jaxcnn.data import open_split; "
                                f"s = open_split('x', 'train', data_dir={data_dir!r}); "
                                "print(','.join(s.class_names), len(s))"], env=env, capture_output=True, text=True,
                               timeout=300)
        ok = check.stdout.split() == [f"{','.join(won[0])}", str(40 * len(won[0]))]
    _count("concurrent writers", "refused" if ok else "lost")
    assert ok, (outs, won)

    # 2. two first uses of an unprepared dataset at once (the TFDS cache): one prepares, the other waits
    src, tfds_dir = str(tmp_path / "idx"), str(tmp_path / "tfds")
    _idx_files(src)
    os.makedirs(tfds_dir)
    fenv = {**env, "JAXCNN_FASHION_MNIST_DIR": src}
    flags = ["--config.dataset=fashion_mnist_offline", f"--config.data_dir={tfds_dir}", "--config.num_steps=2",
             "--config.eval_every=0", "--config.checkpoint_every=0"]
    wds = [str(tmp_path / f"first_use{i}") for i in range(2)]
    procs = [subprocess.Popen(_cmd(shared["config"], w, *flags), env=fenv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for w in wds]
    outs = [p.communicate(timeout=600) for p in procs]
    ok = all(p.returncode == 0 for p in procs) and fault_tools.metrics(wds[0]) == fault_tools.metrics(wds[1])
    _count("concurrent writers", "survived" if ok else "lost")
    assert ok, ([p.returncode for p in procs], [o[1][-2000:] for o in outs], fault_tools.metrics(wds[0]),
                fault_tools.metrics(wds[1]))

    # 3. two evaluations of one workdir at once: each writes through its own temporary file
    procs = [subprocess.Popen(_script_cmd("evaluate.py", "--workdir", wds[0]), env=fenv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    ok = all(p.returncode == 0 for p in procs)
    if ok:
        with open(os.path.join(wds[0], "eval.json")) as f:
            ok = json.load(f)["step"] == 2 and not [n for n in os.listdir(wds[0]) if ".tmp" in n]
    _count("concurrent writers", "survived" if ok else "lost")
    assert ok, [o[1][-2000:] for o in outs]

    # 4. two writers of different blocks of one README, 20 times each at once: neither block is lost
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- a:start -->\n<!-- a:end -->\n<!-- b:start -->\n<!-- b:end -->\n")
    code = ("import sys; from jaxcnn.train.records import replace_block as r; k = sys.argv[1]\n"
            "for i in range(20): r(sys.argv[2], (f'<!-- {k}:start -->', f'<!-- {k}:end -->'), f'{k} {i}')")
    procs = [subprocess.Popen([sys.executable, "-c", code, k, str(readme)], env=env, stderr=subprocess.PIPE,
                              text=True) for k in "ab"]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    text = readme.read_text()
    ok = all(p.returncode == 0 for p in procs) and "\na 19\n" in text and "\nb 19\n" in text
    _count("concurrent writers", "survived" if ok else "lost")
    assert ok, (errs, text)
