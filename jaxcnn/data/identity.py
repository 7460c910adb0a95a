"""What a dataset is, in a few lines a workdir can keep: its name, class names,
split sizes and a fingerprint of its prepared files' metadata.

    ident = identity("photos", data_dir="~/tensorflow_datasets")
    # {"dataset": "photos", "class_names": ["cat", "dog"], "splits": {"test": 4, "train": 32},
    #  "fingerprint": "sha256:9f2c..."}
    mismatch(recorded, ident)   # None, or one line saying what changed

The fingerprint hashes what describes the stored examples without reading
them: the features (features.json), every split's example and byte counts
and shard lengths, and the name and size of every data file. Preparing the
same source again gives the same fingerprint (the writer's order and
serialization are deterministic); preparing another folder under the same
name does not. Sets drawn in code (synthetic, synthetic_shapes) are
fingerprinted by the arguments that draw them; a dataset held whole by its own
module says what it is itself (the dataset registry's `identity` of it: the
garment canvases fingerprint their prepared files as above).

A training workdir records this in config.json (key "data"); resuming,
evaluating, predicting and fine-tuning compare it with the data found now.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

from jaxcnn.data import registry
from jaxcnn.data.arrays import data_dir as resolve
from jaxcnn.data.sources import open_split, tfds_builder

KEY = "data"  # the config.json key


def _digest(obj) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def files_fingerprint(directory: str, info) -> str:
    """The metadata of a prepared TFDS directory (`info`: its DatasetInfo): features, splits, and each data
    file's name and size."""
    features_path = os.path.join(directory, "features.json")
    features = None
    if os.path.isfile(features_path):
        with open(features_path, "rb") as f:
            features = hashlib.sha256(f.read()).hexdigest()
    splits = {s: {"examples": int(v.num_examples), "bytes": int(v.num_bytes),
                  "shards": [int(n) for n in v.shard_lengths]} for s, v in info.splits.items()}
    files = sorted((f, os.path.getsize(os.path.join(directory, f))) for f in os.listdir(directory)
                   if ".array_record" in f or ".tfrecord" in f)
    return _digest({"features": features, "splits": splits, "files": files})


def identity(name: str, *, data_dir: Optional[str] = None, synthetic_shape=(28, 28, 1),
             synthetic_size: int = 1024, num_classes: int = 10, seed: int = 0) -> dict:
    """The identity of dataset `name` as found now (metadata only; see the module docstring). Raises what
    opening the dataset raises (ValueError for an unknown or unprepared one)."""
    kind = registry.kind_of(name)
    if kind == "generated":
        split = open_split(name, "train[:1]", synthetic_shape=synthetic_shape, synthetic_size=synthetic_size,
                           num_classes=num_classes, seed=seed)
        return {"dataset": name, "class_names": [str(n) for n in split.class_names],
                "splits": {"train": int(synthetic_size), "test": int(synthetic_size)},
                "fingerprint": _digest({"generated": name, "shape": list(synthetic_shape), "size": synthetic_size,
                                        "num_classes": num_classes, "seed": seed})}
    if kind == "whole":  # its own module says what it is (nothing to compare when it cannot)
        describe = registry.identifier(name)
        return {"dataset": name, **(describe(name, resolve(data_dir)) if describe is not None else {})}
    builder = tfds_builder(name, resolve(data_dir))
    info = builder.info
    _, label_key = info.supervised_keys or ("image", "label")
    label = info.features[label_key]
    names = [str(n) for n in getattr(label, "names", None) or []]
    return {"dataset": name, "class_names": names,
            "splits": {s: int(v.num_examples) for s, v in sorted(info.splits.items())},
            "fingerprint": files_fingerprint(str(builder.data_dir), info)}


def of_config(config) -> dict:
    """`identity` of config.dataset under the config's data_dir and synthetic settings."""
    return identity(config.dataset, data_dir=config.data_dir or None, synthetic_shape=tuple(config.synthetic_shape),
                    synthetic_size=config.synthetic_size, num_classes=config.num_classes, seed=config.seed)


def _names(names) -> str:
    text = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return text if len(text) <= 80 else text[:77] + "..."


def mismatch(recorded: Optional[dict], found: dict) -> Optional[str]:
    """None when `found` is the data `recorded` describes (or nothing was recorded), else a short phrase
    saying what differs: the class names, the split sizes or (the same names and sizes) the files."""
    if not isinstance(recorded, dict) or "fingerprint" not in recorded:
        return None
    if recorded.get("dataset") != found.get("dataset"):
        return f"the run used dataset {recorded.get('dataset')!r}, this is {found.get('dataset')!r}"
    if list(recorded.get("class_names", [])) != list(found.get("class_names", [])):
        return (f"its classes were {_names(list(recorded.get('class_names', [])))}, now they are "
                f"{_names(list(found.get('class_names', [])))}")
    if dict(recorded.get("splits", {})) != dict(found.get("splits", {})):
        fmt = lambda s: ", ".join(f"{k} {v}" for k, v in sorted(s.items()))  # noqa: E731
        return f"its splits held {fmt(recorded.get('splits', {}))} examples, now {fmt(found.get('splits', {}))}"
    if recorded["fingerprint"] != found.get("fingerprint"):
        return "the same classes and split sizes, but other files (it was prepared again from other images)"
    return None


class DataChanged(ValueError):
    """The dataset a workdir was trained on is not the one found under its name now."""


def check(recorded: Optional[dict], found: dict, workdir: str, what: str) -> None:
    """Raise DataChanged (one line naming the workdir, the dataset, what changed and the fix) when `found`
    is not the data `recorded`; `what`: the refused action ("resume", "evaluate", ...)."""
    why = mismatch(recorded, found)
    if why is None:
        return
    raise DataChanged(f"cannot {what} {workdir}: dataset {found.get('dataset')!r} is not the data this run was "
                      f"trained on ({why}); restore that data (prepare the original source again under the same "
                      f"name), or train a new run in a new --workdir.")
