"""Prepare a dataset once, without TensorFlow, as TFDS array_record files that
`jaxcnn.data` then reads by name (`--config.dataset=NAME`).

    prepare("cifar10", "cifar-10-binary.tar.gz")            # -> <data dir>/cifar10_offline/1.0.0
    prepare("image_folder", "photos/", name="photos")        # photos/train/<class>/*.jpg ...

The written directory holds TFDS's array_record shards, dataset_info.json and
features.json, so `tfds.builder(NAME, data_dir=...)` finds it later from the
files alone; no builder class has to be imported. Kinds and their default names:

    image_folder DIR   -> the folder's name, made snake_case (images kept encoded, decoded on read)
    cifar10 ARCHIVE    -> cifar10_offline   (cifar-10-binary.tar.gz)
    cifar100 ARCHIVE   -> cifar100_offline  (cifar-100-binary.tar.gz; fine `label`, plus `coarse_label`)
    mnist DIR          -> mnist_offline     (the four IDX files, gzipped or not)

The `_offline` names stay clear of TFDS's stock `cifar10`, `mnist`...: the
examples are the same, but the features differ (uint8 arrays, no ids), so
they are not the stock datasets.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from jaxcnn._extras import require
from jaxcnn._locks import private_dir, target_lock
from jaxcnn.data import formats
from jaxcnn.data.datasets import data_dir as default_data_dir
from jaxcnn.data.formats import SourceError

KINDS = ("image_folder", "cifar10", "cifar100", "mnist")
DEFAULT_NAMES = {"cifar10": "cifar10_offline", "cifar100": "cifar100_offline", "mnist": "mnist_offline"}
DATASET_VERSION = "1.0.0"
RESERVED = ("fashion_mnist_offline", "synthetic")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ORDER_SEED = 0  # the stored order of the examples: a seeded shuffle
SHARD_BYTES = 256 << 20  # a new array_record file after this many bytes of serialized examples
CHUNK = 256  # examples read and serialized at a time


def default_name(kind: str, source: str) -> str:
    """The dataset name `prepare` uses without `name`: see the module docstring."""
    if kind in DEFAULT_NAMES:
        return DEFAULT_NAMES[kind]
    base = re.sub(r"[^a-z0-9]+", "_", os.path.basename(os.path.normpath(source)).lower()).strip("_")
    return base if base[:1].isalpha() else f"images_{base}".rstrip("_")


def check_name(name: str) -> None:
    """Refuse a name TFDS cannot hold or that would shadow a stock TFDS dataset or a jaxcnn one."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SourceError(f"dataset name {name!r} must be snake_case (a-z, 0-9, _; starting with a letter), "
                          "e.g. --name my_photos")
    if name in RESERVED:
        raise SourceError(f"dataset name {name!r} is jaxcnn's own; choose another --name")
    require("tensorflow_datasets")
    import tensorflow_datasets as tfds

    if name in tfds.list_builders(with_community_datasets=False):
        raise SourceError(f"dataset name {name!r} is a stock TFDS dataset whose features differ from these; "
                          f"choose another --name, e.g. {name}_offline")


def plan(kind: str, source: str) -> formats.Plan:
    """Check `source` and return what would be written (see jaxcnn.data.formats)."""
    if kind == "image_folder":
        return formats.plan_image_folder(source)
    if kind in formats.CIFAR:
        return formats.plan_cifar(source, kind)
    if kind == "mnist":
        return formats.plan_mnist(source)
    raise SourceError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")


def prepare(kind: str, source: str, *, name: str | None = None, data_dir: str | None = None,
            quiet: bool = False) -> str:
    """Write `source` as TFDS dataset `name` (default: `default_name`) under the
    TFDS data dir and return the directory written. Refuses a bad source, a bad
    name or an existing dataset of that name with `SourceError` (one line)."""
    if kind not in KINDS:
        raise SourceError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    name = name if name is not None else default_name(kind, source)
    check_name(name)
    root = default_data_dir(data_dir)
    check_data_dir(root)
    target = os.path.join(root, name, DATASET_VERSION)
    if os.path.exists(os.path.join(target, "dataset_info.json")):
        raise SourceError(f"{target} already exists; remove it (rm -r {target}) or choose another --name")
    return write(name, plan(kind, source), data_dir=root, quiet=quiet)


def write(name: str, p: formats.Plan, *, data_dir: str | None = None, quiet: bool = False) -> str:
    """Write a `formats.Plan` as TFDS dataset `name` (array_record) and return its directory.

    Examples are streamed to the shards (SHARD_BYTES each) in a shuffled order
    seeded by ORDER_SEED, so a TFDS slice such as "train[:10%]" is a random
    sample, the same every time. Built in a temporary folder and renamed at the
    end: a failure leaves nothing behind. (TFDS's own writer would hold a split
    in memory and, past 1 GB, spill through TensorFlow.)
    """
    require("tensorflow_datasets")
    import tensorflow_datasets as tfds

    root = default_data_dir(data_dir)
    parent = os.path.join(root, name)
    target = os.path.join(parent, DATASET_VERSION)
    check_data_dir(root)
    # One writer per dataset name (a second is refused naming the first), each in a directory of its own:
    # two preparations of one name from different sources can never mix their files.
    with target_lock(parent, f"dataset {name!r} in {root}"):
        if os.path.exists(os.path.join(target, "dataset_info.json")):
            raise SourceError(f"{target} already exists; remove it (rm -r {target}) or choose another --name")
        tmp = private_dir(parent, f"incomplete.{DATASET_VERSION}.")
        features = tfds.features.FeaturesDict(dict(p.features))
        try:
            infos = [_write_split(tmp, name, split, count, example, features, quiet)
                     for split, (count, example) in p.splits.items()]
            tfds.folder_dataset.write_metadata(data_dir=tmp, features=features, split_infos=infos,
                                               version=DATASET_VERSION, check_data=False, description=p.description,
                                               supervised_keys=("image", "label"))
            if os.path.isdir(target):  # a dataset folder without its metadata: an earlier writer's leftover
                shutil.rmtree(target)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if os.path.isdir(parent) and not os.listdir(parent):
                os.rmdir(parent)
    return target


def check_data_dir(root: str) -> None:
    """Refuse, in one line, a TFDS data dir that is a file or cannot be written."""
    if os.path.exists(root) and not os.path.isdir(root):
        raise SourceError(f"the TFDS data dir {root} is a file; pass --data_dir a folder (or set TFDS_DATA_DIR)")
    probe = root
    while not os.path.exists(probe):
        probe = os.path.dirname(probe) or "."
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SourceError(f"the TFDS data dir {root} is not writable ({probe} is read-only to this user); pass "
                          "--data_dir a folder you can write, or set TFDS_DATA_DIR to one")


def _write_split(directory, name, split, count, example, features, quiet):
    """Serialize and write one split's examples in shuffled order; its tfds.core.SplitInfo."""
    require("tensorflow_datasets")
    import tensorflow_datasets as tfds
    require("array_record")
    from array_record.python.array_record_module import ArrayRecordWriter

    if count == 0:
        raise SourceError(f"split {split!r} of the source has no examples; add some")
    start_time = time.perf_counter()
    order = np.random.default_rng(ORDER_SEED).permutation(count)
    paths, lengths, shard_bytes, total, writer = [], [], 0, 0, None

    def serialize(i):
        return features.serialize_example(example(int(i)))

    # Reading, checking and serializing run on threads (file reads and image decoding free the GIL),
    # a chunk at a time so that only CHUNK examples are ever in memory.
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for chunk in range(0, count, CHUNK):
            for record in pool.map(serialize, order[chunk:chunk + CHUNK]):
                if writer is None or shard_bytes >= SHARD_BYTES:
                    if writer is not None:
                        writer.close()
                    paths.append(os.path.join(directory, f"part-{split}-{len(paths)}"))
                    writer, shard_bytes = ArrayRecordWriter(paths[-1], "group_size:1"), 0
                    lengths.append(0)
                writer.write(record)
                lengths[-1] += 1
                shard_bytes += len(record)
                total += len(record)
    writer.close()
    for k, path in enumerate(paths):  # TFDS's file names: NAME-SPLIT.array_record-0000k-of-0000n
        os.rename(path, os.path.join(directory, f"{name}-{split}.array_record-{k:05d}-of-{len(paths):05d}"))
    if not quiet:
        print(f"{split}: {count:,} examples, {total / 2**20:,.1f} MiB in {len(paths)} shard(s), "
              f"{time.perf_counter() - start_time:.1f} s", flush=True)
    return tfds.core.SplitInfo(name=split, shard_lengths=lengths, num_bytes=total, filename_template=None)
