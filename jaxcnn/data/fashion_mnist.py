"""Fashion-MNIST offline: a TFDS builder over Debian's `dataset-fashion-mnist`.

The package installs the four original IDX files under
/usr/share/datasets/fashion-mnist/. `FashionMnistOffline` reads them once and
writes TFDS's array_record format into the TFDS data dir; afterwards the splits
are read by random access (`tfds.data_source`), without TensorFlow: the
features are `Tensor`/`ClassLabel`, which need no TensorFlow to decode.

    builder = FashionMnistOffline(data_dir=...)   # default: TFDS_DATA_DIR or ~/tensorflow_datasets
    builder.download_and_prepare()                # once; seconds
    builder.as_data_source("test")[0]             # {'image': uint8 (28, 28, 1), 'label': int}
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import utils as tfds_utils

from jaxcnn import _env

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
SOURCE_DIR_ENV = "JAXCNN_FASHION_MNIST_DIR"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")


def source_dir() -> str:
    """Where the IDX files are read from: $JAXCNN_FASHION_MNIST_DIR or Debian's directory."""
    return _env.check(SOURCE_DIR_ENV) or DEBIAN_DIR


def read_idx(split: str, directory: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The original IDX files of `split` as (uint8 images (N, 28, 28, 1) NHWC, uint8 labels (N,))."""
    directory = directory or source_dir()
    image_file, label_file = (os.path.join(directory, f) for f in FILES[split])
    for path in (image_file, label_file):
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"Fashion-MNIST file {path} not found; install the offline data with "
                f"`sudo apt-get install dataset-fashion-mnist` (or set {SOURCE_DIR_ENV} to a directory "
                "holding the four original .gz files)."
            )
    with gzip.open(image_file, "rb") as f:
        raw = f.read()
    magic, n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051:
        raise ValueError(f"{image_file} is not an IDX image file (magic {magic}, expected 2051)")
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w, 1)
    with gzip.open(label_file, "rb") as f:
        raw = f.read()
    magic, m = (int.from_bytes(raw[i:i + 4], "big") for i in range(0, 8, 4))
    if magic != 2049 or m != n:
        raise ValueError(f"{label_file} is not the IDX label file for {image_file} (magic {magic}, count {m})")
    labels = np.frombuffer(raw, np.uint8, offset=8)
    return images, labels


class FashionMnistOffline(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST (Xiao et al., 2017) from Debian's offline files; 60,000 train / 10,000 test."""

    name = "fashion_mnist_offline"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "From Debian's dataset-fashion-mnist IDX files; Tensor features (no TensorFlow)."}

    @tfds_utils.classproperty
    @classmethod
    def code_path(cls):
        # This file, directly: TFDS's package-resource lookup needs importlib_resources, which is not a dependency.
        return epath.Path(os.path.abspath(__file__))

    def __init__(self, *, data_dir=None, file_format="array_record", **kwargs):
        super().__init__(data_dir=data_dir, file_format=file_format, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Fashion-MNIST: 28x28 grey images of 10 kinds of clothing.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=list(CLASS_NAMES)),
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # no download: the files come from the Debian package
        for split in FILES:  # fail before writing anything if a file is missing
            for f in FILES[split]:
                if not os.path.exists(os.path.join(source_dir(), f)):
                    read_idx(split)
        return {split: self._generate_examples(split) for split in FILES}

    def _generate_examples(self, split):
        images, labels = read_idx(split)
        for i in range(len(labels)):
            yield i, {"image": images[i], "label": int(labels[i])}
