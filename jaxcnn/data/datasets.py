"""Datasets as in-memory numpy arrays: `load(name, split)` of any dataset the
registry knows (jaxcnn.data.registry: the offline Fashion-MNIST, TFDS datasets
prepared in array_record format, synthetic sets, the garment canvases).
Streaming, for sets of any size, is jaxcnn.data.sources and .pipeline.

Images are uint8 or float NHWC; labels int32. `ArrayDataset`, `synthetic`,
`check_finite`, `data_dir`, `STOCK` and `OFFLINE` live in jaxcnn.data.arrays
and are importable from here as before.
"""

from __future__ import annotations

from typing import Optional

from jaxcnn._extras import require
from jaxcnn.data import registry
from jaxcnn.data.arrays import OFFLINE, STOCK, ArrayDataset, check_finite, data_dir, synthetic  # noqa: F401
from jaxcnn.data.integrity import readable
from jaxcnn.data.sources import open_split


@readable  # a damaged file is one line naming the dataset and how to rebuild it
def load(name: str, split: str, *, data_dir_path: Optional[str] = None, synthetic_shape=(28, 28, 1),
         synthetic_size: int = 1024, num_classes: int = 10, seed: int = 0) -> ArrayDataset:
    """Load split `split` of dataset `name` into memory (fixed-size images only).

    name: "fashion_mnist_offline" (prepared from Debian's files on first use),
    "synthetic" (random images of `synthetic_shape` (H, W, C) with
    `synthetic_size` examples), "synthetic_shapes" (segmentation canvases of
    synthetic_shape[0] pixels), "synthetic_shape_classes" (one shape per grey
    canvas, labelled by its kind; jaxcnn.data.shapes), "fashion_mnist_detection" /
    "fashion_mnist_segmentation" and their variants (garments on canvases,
    jaxcnn.data.canvases; built offline on first use), a name written by
    scripts/prepare_data.py, or any TFDS dataset already prepared in array_record
    format under the data dir (mnist, cifar10, ...). split: TFDS syntax ("train",
    "train[:90%]", ...). A thin wrapper over `jaxcnn.data.open_split(...).to_arrays()`
    (the canvases excepted); stream large sets with `jaxcnn.data.train_batches` instead.
    """
    if isinstance(name, str) and name in registry.names("whole"):  # held whole by their module (the canvases)
        require("tensorflow_datasets")
        return registry.whole_loader(name)(name, split, data_dir(data_dir_path))
    return open_split(name, split, data_dir=data_dir_path, synthetic_shape=synthetic_shape,
                      synthetic_size=synthetic_size, num_classes=num_classes, seed=seed,
                      in_memory=False).to_arrays()
