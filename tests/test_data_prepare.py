"""scripts/prepare_data.py and jaxcnn.data.prepare_data: image folders, CIFAR-10/100
binary archives and MNIST IDX files become TFDS array_record datasets that
jaxcnn.data opens by name; labels, pixels and class names survive exactly, and
bad input is refused in one line naming the file."""

import os
import subprocess
import sys

import numpy as np
import pytest

import _data_fakes as fakes
from jaxcnn.data import load, open_split, prepare, prepare_data
from jaxcnn.data.images import decode
from jaxcnn.data.prepare_data import SourceError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "prepare_data.py")


def as_set(images, labels, *extra):
    return sorted(images[i].tobytes() + bytes([int(labels[i])] + [int(e[i]) for e in extra])
                  for i in range(len(labels)))


@pytest.mark.parametrize("kind", ["cifar10", "cifar100"])
def test_cifar_binary_archive_round_trips(tmp_path, kind, monkeypatch):
    truth = fakes.cifar_archive(tmp_path / f"{kind}.tar.gz", kind, seed=1)
    monkeypatch.setattr(prepare_data, "SHARD_BYTES", 5_000)  # several shards of 2 records
    path = prepare(kind, str(tmp_path / f"{kind}.tar.gz"), data_dir=str(tmp_path / "tfds"), quiet=True)
    assert path == str(tmp_path / "tfds" / f"{kind}_offline" / "1.0.0")
    shards = [f for f in os.listdir(path) if "-train.array_record-" in f]
    assert len(shards) > 1 and f"{kind}_offline-train.array_record-00000-of-{len(shards):05d}" in shards
    for split in ("train", "test"):
        s = open_split(f"{kind}_offline", split, data_dir=str(tmp_path / "tfds"), in_memory=False)
        got = s.to_arrays()
        assert got.images.shape[1:] == (32, 32, 3) and len(s) == len(truth[split][1])
        assert as_set(got.images, got.labels) == as_set(*truth[split][:2])  # TFDS stores its own order
    assert s.class_names[:2] == (("class0", "class1") if kind == "cifar10" else ("fine0", "fine1"))
    if kind == "cifar100":  # the coarse label is kept beside the fine one
        import tensorflow_datasets as tfds

        b = tfds.builder_from_directory(path)
        assert b.info.features["coarse_label"].names[:2] == ["super0", "super1"]
        records = b.as_data_source("test")
        images, fine, coarse = truth["test"]
        got = [(r["image"], r["label"], r["coarse_label"]) for r in records]
        assert (as_set(np.stack([g[0] for g in got]), [g[1] for g in got], [g[2] for g in got])
                == as_set(images, fine, coarse))


def test_mnist_idx_files_gzipped_or_not(tmp_path):
    truth = fakes.mnist_dir(tmp_path / "mnist")
    prepare("mnist", str(tmp_path / "mnist"), data_dir=str(tmp_path / "tfds"), quiet=True)
    for split in ("train", "test"):
        got = load("mnist_offline", split, data_dir_path=str(tmp_path / "tfds"))  # the old in-memory API
        assert got.images.shape[1:] == (28, 28, 1) and got.num_classes == 10
        assert as_set(got.images, got.labels) == as_set(*truth[split])
    assert open_split("mnist_offline", "test", data_dir=str(tmp_path / "tfds")).class_names == tuple("0123456789")


def test_image_folder_keeps_encoded_bytes_class_names_and_seeded_split(tmp_path):
    pngs = fakes.image_folder(tmp_path / "My Photos", per_class=10)
    path = prepare("image_folder", str(tmp_path / "My Photos"), data_dir=str(tmp_path / "tfds"), quiet=True)
    assert path.endswith(os.path.join("my_photos", "1.0.0"))  # the folder's name, snake_case
    train = open_split("my_photos", "train", data_dir=str(tmp_path / "tfds"))
    test = open_split("my_photos", "test", data_dir=str(tmp_path / "tfds"))
    assert train.class_names == ("cat", "dog", "fish") and train.image_shape is None and train.encoded
    assert (len(train), len(test)) == (27, 3)  # 10% of each class held out (no test/ folder)
    first = open_split("my_photos", "train[:33%]", data_dir=str(tmp_path / "tfds")).read(np.arange(9))[1]
    assert len(set(first.tolist())) > 1  # stored in a shuffled order: a slice is a sample, not one class
    files = {}
    for cls in ("cat", "dog", "fish"):
        for f in os.listdir(tmp_path / "My Photos" / "train" / cls):
            p = tmp_path / "My Photos" / "train" / cls / f
            files[p.read_bytes()] = (str(p), cls)
    seen = set()
    for s in (train, test):
        data, labels = s.read(np.arange(len(s)))
        for d, y in zip(data, labels):
            file, cls = files[d]  # the file's bytes, unchanged
            assert s.class_names[y] == cls
            if file in pngs:
                np.testing.assert_array_equal(decode(d, 3), pngs[file])
            seen.add(file)
    assert len(seen) == 30
    # The held-out split is the documented function of the files (formats.plan_image_folder): one generator
    # seeded FOLDER_SPLIT_SEED = 0 draws, class by class in sorted order, a permutation of the class's sorted
    # files and holds out the first round(0.1 * 10) = 1. Worked out here from that rule, not by a second call.
    rng = np.random.default_rng(0)
    held = set()
    for cls in ("cat", "dog", "fish"):
        names = sorted(os.listdir(tmp_path / "My Photos" / "train" / cls))
        held.add((tmp_path / "My Photos" / "train" / cls / names[rng.permutation(len(names))[0]]).read_bytes())
    assert set(test.read(np.arange(3))[0]) == held


def test_image_folder_with_test_folder_and_one_size(tmp_path):
    fakes.image_folder(tmp_path / "tiles", per_class=4, test_per_class=2, classes=("a", "b"),
                       sizes=((6, 7), (9, 10)))
    prepare("image_folder", str(tmp_path / "tiles"), data_dir=str(tmp_path / "tfds"), quiet=True)
    s = open_split("tiles", "test", data_dir=str(tmp_path / "tfds"))
    assert len(s) == 4 and s.image_shape == (6, 9, 3)  # one size: recorded, so it loads as arrays
    assert load("tiles", "train", data_dir_path=str(tmp_path / "tfds")).images.shape == (8, 6, 9, 3)


def refusal(tmp_path, kind, source, **kw):
    with pytest.raises(SourceError) as e:
        prepare(kind, str(source), data_dir=str(tmp_path / "tfds"), quiet=True, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_bad_sources_are_refused_naming_the_file(tmp_path):
    fakes.mnist_dir(tmp_path / "m")
    os.remove(tmp_path / "m" / "t10k-labels-idx1-ubyte")
    assert "t10k-labels-idx1-ubyte[.gz] not found" in refusal(tmp_path, "mnist", tmp_path / "m")
    fakes.mnist_dir(tmp_path / "m2")
    (tmp_path / "m2" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    assert "t10k-images-idx3-ubyte holds 8 bytes" in refusal(tmp_path, "mnist", tmp_path / "m2")

    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    assert "junk.tar.gz is not a readable tar.gz" in refusal(tmp_path, "cifar10", tmp_path / "junk.tar.gz")
    assert "nothere.tar.gz not found" in refusal(tmp_path, "cifar10", tmp_path / "nothere.tar.gz")
    fakes.cifar_archive(tmp_path / "c100.tar.gz", "cifar100")
    assert "has no cifar-10-batches-bin/batches.meta.txt" in refusal(tmp_path, "cifar10", tmp_path / "c100.tar.gz")
    fakes.write_tar(tmp_path / "cut.tar.gz", {"cifar-10-batches-bin/batches.meta.txt": b"\n".join(
        b"c%d" % i for i in range(10)), **{f"cifar-10-batches-bin/{f}": bytes(3073 * 2 - 5) for f in
                                           ["test_batch.bin"] + [f"data_batch_{i}.bin" for i in range(1, 6)]}})
    assert "data_batch_1.bin has 6141 bytes" in refusal(tmp_path, "cifar10", tmp_path / "cut.tar.gz")

    fakes.image_folder(tmp_path / "f", per_class=3)
    (tmp_path / "f" / "train" / "dog" / "notes.txt").write_text("hi")
    assert "dog/notes.txt is not a .jpg/.jpeg/.png image" in refusal(tmp_path, "image_folder", tmp_path / "f")
    os.remove(tmp_path / "f" / "train" / "dog" / "notes.txt")
    good = (tmp_path / "f" / "train" / "dog" / "0.jpg").read_bytes()
    (tmp_path / "f" / "train" / "dog" / "0.jpg").write_bytes(good[:len(good) // 2])
    assert "dog/0.jpg is a broken image" in refusal(tmp_path, "image_folder", tmp_path / "f")
    assert not os.path.exists(tmp_path / "tfds" / "f" / "1.0.0")  # nothing half-written is left
    os.makedirs(tmp_path / "nope" / "val")
    assert os.path.join("nope", "train") + " not found" in refusal(tmp_path, "image_folder", tmp_path / "nope")

    assert "stock TFDS dataset" in refusal(tmp_path, "mnist", tmp_path / "m", name="mnist")
    assert "must be snake_case" in refusal(tmp_path, "mnist", tmp_path / "m", name="My-Data")


def test_cli_one_line_error_and_summary(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT, "TFDS_DATA_DIR": str(tmp_path / "tfds")}
    r = subprocess.run([sys.executable, SCRIPT, "mnist", str(tmp_path / "missing")], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("error: ") and "missing is not a folder" in r.stderr
    fakes.mnist_dir(tmp_path / "m")
    r = subprocess.run([sys.executable, SCRIPT, "mnist", str(tmp_path / "m"), "--name", "digits"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "test 5, train 7 examples, 10 classes; train with --config.dataset=digits" in r.stdout
    r = subprocess.run([sys.executable, SCRIPT, "mnist", str(tmp_path / "m"), "--name", "digits"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "already exists; remove it" in r.stderr and "Traceback" not in r.stderr
