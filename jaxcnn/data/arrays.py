"""Datasets held in memory, and the few facts every data module shares: `ArrayDataset`, synthetic data, the
TFDS data dir, the stock TFDS names. The leaf of jaxcnn.data: it imports no other data module.

Images are uint8 or float NHWC; labels int32.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import numpy as np

from jaxcnn import _env

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
    """A split held in memory: images (N, H, W, C) NHWC and labels: int32 (N,) class ids, or any array or
    dict of arrays with N rows (segmentation maps (N, H, W); detection boxes and classes)."""

    images: np.ndarray
    labels: Any
    num_classes: int

    def __len__(self) -> int:
        return len(self.images)

    def take(self, idx) -> dict:
        """The batch of examples `idx`: {"image": images[idx], "label": labels[idx] (every array of them)}."""
        labels = ({k: v[idx] for k, v in self.labels.items()} if isinstance(self.labels, dict)
                  else self.labels[idx])
        return {"image": self.images[idx], "label": labels}


def data_dir(path: Optional[str] = None) -> str:
    """The TFDS data dir: `path`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    return os.path.expanduser(path or _env.check("TFDS_DATA_DIR") or "~/tensorflow_datasets")


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


def synthetic_split(split: str, *, shape, size, num_classes, seed) -> ArrayDataset:
    """Dataset "synthetic" for the registry: the test split is another draw than the training split."""
    return synthetic(shape, num_classes=num_classes, size=size, seed=seed + (0 if split == "train" else 1))
