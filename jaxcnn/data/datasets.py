"""Datasets as in-memory numpy arrays: the offline Fashion-MNIST, stock TFDS
datasets by name (already prepared in array_record format), and synthetic data.

Images are uint8 or float NHWC; labels int32.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from jaxcnn._validation import suggest
from jaxcnn.data.integrity import readable

# Stock TFDS names and their image key / shape, for the error messages and the configs.
STOCK = {
    "mnist": (28, 28, 1, 10),
    "fashion_mnist": (28, 28, 1, 10),
    "cifar10": (32, 32, 3, 10),
    "cifar100": (32, 32, 3, 100),
    "imagenet2012": (None, None, 3, 1000),
}
OFFLINE = "fashion_mnist_offline"


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """A split held in memory: images (N, H, W, C) NHWC and int32 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)


def data_dir(path: Optional[str] = None) -> str:
    """The TFDS data dir: `path`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    return os.path.expanduser(path or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


@readable  # a damaged file is one line naming the dataset and how to rebuild it
def load(name: str, split: str, *, data_dir_path: Optional[str] = None, synthetic_shape=(28, 28, 1),
         synthetic_size: int = 1024, num_classes: int = 10, seed: int = 0) -> ArrayDataset:
    """Load split `split` of dataset `name` into memory.

    name: "fashion_mnist_offline" (prepared from Debian's files on first use),
    "synthetic" (random images of `synthetic_shape` (H, W, C) with
    `synthetic_size` examples), "synthetic_shapes" (segmentation canvases of
    synthetic_shape[0] pixels, jaxcnn.data.shapes), or any TFDS dataset already prepared in
    array_record format under the data dir (mnist, cifar10, imagenet2012, ...).
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}")
    if name == "synthetic":
        return synthetic(synthetic_shape, num_classes=num_classes, size=synthetic_size,
                         seed=seed + (0 if split == "train" else 1))
    if name == "synthetic_shapes":
        from jaxcnn.data.shapes import shapes

        return shapes(split, size=int(synthetic_shape[0]), count=synthetic_size)
    import tensorflow_datasets as tfds  # deferred: only real datasets need it

    if name == OFFLINE:
        from jaxcnn.data.fashion_mnist import FashionMnistOffline

        builder = FashionMnistOffline(data_dir=data_dir(data_dir_path))
        if not builder.is_prepared():
            builder.download_and_prepare()
    else:
        try:
            builder = tfds.builder(name, data_dir=data_dir(data_dir_path), file_format="array_record")
        except Exception as e:  # DatasetNotFoundError and friends
            known = list(STOCK) + [OFFLINE, "synthetic", "synthetic_shapes"]
            raise ValueError(f"unknown dataset {name!r} ({type(e).__name__}).{suggest(name, known)} "
                             f"Offline choices: {OFFLINE!r}, 'synthetic'.") from None
        if not builder.is_prepared():
            raise ValueError(
                f"dataset {name!r} is not prepared under {data_dir(data_dir_path)}; prepare it once with "
                f"`tfds build {name} --file_format=array_record --data_dir=...` on a machine with the data, "
                f"or use dataset {OFFLINE!r} (offline, from `apt-get install dataset-fashion-mnist`)."
            )
    splits = builder.info.splits
    if split not in splits:
        raise ValueError(f"dataset {name!r} has no split {split!r}; splits: {sorted(splits)}")
    source = builder.as_data_source(split=split)
    records = source.__getitems__(list(range(len(source))))
    image_key, label_key = builder.info.supervised_keys or ("image", "label")
    images = np.stack([np.asarray(r[image_key]) for r in records])
    labels = np.asarray([r[label_key] for r in records], np.int32)
    num = builder.info.features[label_key].num_classes
    return ArrayDataset(images, labels, int(num))


def synthetic(shape, *, num_classes: int = 10, size: int = 1024, seed: int = 0) -> ArrayDataset:
    """Random uint8 images of `shape` (H, W, C) with labels that depend on them
    (the class is the brightest of `num_classes` image stripes, so a model can learn it)."""
    if (not isinstance(shape, (tuple, list)) or len(shape) != 3
            or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape)):
        raise ValueError(f"synthetic shape must be (H, W, C) of positive ints, got {shape!r}; e.g. (28, 28, 1).")
    if size <= 0 or num_classes <= 0:
        raise ValueError(f"synthetic size and num_classes must be positive, got size={size}, "
                         f"num_classes={num_classes}.")
    h, w, c = shape
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(size, h, w, c), dtype=np.uint8)
    rows = np.array_split(np.arange(h), min(num_classes, h))
    stripe_means = np.stack([images[:, r].mean(axis=(1, 2, 3)) for r in rows], axis=1)
    labels = np.argmax(stripe_means, axis=1).astype(np.int32) % num_classes
    return ArrayDataset(images, labels, num_classes)


def check_finite(data: ArrayDataset, what: str = "dataset") -> None:
    """Refuse images holding NaN or Inf (float images only; integer pixels are always finite),
    naming how many and the first example, before they turn into a NaN loss many steps later."""
    images = np.asarray(data.images)
    if not np.issubdtype(images.dtype, np.floating):
        return
    bad = ~np.isfinite(images).reshape(len(images), -1).all(axis=1)
    if bad.any():
        raise ValueError(f"{what} has {int(bad.sum())} image(s) with NaN/Inf pixels (first: example "
                         f"{int(np.argmax(bad))}); clean or drop them before training.")
