"""Data: splits of TFDS datasets opened lazily (`open_split`) and streamed as
deterministic batches through grain (`train_batches`, `eval_batches`);
datasets prepared without TensorFlow (`prepare`: image folders, CIFAR, MNIST;
the offline Fashion-MNIST builder); whole splits as numpy arrays (`load`);
augmentation as pure functions of a key; the split of a host batch onto
devices. Images NHWC. Dataset names come from a registry (jaxcnn.data.registry:
drawn in code, held whole by their module, or prepared TFDS array_record).
"""

from jaxcnn.data.augment import (
    make_preprocess,
    normalize,
    pad,
    pca_color_jitter,
    random_crop,
    random_flip,
)
from jaxcnn.data.datasets import OFFLINE, ArrayDataset, check_finite, data_dir, load, synthetic
from jaxcnn.data.registry import register_dataset
from jaxcnn.data.sources import Split, open_split
from jaxcnn.data.pipeline import BatchIterator, eval_batches, train_batches
from jaxcnn.data.prepare_data import prepare
from jaxcnn.data.sharding import batch_indices, check_divisible, process_slice, split_for_devices

__all__ = [
    "OFFLINE",
    "ArrayDataset",
    "BatchIterator",
    "Split",
    "batch_indices",
    "check_divisible",
    "data_dir",
    "eval_batches",
    "load",
    "make_preprocess",
    "normalize",
    "open_split",
    "pad",
    "pca_color_jitter",
    "prepare",
    "process_slice",
    "random_crop",
    "random_flip",
    "register_dataset",
    "split_for_devices",
    "check_finite",
    "synthetic",
    "train_batches",
]
