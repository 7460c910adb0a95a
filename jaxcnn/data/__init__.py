"""Data: datasets as numpy arrays (the offline Fashion-MNIST TFDS builder,
stock TFDS datasets, synthetic), augmentation as pure functions of a key, and
the split of a host batch onto devices. Images NHWC."""

from jaxcnn.data.augment import (
    make_preprocess,
    normalize,
    pad,
    pca_color_jitter,
    random_crop,
    random_flip,
)
from jaxcnn.data.datasets import OFFLINE, ArrayDataset, data_dir, load, synthetic
from jaxcnn.data.sharding import batch_indices, check_divisible, process_slice, split_for_devices

__all__ = [
    "OFFLINE",
    "ArrayDataset",
    "batch_indices",
    "check_divisible",
    "data_dir",
    "load",
    "make_preprocess",
    "normalize",
    "pad",
    "pca_color_jitter",
    "process_slice",
    "random_crop",
    "random_flip",
    "split_for_devices",
    "synthetic",
]
