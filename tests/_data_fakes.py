"""Tiny stand-ins for the real data files, written by hand in their documented
formats, for the prepare_data and pipeline tests (no network, a few KB each)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import numpy as np
from PIL import Image


def cifar_archive(path, kind: str, counts=None, seed: int = 0):
    """A CIFAR binary archive: per record <label byte(s)><1024 R><1024 G><1024 B>.
    Returns {split: (images uint8 (N, 32, 32, 3), labels (N,) [, coarse (N,)])}."""
    rng = np.random.default_rng(seed)
    if kind == "cifar10":
        folder, files = "cifar-10-batches-bin", {f"data_batch_{i}.bin": "train" for i in range(1, 6)}
        files["test_batch.bin"] = "test"
        meta = {"batches.meta.txt": [f"class{i}" for i in range(10)]}
    else:
        folder, files = "cifar-100-binary", {"train.bin": "train", "test.bin": "test"}
        meta = {"coarse_label_names.txt": [f"super{i}" for i in range(20)],
                "fine_label_names.txt": [f"fine{i}" for i in range(100)]}
    counts = counts or {f: 3 for f in files}
    truth, members = {}, {}
    for f, split in files.items():
        n = counts[f]
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        planes = images.transpose(0, 3, 1, 2).reshape(n, -1)
        if kind == "cifar10":
            labels = rng.integers(0, 10, n).astype(np.uint8)
            records = np.concatenate([labels[:, None], planes], axis=1)
            extra = ()
        else:
            coarse, labels = rng.integers(0, 20, n).astype(np.uint8), rng.integers(0, 100, n).astype(np.uint8)
            records = np.concatenate([coarse[:, None], labels[:, None], planes], axis=1)
            extra = (coarse,)
        members[f"{folder}/{f}"] = records.tobytes()
        prev = truth.get(split)
        now = (images, labels, *extra)
        truth[split] = now if prev is None else tuple(np.concatenate([a, b]) for a, b in zip(prev, now))
    for f, names in meta.items():
        members[f"{folder}/{f}"] = ("\n".join(names) + "\n").encode()
    write_tar(path, members)
    return truth


def write_tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0800 + rank, the dimensions, the data."""
    header = (0x800 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def mnist_dir(root, n_train: int = 7, n_test: int = 5, seed: int = 0):
    """The four MNIST IDX files (train ones gzipped, test ones not); returns the arrays."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    truth = {}
    for split, prefix, n, gz in (("train", "train", n_train, True), ("test", "t10k", n_test, False)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = os.path.join(root, f"{prefix}-{kind}-ubyte")
            data = idx_bytes(array)
            with open(name + (".gz" if gz else ""), "wb") as f:
                f.write(gzip.compress(data) if gz else data)
        truth[split] = (images[..., None], labels)
    return truth


def image_folder(root, classes=("cat", "dog", "fish"), per_class: int = 10, test_per_class: int = 0,
                 seed: int = 0, sizes=((5, 40), (5, 40))):
    """root/train/<class>/ (and test/ when test_per_class) of PNG and JPEG files
    of random sizes; returns {path: pixels} of the PNGs (lossless)."""
    rng = np.random.default_rng(seed)
    pngs = {}
    for split, n in (("train", per_class), ("test", test_per_class)):
        for cls in classes if n else ():
            os.makedirs(os.path.join(root, split, cls), exist_ok=True)
            for i in range(n):
                h, w = int(rng.integers(*sizes[0])), int(rng.integers(*sizes[1]))
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                path = os.path.join(root, split, cls, f"{i}.{'png' if i % 2 else 'jpg'}")
                Image.fromarray(pixels).save(path)
                if i % 2:
                    pngs[path] = pixels
    return pngs
