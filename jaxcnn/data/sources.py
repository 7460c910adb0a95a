"""One split of a dataset, opened lazily and read by index: `open_split`.

A `Split` reads examples from TFDS's array_record files by random access
(nothing is loaded until asked), or from arrays in memory where that is
faster: small fixed-size uint8 sets (Fashion-MNIST, CIFAR, MNIST) and
synthetic data. Encoded images (TFDS `Image` features: image folders,
ImageNet) come back as bytes, decoded later on the pipeline's workers.

A Split pickles as its name and split (never its data), so grain's worker
processes reopen the files themselves.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Mapping
from typing import Optional, Sequence

import numpy as np

from jaxcnn._extras import require
from jaxcnn._locks import target_lock
from jaxcnn._validation import check_split, suggest
from jaxcnn.data import registry
from jaxcnn.data.arrays import OFFLINE, STOCK, ArrayDataset
from jaxcnn.data.arrays import data_dir as resolve_data_dir
from jaxcnn.data.images import decode

# Fixed-size uint8 arrays (not encoded images) up to this many bytes are held in memory by default
# (in_memory=None): a batch is then one numpy gather instead of one array_record
# read and parse per example (see README "Data" for the measured difference).
IN_MEMORY_MAX_BYTES = 1 << 30


def _split_names(spec: str) -> list[str]:
    """The split names in a TFDS split string ("train[:90%]+test" -> ["train", "test"])."""
    return [part.split("[")[0].strip() for part in spec.split("+")]


def _absolute(name: str, spec: str, sizes: dict[str, int]) -> list[tuple[str, int, int]]:
    """TFDS split syntax ("train", "train[:90%]", "train[10:20]+test") as (split, start, stop) runs."""
    require("tensorflow_datasets")
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import splits as splits_lib

    check_split(spec)  # the whole expression: nothing after a valid prefix is ignored
    try:
        instruction = tfds.core.ReadInstruction.from_spec(spec)
    except (ValueError, TypeError, AssertionError) as e:
        raise ValueError(f"cannot read split {spec!r} ({str(e).splitlines()[0]}); write e.g. 'train', "
                         "'train[:90%]', 'train[90%:]' or 'train[:1000]'") from None
    infos = {s: splits_lib.SplitInfo(name=s, shard_lengths=[n], num_bytes=0, filename_template=None)
             for s, n in sizes.items()}
    for part in _split_names(spec):
        if part not in sizes and part != "all":
            raise ValueError(f"dataset {name!r} has no split {part!r} (asked for {spec!r}); splits: "
                             f"{sorted(sizes)}.{suggest(part, sizes)}")
    runs = []
    for part in instruction.to_absolute(infos):
        n = sizes[part.splitname]
        start, stop = part.from_ or 0, n if part.to is None else part.to
        runs.append((part.splitname, max(0, min(start, n)), max(0, min(stop, n))))
    return runs


def overlap(name: str, train: str, scored: str, sizes_of) -> int:
    """How many examples split expressions `train` and `scored` of dataset `name` share. sizes_of() gives
    {base split: examples}; it is called only when the two name a common base split."""
    if not set(_split_names(train)) & set(_split_names(scored)) and "all" not in _split_names(train) + _split_names(
            scored):
        return 0
    sizes = sizes_of()
    a, b = _absolute(name, train, sizes), _absolute(name, scored, sizes)
    shared = 0
    for split_a, start_a, stop_a in a:
        for split_b, start_b, stop_b in b:
            if split_a == split_b:
                shared += max(0, min(stop_a, stop_b) - max(start_a, start_b))
    return shared


class Split:
    """One split, opened lazily: `len(split)`, `num_classes`, `class_names`,
    `image_shape` ((H, W, C) NHWC, or None when the sizes vary), and
    `read(indices) -> (images, labels)`: a uint8 array (k, H, W, C), or a list
    holding uint8 (H, W, C) arrays or encoded image bytes; int32 labels (k,)."""

    def __init__(self, name: str, split: str, *, num_classes: int, class_names: Sequence[str],
                 image_shape: Optional[tuple], length: int, encoded: bool, arrays: Optional[ArrayDataset] = None,
                 tfds_dir: Optional[str] = None, keys=("image", "label"), in_memory: bool = False,
                 channels: int = 3):
        self.name, self.split = name, split
        self.num_classes, self.class_names = int(num_classes), tuple(class_names)
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.channels = int(image_shape[-1]) if image_shape is not None else int(channels)
        self.encoded = encoded  # True: read() gives encoded bytes (JPEG/PNG), decoded by the pipeline
        self._length, self._arrays, self._tfds_dir, self._keys = length, arrays, tfds_dir, keys
        self._in_memory = in_memory
        self._source, self._lock = None, threading.RLock()  # grain's threads share a Split

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        where = "in memory" if self.in_memory else "streamed from array_record"
        return (f"Split({self.name!r}, {self.split!r}: {len(self)} examples, {self.num_classes} classes, "
                f"image_shape={self.image_shape}, {where})")

    @property
    def in_memory(self) -> bool:
        return self._arrays is not None or self._in_memory

    def __getstate__(self):
        state = dict(self.__dict__, _source=None, _lock=None)
        if self._tfds_dir is not None:  # reread by each worker; arrays of synthetic data travel as they are
            state["_arrays"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.RLock())

    def _data_source(self):
        with self._lock:
            if self._source is None:
                require("tensorflow_datasets")
                import tensorflow_datasets as tfds

                builder = tfds.builder_from_directory(self._tfds_dir)
                decoders = {self._keys[0]: tfds.decode.SkipDecoding()} if self.encoded else None
                self._source = builder.as_data_source(self.split, decoders=decoders)
            return self._source

    def read(self, indices):
        """Examples `indices` (ints in [0, len)) as (images, int32 labels)."""
        indices = np.asarray(indices, np.int64)
        if self.in_memory:
            with self._lock:  # the first read loads the split, once
                arrays = self.to_arrays()
            return arrays.images[indices], arrays.labels[indices]
        records = self._data_source().__getitems__(indices.tolist())
        image_key, label_key = self._keys
        return [r[image_key] for r in records], np.asarray([r[label_key] for r in records], np.int32)

    def to_arrays(self) -> ArrayDataset:
        """The whole split in memory (fixed-size images only)."""
        if self._arrays is not None:
            return self._arrays
        if self.image_shape is None:
            raise ValueError(f"{self.name} split {self.split!r} holds images of varying sizes, which cannot be "
                             "one array; stream it with jaxcnn.data.train_batches(..., image_size=S)")
        source, image_key, label_key = self._data_source(), *self._keys
        n = len(self)
        images, labels = None, np.empty((n,), np.int32)
        for start in range(0, n, 4096):  # in chunks: never the whole split twice in memory
            records = source.__getitems__(list(range(start, min(n, start + 4096))))
            for i, r in enumerate(records, start):
                image = decode(r[image_key], self.channels) if self.encoded else np.asarray(r[image_key])
                if images is None:
                    images = np.empty((n,) + self.image_shape, image.dtype)
                images[i], labels[i] = image, r[label_key]
        arrays = ArrayDataset(images, labels, self.num_classes)
        if self._in_memory:
            self._arrays = arrays
        return arrays


def tfds_builder(name: str, directory: str):
    """The TFDS builder of `name` under `directory`: jaxcnn's offline Fashion-MNIST
    (prepared here on first use), one written by prepare_data, or a stock one. ValueError, naming the fix,
    for an unknown or unprepared one."""
    require("tensorflow_datasets")
    import tensorflow_datasets as tfds

    if name == OFFLINE:
        from jaxcnn.data.fashion_mnist import FashionMnistOffline

        builder = FashionMnistOffline(data_dir=directory)
        if not builder.is_prepared():
            prepare_once(builder, name, directory)
            builder = FashionMnistOffline(data_dir=directory)  # its info read from the files now written
        return builder
    try:
        builder = tfds.builder(name, data_dir=directory, file_format="array_record")
    except Exception as e:  # DatasetNotFoundError and friends
        local = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d))
                       and d not in ("downloads",)) if os.path.isdir(directory) else []
        known = list(STOCK) + [OFFLINE] + registry.names() + local
        raise ValueError(f"unknown dataset {name!r} ({type(e).__name__}).{suggest(name, known)} "
                         f"Offline choices: {OFFLINE!r}, 'synthetic'; prepare your own with "
                         f"`python scripts/prepare_data.py KIND SOURCE --name {name}`.") from None
    if not builder.is_prepared():
        sources = {"cifar10": "cifar-10-binary.tar.gz", "cifar100": "cifar-100-binary.tar.gz", "mnist": "MNIST_DIR"}
        ours = (f"`python scripts/prepare_data.py {name} {sources[name]}` (no TensorFlow; then "
                f"dataset='{name}_offline')" if name in sources else
                "`python scripts/prepare_data.py` (image folders, CIFAR, MNIST; no TensorFlow)")
        raise ValueError(
            f"dataset {name!r} is not prepared under {directory}; prepare it once with {ours}, or "
            f"`tfds build {name} --file_format=array_record --data_dir=...` on a machine with the data, "
            f"or use dataset {OFFLINE!r} (offline, from `apt-get install dataset-fashion-mnist`)."
        )
    return builder


def prepare_once(builder, name: str, directory: str) -> None:
    """builder.download_and_prepare(), by one process at a time: a second process that needs the same dataset
    waits for the first (saying so once) and then finds it prepared. A data dir it cannot write is one line."""
    if os.path.isdir(directory) and not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"dataset {name!r} is not prepared yet and the TFDS data dir {directory} is read-only to "
                         "this user; set --config.data_dir (or TFDS_DATA_DIR) to a folder you can write, where it "
                         "is prepared on first use.")
    with target_lock(os.path.join(directory, name), f"dataset {name!r} in {directory}", wait=True,
                     log=lambda line: print(line, file=sys.stderr, flush=True)):
        if not builder.is_prepared():
            builder.download_and_prepare()


class _Generated(Mapping):
    """The generated datasets of jaxcnn.data.registry as a read-only mapping, name -> draw (its old form here)."""

    def __getitem__(self, name):
        draw = registry.generated(name) if isinstance(name, str) else None
        if draw is None:
            raise KeyError(name)
        return draw

    def __iter__(self):
        return iter(registry.names("generated"))

    def __len__(self):
        return len(registry.names("generated"))


# Datasets drawn in code (no files): name -> (base split "train"/"test", shape=, size=, num_classes=, seed=)
# -> ArrayDataset. synthetic_shape and synthetic_size size them.
GENERATED = _Generated()


def open_split(name: str, split: str, *, data_dir: Optional[str] = None, synthetic_shape=(28, 28, 1),
               synthetic_size: int = 1024, num_classes: int = 10, seed: int = 0,
               in_memory: Optional[bool] = None) -> Split:
    """Split `split` of dataset `name`, opened lazily (only metadata is read here).

    name: "fashion_mnist_offline" (prepared from Debian's files on first use),
    "synthetic" (`synthetic_size` random images of `synthetic_shape` (H, W, C),
    `num_classes` classes, seeded by `seed`; its test split is another draw), a
    name written by scripts/prepare_data.py, or any TFDS dataset prepared in
    array_record format under the data dir (`data_dir`, else $TFDS_DATA_DIR,
    else ~/tensorflow_datasets). split: TFDS syntax, e.g. "train",
    "train[:90%]", "train[90%:]", "test[:1000]". in_memory: None holds
    fixed-size uint8 splits of at most IN_MEMORY_MAX_BYTES in memory (read on
    first use) and streams the rest; True or False forces it.
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, got {type(name).__name__}")
    if not isinstance(split, str):
        raise TypeError(f"split must be a str such as 'train' or 'train[:90%]', got {type(split).__name__}")
    draw = registry.generated(name)
    if draw is not None:
        bases = {"train": synthetic_size, "test": synthetic_size}
        runs = _absolute(name, split, bases)
        parts = {s: draw(s, shape=tuple(synthetic_shape), size=synthetic_size,
                                    num_classes=num_classes, seed=seed) for s in {s for s, _, _ in runs}}
        take = lambda field: np.concatenate([getattr(parts[s], field)[a:b] for s, a, b in runs])  # noqa: E731
        first = next(iter(parts.values()))
        arrays = ArrayDataset(take("images"), take("labels"), first.num_classes)
        names = list(getattr(first, "class_names", None) or [str(i) for i in range(first.num_classes)])
        return Split(name, split, num_classes=first.num_classes, class_names=names,
                     image_shape=tuple(arrays.images.shape[1:]), length=len(arrays.images), encoded=False,
                     arrays=arrays)
    directory = resolve_data_dir(data_dir)
    builder = tfds_builder(name, directory)
    info = builder.info
    image_key, label_key = info.supervised_keys or ("image", "label")
    runs = _absolute(name, split, {s: info.splits[s].num_examples for s in info.splits})
    length = sum(b - a for _, a, b in runs)
    image_feature, label_feature = info.features[image_key], info.features[label_key]
    require("tensorflow_datasets")
    import tensorflow_datasets as tfds

    encoded = isinstance(image_feature, tfds.features.Image)
    shape = tuple(image_feature.shape)
    shape = shape if all(d is not None for d in shape) else None
    if in_memory is None:  # encoded images stream: decoding a whole split at once would hold it decoded
        in_memory = (shape is not None and not encoded and np.dtype(image_feature.np_dtype) == np.uint8
                     and length * math.prod(shape) <= IN_MEMORY_MAX_BYTES)
    elif in_memory and shape is None:
        raise ValueError(f"{name} split {split!r} holds images of varying sizes; in_memory=True needs one "
                         "size (use in_memory=None or False to stream it)")
    if length == 0:
        raise ValueError(f"{name} split {split!r} is empty; widen the slice (e.g. 'train[:90%]')")
    return Split(name, split, num_classes=label_feature.num_classes, class_names=label_feature.names,
                 image_shape=shape, length=length, encoded=encoded, tfds_dir=str(builder.data_dir),
                 keys=(image_key, label_key), in_memory=bool(in_memory), channels=image_feature.shape[-1] or 3)

