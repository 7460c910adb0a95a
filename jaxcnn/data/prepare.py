"""Prepare a dataset once, without TensorFlow, as TFDS array_record files that
`jaxcnn.data` then reads by name (`--config.dataset=NAME`).

    prepare("cifar10", "cifar-10-binary.tar.gz")            # -> <data dir>/cifar10_offline/1.0.0
    prepare("image_folder", "photos/", name="photos")        # photos/train/<class>/*.jpg ...

The written directory holds TFDS's dataset_info.json and features.json, so
`tfds.builder(NAME, data_dir=...)` finds it later from the files alone; no
builder class has to be imported. Kinds and their default names:

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

from jaxcnn.data import formats
from jaxcnn.data.formats import SourceError

KINDS = ("image_folder", "cifar10", "cifar100", "mnist")
DEFAULT_NAMES = {"cifar10": "cifar10_offline", "cifar100": "cifar100_offline", "mnist": "mnist_offline"}
DATASET_VERSION = "1.0.0"
RESERVED = ("fashion_mnist_offline", "synthetic")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


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


def _builder(name: str, p: formats.Plan, data_dir: str):
    import tensorflow_datasets as tfds
    from etils import epath
    from tensorflow_datasets.core import utils as tfds_utils

    class Prepared(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version(DATASET_VERSION)
        RELEASE_NOTES = {DATASET_VERSION: "Written by jaxcnn's prepare_data without TensorFlow."}

        @tfds_utils.classproperty
        @classmethod
        def code_path(cls):
            # This file: TFDS's package-resource lookup needs importlib_resources, which is not a dependency.
            return epath.Path(os.path.abspath(__file__))

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, description=p.description,
                                         features=tfds.features.FeaturesDict(dict(p.features)),
                                         supervised_keys=("image", "label"))

        def _split_generators(self, dl_manager):
            del dl_manager  # nothing to download: the source is local
            return {split: self._generate_examples(split) for split in p.splits}

        def _generate_examples(self, split):
            yield from p.splits[split]()

    Prepared.name = name
    return Prepared(data_dir=data_dir, file_format="array_record")


def prepare(kind: str, source: str, *, name: str | None = None, data_dir: str | None = None,
            quiet: bool = False) -> str:
    """Write `source` as TFDS dataset `name` (default: `default_name`) under the
    TFDS data dir and return the directory written. Refuses a bad source, a bad
    name or an existing dataset of that name with `SourceError` (one line)."""
    from jaxcnn.data.datasets import data_dir as default_data_dir

    if kind not in KINDS:
        raise SourceError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    name = name if name is not None else default_name(kind, source)
    check_name(name)
    root = default_data_dir(data_dir)
    target = os.path.join(root, name, DATASET_VERSION)
    if os.path.exists(os.path.join(target, "dataset_info.json")):
        raise SourceError(f"{target} already exists; remove it (rm -r {target}) or choose another --name")
    return write(name, plan(kind, source), data_dir=root, quiet=quiet)


def write(name: str, p: formats.Plan, *, data_dir: str | None = None, quiet: bool = False) -> str:
    """Write a `formats.Plan` as TFDS dataset `name` (array_record) and return its directory."""
    import tensorflow_datasets as tfds

    from jaxcnn.data.datasets import data_dir as default_data_dir

    if quiet:
        tfds.disable_progress_bar()
    builder = _builder(name, p, default_data_dir(data_dir))
    builder.download_and_prepare()
    return str(builder.data_dir)
