"""Reliability III (issue 35): a run knows its data, committed results are not overwritten by accident,
every shared write is safe, and the newer surfaces refuse bad input in one line.

The cases of the issue, reproduced on tiny fakes (tests/_data_fakes.py: image folders of 12x12 pictures,
prepared into a temporary TFDS data dir), then the principle behind each. The tally of the faults tried
is in docs/robustness.md.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import _data_fakes  # noqa: E402
from test_train_loop import tiny_config  # noqa: E402

from jaxcnn.data.identity import DataChanged, identity, mismatch  # noqa: E402
from jaxcnn.data.prepare_data import prepare  # noqa: E402
from jaxcnn.train import train_and_evaluate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _folder(root, classes, seed=0, per_class=6):
    _data_fakes.image_folder(str(root), classes=classes, per_class=per_class, test_per_class=2, seed=seed,
                             sizes=((12, 13), (12, 13)))
    return str(root)


def _image_config(data_dir, **kw):
    c = tiny_config(dataset="good", data_dir=str(data_dir), batch_size=4, eval_batch_size=4, num_steps=4,
                    eval_every=0, **kw)
    c.model.in_channels = 3  # the folders hold RGB pictures
    return c


@pytest.fixture
def good(tmp_path):
    """Dataset `good` (cat/dog) prepared under tmp_path/tfds; returns the data dir."""
    data_dir = tmp_path / "tfds"
    prepare("image_folder", _folder(tmp_path / "catdog", ("cat", "dog")), name="good", data_dir=str(data_dir),
            quiet=True)
    return data_dir


def _prepare_again(tmp_path, data_dir, classes, seed=1):
    shutil.rmtree(data_dir / "good")
    prepare("image_folder", _folder(tmp_path / f"again_{seed}", classes, seed=seed), name="good",
            data_dir=str(data_dir), quiet=True)


# ---------------------------------------------------------------------------------------------------------
# 1. A workdir knows its data.


def test_identity_is_the_same_for_the_same_source_and_differs_for_another(tmp_path, good):
    first = identity("good", data_dir=str(good))
    assert first["class_names"] == ["cat", "dog"]
    assert first["splits"] == {"test": 4, "train": 12}  # 2 classes x 6 train, 2 x 2 test
    shutil.rmtree(good / "good")
    prepare("image_folder", str(tmp_path / "catdog"), name="good", data_dir=str(good), quiet=True)
    assert identity("good", data_dir=str(good)) == first  # the same folder again: the same data
    _prepare_again(tmp_path, good, ("cat", "dog"), seed=5)  # same names and sizes, other pictures
    other = identity("good", data_dir=str(good))
    assert other["fingerprint"] != first["fingerprint"]
    assert "other files" in mismatch(first, other)


def test_workdir_records_the_data_and_refuses_to_resume_evaluate_or_predict_on_other_data(tmp_path, good):
    from jaxcnn.train.inference import evaluate_workdir
    from jaxcnn.train.inference import predict_files

    wd = str(tmp_path / "w")
    c = _image_config(good)
    train_and_evaluate(c, wd, stop_after_steps=2)  # interrupted at step 2 of 4 (checkpoint every 2)
    with open(os.path.join(wd, "config.json")) as f:
        recorded = json.load(f)["data"]
    assert recorded["dataset"] == "good" and recorded["class_names"] == ["cat", "dog"]
    assert recorded["splits"] == {"test": 4, "train": 12} and recorded["fingerprint"].startswith("sha256:")

    # 6. the unfinished run says so where it is evaluated and predicted
    result = evaluate_workdir(wd, write=False)
    assert result["step"] == 2 and result["num_steps"] == 4
    assert "unfinished run: its latest checkpoint is step 2 of 4" in result["note"]
    picture = str(tmp_path / "catdog" / "train" / "cat" / "1.png")
    predicted = predict_files(wd, [picture], top=2)
    assert "step 2 of 4" in predicted[0]["note"]
    assert {t["name"] for t in predicted[0]["top"]} == {"cat", "dog"}  # names from the workdir

    before = {f: os.path.getmtime(os.path.join(wd, f)) for f in os.listdir(wd)}
    _prepare_again(tmp_path, good, ("apple", "banana"))
    for action, call in (("resume", lambda: train_and_evaluate(_image_config(good), wd)),
                         ("evaluate", lambda: evaluate_workdir(wd)),
                         ("predict with", lambda: predict_files(wd, [picture]))):
        with pytest.raises(DataChanged) as info:
            call()
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith(f"cannot {action} {wd}: dataset 'good' is not the data")
        assert "classes were cat, dog, now they are apple, banana" in msg and "new --workdir" in msg
    assert not os.path.exists(os.path.join(wd, "eval.json"))  # nothing was scored nor overwritten
    assert {f: os.path.getmtime(os.path.join(wd, f)) for f in os.listdir(wd) if f != ".lock"} == {
        f: t for f, t in before.items() if f != ".lock"}

    # the original folder prepared again is the same data: the run resumes, finishes, and has no note
    shutil.rmtree(good / "good")
    prepare("image_folder", str(tmp_path / "catdog"), name="good", data_dir=str(good), quiet=True)
    assert train_and_evaluate(_image_config(good), wd)["step"] == 4
    result = evaluate_workdir(wd, write=False)
    assert result["step"] == 4 and "note" not in result


# ---------------------------------------------------------------------------------------------------------
# 2. Committed results are protected; an ablation name is an identifier, never a path.


def _script_main(name):
    import importlib

    return importlib.import_module(f"jaxcnn.commands.{name}")  # what scripts/NAME.py runs


def _refused(capsys, call) -> str:
    """The one line a script's main prints on stderr when it refuses (exit status 2)."""
    try:
        code = call()
    except SystemExit as e:
        code = e.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], (code, err)
    return err[0]


def test_an_ablation_name_that_is_a_path_is_refused_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "ran"
    (tmp_path / "x.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef get_config():\n    pass\n")
    ablate = _script_main("ablate")
    rel = os.path.relpath(tmp_path / "x", os.path.join(ROOT, "experiments", "ablations"))
    for name in (rel, "../x", "Conv_Mode", "conv-mode", "x\ny"):
        line = _refused(capsys, lambda: ablate.main([name]))
        assert "must be an identifier (a-z, 0-9 and _" in line and "not a path" in line
    assert not marker.exists()


def _committed_copy(tmp_path, name="conv_mode"):
    out = tmp_path / "results" / name
    shutil.copytree(os.path.join(ROOT, "experiments", "results", name), out)
    return out


def test_a_smaller_design_never_writes_over_a_committed_result(tmp_path, capsys):
    from jaxcnn import ablation

    ablate = _script_main("ablate")
    out = _committed_copy(tmp_path)
    before = {p: (out / p).read_bytes() for p in os.listdir(out) if (out / p).is_file()}
    # the case: three seeds, three steps, not --quick, aimed at the committed 20-seed result
    line = _refused(capsys, lambda: ablate.main(["conv_mode", "--out", str(out), "--workdirs", str(tmp_path / "w"),
                                                 "--config.ablation.seeds=(0,1,2)", "--config.num_steps=3"]))
    assert line.startswith(f"error: {out} holds the committed result of another design: this run differs in "
                           "seeds (0-2 vs the committed 0-19); num_steps (3 vs the committed 4700)")
    assert "--force" in line
    assert {p: (out / p).read_bytes() for p in before} == before and not (tmp_path / "w").exists()
    # without --out it goes under runs/, never to experiments/results
    small = ablation.load_ablation("conv_mode", os.path.join(ROOT, "experiments", "ablations"))
    from jaxcnn.train import cli

    cli.apply_overrides(small, ["ablation.seeds=(0,1,2)", "num_steps=3"])
    file_config = ablation.load_ablation("conv_mode", os.path.join(ROOT, "experiments", "ablations"))
    where, note = ablate._default_out("conv_mode", False, small, file_config)
    assert where == os.path.join(ROOT, "runs", "ablations_custom", "conv_mode") and "not the committed design" in note
    # the committed design itself, and the design its file commits, still write there
    assert ablate._default_out("conv_mode", False, file_config, file_config)[0] == os.path.join(
        ROOT, "experiments", "results", "conv_mode")
    assert ablate._check_out(str(out), False, file_config, False, file_config) == str(out)
    assert ablate._check_out(str(out), False, small, True, file_config) == str(out)  # --force


def test_a_second_ablation_on_one_output_folder_is_refused_naming_the_first(tmp_path, capsys):
    from jaxcnn._locks import target_lock

    ablate = _script_main("ablate")
    out = _committed_copy(tmp_path)
    with target_lock(str(out / ".ablate"), "ablation results"):
        line = _refused(capsys, lambda: ablate.main(["conv_mode", "--out", str(out), "--workdirs",
                                                     str(tmp_path / "w")]))
    assert f"ablation results {out} is being written by pid {os.getpid()}" in line and "wait for it" in line
    assert not (tmp_path / "w").exists()


# ---------------------------------------------------------------------------------------------------------
# 3. Every write two processes could share: a per-target lock, a private temporary directory, a rename.


def test_two_preparations_of_one_name_at_once_never_mix_their_data(tmp_path):
    import threading

    from jaxcnn._locks import Busy
    from jaxcnn.data.formats import SourceError
    from jaxcnn.data.sources import open_split

    data_dir = str(tmp_path / "tfds")
    folders = {("cat", "dog"): _folder(tmp_path / "a", ("cat", "dog"), per_class=4),
               ("apple", "banana", "cherry"): _folder(tmp_path / "b", ("apple", "banana", "cherry"), per_class=3)}
    outcomes = {}

    def one(classes, folder):
        try:
            outcomes[classes] = prepare("image_folder", folder, name="x", data_dir=data_dir, quiet=True)
        except (Busy, SourceError) as e:
            outcomes[classes] = e

    threads = [threading.Thread(target=one, args=item) for item in folders.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [c for c, o in outcomes.items() if isinstance(o, str)]
    assert len(won) == 1, outcomes  # exactly one writer; the other is refused in one line
    lost = next(o for o in outcomes.values() if not isinstance(o, str))
    assert "\n" not in str(lost) and ("is being written by pid" in str(lost) or "already exists" in str(lost))
    split = open_split("x", "train", data_dir=data_dir)
    per_class = {2: 4, 3: 3}[len(won[0])]  # the winner's folder: its classes with its count of train images
    assert split.class_names == won[0] and len(split) == per_class * len(won[0])
    assert sorted(os.listdir(os.path.join(data_dir, "x"))) == ["1.0.0"]  # no private directory left behind


def test_a_second_writer_of_a_dataset_is_refused_naming_the_holder(tmp_path):
    from jaxcnn._locks import Busy, target_lock

    data_dir = tmp_path / "tfds"
    with target_lock(str(data_dir / "x"), "dataset 'x'"):
        with pytest.raises(Busy, match=rf"dataset 'x' in {data_dir} is being written by pid {os.getpid()} on "):
            prepare("image_folder", _folder(tmp_path / "a", ("cat", "dog")), name="x", data_dir=str(data_dir))
    assert not (data_dir / "x").exists()


def test_a_refused_writer_names_a_holder_caught_between_locking_and_writing_its_line(tmp_path):
    # The holder flocks first and writes "pid N ..." just after; one that looks in between must not say
    # "another process" (a CI run once caught that moment), and one that finds the lock freed takes it.
    import fcntl
    import threading
    import time

    from jaxcnn._locks import Busy, target_lock

    target = str(tmp_path / "x")
    held = open(target + ".lock", "a+")
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, nothing written yet

    def write_line():
        time.sleep(0.1)
        held.write("pid 4242 on elsewhere since now: prepare\n")
        held.flush()

    threading.Thread(target=write_line).start()
    with pytest.raises(Busy, match="is being written by pid 4242 on elsewhere"):
        with target_lock(target, "dataset 'x'"):
            pass
    held.seek(0)
    held.truncate()  # the holder empties its line, then unlocks a moment later

    def unlock():
        time.sleep(0.1)
        fcntl.flock(held, fcntl.LOCK_UN)

    threading.Thread(target=unlock).start()
    with target_lock(target, "dataset 'x'") as lock_path:  # taken once free, not refused
        with open(lock_path) as f:
            assert f.read().startswith(f"pid {os.getpid()} on ")
    held.close()


def test_the_tfds_cache_is_prepared_by_one_process_while_the_other_waits(tmp_path):
    import threading
    import time

    from jaxcnn._locks import target_lock
    from jaxcnn.data.sources import prepare_once

    class Builder:
        prepared, calls = False, 0

        def is_prepared(self):
            return self.prepared

        def download_and_prepare(self):
            self.calls += 1

    b = Builder()
    held = threading.Event()

    def first():
        with target_lock(str(tmp_path / "fashion_mnist_offline"), "x"):
            held.set()
            time.sleep(0.5)
            b.prepared = True  # the first writer prepared it

    t = threading.Thread(target=first)
    t.start()
    held.wait()
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        prepare_once(b, "fashion_mnist_offline", str(tmp_path))
    t.join()
    assert b.calls == 0 and "waiting for pid" in err.getvalue()  # it waited, then found it prepared


def test_a_read_only_data_dir_is_named_as_such_not_as_damage(tmp_path, monkeypatch):
    from jaxcnn.data.sources import open_split

    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    real = os.access  # root may write a mode-555 folder: make this one read-only to the check as well
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) and mode & os.W_OK else real(p, mode))
    try:
        with pytest.raises(ValueError) as info:
            open_split("fashion_mnist_offline", "train", data_dir=str(ro))
        msg = str(info.value)
        assert f"the TFDS data dir {ro} is read-only to this user" in msg and "--config.data_dir" in msg
        assert "damaged" not in msg and "\n" not in msg
    finally:
        os.chmod(ro, 0o755)


# ---------------------------------------------------------------------------------------------------------
# 4. Names, numbers and switches are bounded and checked.


def test_a_class_name_with_a_control_character_is_refused(tmp_path):
    from jaxcnn.data.formats import SourceError

    root = tmp_path / "photos"
    _folder(root, ("x\ny", "z"))
    with pytest.raises(SourceError, match=r"class name 'x\\ny' holds the control character '\\n'; rename it"):
        prepare("image_folder", str(root), name="photos", data_dir=str(tmp_path / "tfds"))
    assert not (tmp_path / "tfds" / "photos").exists()


def test_duplicate_cifar_label_names_are_one_line(tmp_path):
    from jaxcnn.data.formats import SourceError

    archive = tmp_path / "c.tar.gz"
    _data_fakes.cifar_archive(str(archive), "cifar10")
    import tarfile

    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    members["cifar-10-batches-bin/batches.meta.txt"] = ("\n".join(["cat"] * 2 + [f"c{i}" for i in range(8)])
                                                        + "\n").encode()
    _data_fakes.write_tar(str(archive), members)
    with pytest.raises(SourceError, match=r"batches.meta.txt: class name 'cat' appears twice; class names must be"):
        prepare("cifar10", str(archive), data_dir=str(tmp_path / "tfds"))


def test_a_folder_given_for_the_cifar_archive_and_a_looping_class_folder_are_named_as_such(tmp_path):
    from jaxcnn.data.formats import SourceError

    with pytest.raises(SourceError, match=rf"{tmp_path} is a folder; give the downloaded binary archive file"):
        prepare("cifar10", str(tmp_path), data_dir=str(tmp_path / "tfds"))
    root = tmp_path / "photos"
    _folder(root, ("cat", "dog"))
    os.symlink(str(root / "train" / "loop"), str(root / "train" / "loop"))  # a symlink to itself
    with pytest.raises(SourceError, match=r"train/loop is a symbolic link to nothing \(broken, or a loop\)"):
        prepare("image_folder", str(root), name="photos", data_dir=str(tmp_path / "tfds"))


def test_worker_and_thread_counts_are_capped_near_the_core_count():
    from jaxcnn._validation import max_workers
    from jaxcnn.data.sources import open_split
    from jaxcnn.data.pipeline import eval_batches, train_batches
    from jaxcnn.train import validate_config

    top = max_workers()
    assert top == max(4, 2 * os.cpu_count())
    with pytest.raises(ValueError, match=rf"config.data_workers \(0 = threads\) must be an int in 0..{top}"):
        validate_config(tiny_config(data_workers=1000))
    validate_config(tiny_config(data_workers=top))
    split = open_split("synthetic", "train", synthetic_shape=(4, 4, 1), synthetic_size=8)
    for kw in (dict(workers=1000), dict(threads=1000), dict(workers=top + 1)):
        with pytest.raises(ValueError, match=rf"must be an int in 0..{top}"):
            train_batches(split, seed=0, batch_size=4, **kw)
        with pytest.raises(ValueError, match=rf"must be an int in 0..{top}"):
            eval_batches(split, batch_size=4, **kw)


@pytest.mark.parametrize("name,value,accepts", [
    ("JAXCNN_XLA_CPU_FLAGS", "yes", "0 or 1"), ("JAXCNN_NATIVE_CONV", " 0", "0 or 1"),
    ("JAXCNN_TRACEBACKS", "2", "0 or 1"), ("JAXCNN_NUM_PROCESSES", "0", "an integer >= 1"),
    ("JAXCNN_PROCESS_ID", "-1", "an integer >= 0"), ("JAXCNN_COORDINATOR", "localhost", "HOST:PORT"),
    # a path under a regular file can never be a folder, whoever runs the test (root can create /nonexistent)
    ("JAXCNN_DNNL_ROOT", os.path.join(os.path.abspath(__file__), "missing"), "an existing folder"),
    ("TFDS_DATA_DIR", os.path.abspath(__file__), "a folder (or a path where one can be made)"),
    ("JAXCNN_HOME", os.path.abspath(__file__), "a folder (or a path where one can be made)"),
])
def test_every_environment_variable_accepts_only_its_documented_values(monkeypatch, name, value, accepts):
    from jaxcnn import _env

    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as info:
        _env.check_environment()
    msg = str(info.value)
    assert msg.startswith(f"environment variable {name}={value!r} is not valid: it takes {accepts}") and "\n" not in msg


def test_every_environment_variable_the_code_names_is_checked():
    """A JAXCNN_* (or TFDS_DATA_DIR) name written as a string anywhere in the package or the scripts is one that
    check_environment() validates: a variable read without being listed would take any value silently."""
    import re

    from jaxcnn import _env

    named = set()
    for folder in ("jaxcnn", "scripts"):
        for base, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in files:
                if f.endswith(".py"):
                    with open(os.path.join(base, f)) as fh:
                        named |= set(re.findall(r"[\"'](JAXCNN_[A-Z_]+|TFDS_DATA_DIR)[\"']", fh.read()))
    assert {"JAXCNN_HOME", "JAXCNN_NATIVE_CONV", "TFDS_DATA_DIR"} <= named  # the scan sees what it should
    assert named <= set(_env.VARIABLES), sorted(named - set(_env.VARIABLES))


def test_weights_cache_follows_jaxcnn_home_and_refuses_a_file(monkeypatch, tmp_path):
    from jaxcnn.pretrained import cache_dir

    monkeypatch.setenv("JAXCNN_HOME", str(tmp_path / "weights"))
    assert cache_dir() == str(tmp_path / "weights")
    monkeypatch.setenv("JAXCNN_HOME", os.path.abspath(__file__))
    with pytest.raises(ValueError, match="JAXCNN_HOME=.*a folder .*unset JAXCNN_HOME"):
        cache_dir()


def test_a_bad_environment_variable_stops_a_script_in_one_line_before_work(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu", "JAXCNN_XLA_CPU_FLAGS": "off"}
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "prepare_data.py"), "mnist", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, env=env)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0] == ("error: environment variable JAXCNN_XLA_CPU_FLAGS='off' is not valid: it takes 0 or 1 "
                        "(0 leaves XLA_FLAGS as it is (jaxcnn.runtime)); fix or unset it (unset JAXCNN_XLA_CPU_FLAGS).")


@pytest.mark.parametrize("spec", ["train]", "train[:90%]x", "train[:50%];rm -rf", "train[", "train[a:b]",
                                  "train\n", "train[:10%]++test"])
def test_a_split_expression_is_validated_whole(spec):
    from jaxcnn.data.sources import open_split
    from jaxcnn.train import validate_config

    with pytest.raises(ValueError, match="cannot read split .*: it is not a split expression; write e.g. 'train'"):
        open_split("synthetic", spec, synthetic_shape=(4, 4, 1), synthetic_size=8)
    with pytest.raises(ValueError, match=r"cannot read config.eval_split .*: it is not a split expression"):
        validate_config(tiny_config(eval_split=spec))


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path):
    import struct
    import warnings
    import zlib

    from jaxcnn.data import images
    from jaxcnn.train.inference import read_image

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # PNG headers of 10,000 x 10,000 pixels (100 M > the 89.5 M limit) and 20,000 x 20,000 (400 M, which Pillow
    # itself refuses to open) with almost no data: a few hundred bytes each
    for side, said in ((10000, "declares 10,000 x 10,000 = 100,000,000 pixels, above the limit of 89,478,485"),
                       (20000, "declares more than 178,956,970 pixels, above the limit of 89,478,485")):
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
        path = tmp_path / "bomb.png"
        path.write_bytes(png)
        for call in (lambda: read_image(str(path), (8, 8, 1)), lambda: read_image(str(path), (8, 8, 1), crop=True),
                     lambda: images.decode(png, 1)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning comes before the refusal
                with pytest.raises(ValueError, match=said):
                    call()


def test_idx_header_sizes_are_python_ints(tmp_path):
    from jaxcnn.data.formats import SourceError, read_idx_file

    # dims whose product is 2**64 + 16: wrapped to 64 bits it would be 16, the number of data bytes given
    dims = (2**32 - 1, 2**32 - 1)  # product 2**64 - 2**33 + 1
    data = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (*dims, 1)) + b"\0" * 16
    (tmp_path / "f").write_bytes(data)
    with pytest.raises(SourceError, match=r"holds 16 bytes of data, its header says \[4294967295, 4294967295, 1\] "
                                          r"\(18446744065119617025\)"):
        read_idx_file(str(tmp_path / "f"), 3)


# ---------------------------------------------------------------------------------------------------------
# 5. Scoring splits never overlap the training split unless a config key says it is meant.


def test_a_scoring_split_that_overlaps_the_training_split_is_refused_unless_meant():
    from jaxcnn.train import build
    from jaxcnn.train.setup import check_scoring_splits

    # synthetic: 96 training examples; train[:75%] is rows 0-71, train[50%:] rows 48-95: 24 shared
    with pytest.raises(ValueError, match=r"config.eval_split='train\[50%:\]' shares 24 examples with "
                                         r"config.train_split='train\[:75%\]'.*allow_split_overlap=True"):
        build(tiny_config(train_split="train[:75%]", eval_split="train[50%:]"))
    with pytest.raises(ValueError, match=r"config.test_split='train' shares 96 examples"):
        check_scoring_splits(tiny_config(test_split="train"))
    check_scoring_splits(tiny_config(train_split="train[:75%]", eval_split="train[75%:]", test_split="test"))
    check_scoring_splits(tiny_config(eval_split="train", allow_split_overlap=True))


# ---------------------------------------------------------------------------------------------------------
# 7. The shell scripts parse their arguments set -u safe; bench.py refuses --rounds 0.


@pytest.mark.parametrize("args,env,said", [
    (["--results-dir"], {}, "error: --results-dir needs a folder: --results-dir DIR"),
    (["--results-dir", "--cpu-smoke"], {}, "error: --results-dir needs a folder: --results-dir DIR"),
    (["--results-dir="], {}, "error: --results-dir= needs a folder: --results-dir=DIR"),
    (["--results-dir", __file__], {}, f"error: --results-dir {__file__} is a file, not a folder"),
    (["--cpu-smoke"], {"GPU_CHECK_BUDGET_S": "ten"}, "error: GPU_CHECK_BUDGET_S=ten must be an integer in 60..86400"),
    (["--cpu-smoke"], {"GPU_CHECK_INSTALL": "yes"}, "error: GPU_CHECK_INSTALL=yes must be 0 or 1"),
    (["--frobnicate"], {}, "error: unknown option --frobnicate (see --help)"),
])
def test_gpu_check_refuses_bad_arguments_in_one_line_before_any_work(tmp_path, args, env, said):
    work = tmp_path / "work"
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), *args], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "GPU_CHECK_WORK": str(work), **env})
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(said), (r.returncode, r.stderr)
    assert "unbound variable" not in r.stderr and not work.exists()  # refused before anything was made


@pytest.mark.parametrize("script", ["setup.sh", "gpu_prepare.sh"])
def test_the_other_shell_scripts_refuse_a_stray_argument(script):
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", script), "--results-dir"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == (f"error: bash scripts/{script} takes no arguments, got "
                                                      "--results-dir (see --help)")


@pytest.mark.parametrize("flag,value", [("--rounds", "0"), ("--rounds", "-3"), ("--torch-threads", "100000")])
def test_bench_refuses_rounds_zero_and_unbounded_threads(capsys, flag, value):
    from benchmarks.cli import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([flag, value])
    assert info.value.code == 2 and f"argument {flag}: {int(value)} is out of range" in capsys.readouterr().err
