"""The dataset registry: which code gives a dataset name its examples, as the model registry does for models.

Three kinds of name:

* generated: drawn in code, no files ("synthetic", "synthetic_shapes", "synthetic_shape_classes"):
  `draw(split, *, shape, size, num_classes, seed) -> ArrayDataset` of the base split "train" or "test";
  open_split slices them like any other split.
* whole: held whole in memory by their own module (the garment canvases of jaxcnn.data.canvases, whose
  labels are boxes, masks or region crops): `load(name, split, data_dir) -> ArrayDataset`, and optionally
  `identity(name, data_dir) -> {"class_names", "splits", "fingerprint"}`, what a workdir records of the data
  (jaxcnn.data.identity; without one, a run records only the name).
* everything else: a TFDS dataset prepared in array_record format under the data dir (jaxcnn's offline
  Fashion-MNIST, scripts/prepare_data.py's, stock TFDS ones), read by jaxcnn.data.sources.

An entry names its function as "module:attribute", imported the first time the name is used: a name costs no
import (the canvases need tensorflow_datasets) until it is read. `register_dataset` adds names.
"""

from __future__ import annotations

import importlib
from typing import Callable, Optional, Union

from jaxcnn._validation import check_choice

KINDS = ("generated", "whole")

_DATASETS: dict[str, tuple[str, Union[str, Callable]]] = {
    "synthetic": ("generated", "jaxcnn.data.arrays:synthetic_split"),
    "synthetic_shapes": ("generated", "jaxcnn.data.shapes:shapes_split"),
    "synthetic_shape_classes": ("generated", "jaxcnn.data.shapes:shape_classes_split"),
    **{name: ("whole", "jaxcnn.data.canvases:load") for name in (
        "fashion_mnist_detection", "fashion_mnist_detection_ss", "fashion_mnist_segmentation",
        "fashion_mnist_detection_tiny", "fashion_mnist_detection_tiny_ss", "fashion_mnist_segmentation_tiny",
        "fashion_mnist_rcnn_crops", "fashion_mnist_rcnn_crops_tiny")},
}
# The identity functions of whole datasets, by name (see the module docstring).
_IDENTITIES: dict[str, Union[str, Callable]] = {name: "jaxcnn.data.canvases:identity"
                                               for name, (kind, _) in _DATASETS.items() if kind == "whole"}


def register_dataset(name: str, kind: str, fn: Union[str, Callable], *,
                     identity: Optional[Union[str, Callable]] = None) -> None:
    """Make dataset `name` come from `fn` (a callable, or "module:attribute" imported on first use); `kind`
    "generated" or "whole" (see the module docstring); `identity`, of a whole dataset: what a workdir records
    of it, in the same two forms."""
    check_choice("dataset kind", kind, KINDS)
    if name in _DATASETS:
        raise ValueError(f"dataset {name!r} is registered twice")
    if identity is not None and kind != "whole":
        raise ValueError(f"dataset {name!r}: only a whole dataset takes identity= (a generated one is "
                         "identified by the arguments that draw it)")
    _DATASETS[name] = (kind, fn)
    if identity is not None:
        _IDENTITIES[name] = identity


def _load(fn: Union[str, Callable]) -> Callable:
    if isinstance(fn, str):
        module, _, attribute = fn.partition(":")
        fn = getattr(importlib.import_module(module), attribute)
    return fn


def _resolve(name: str) -> Callable:
    kind, fn = _DATASETS[name]
    fn = _load(fn)
    _DATASETS[name] = (kind, fn)
    return fn


def generated(name: str) -> Optional[Callable]:
    """The drawing function of a generated dataset, or None."""
    return _resolve(name) if _DATASETS.get(name, ("",))[0] == "generated" else None


def whole_loader(name: str) -> Optional[Callable]:
    """The loader of a dataset held whole by its own module, or None."""
    return _resolve(name) if _DATASETS.get(name, ("",))[0] == "whole" else None


def identifier(name: str) -> Optional[Callable]:
    """The identity function of a whole dataset that has one, or None."""
    if name not in _IDENTITIES:
        return None
    _IDENTITIES[name] = _load(_IDENTITIES[name])
    return _IDENTITIES[name]


def kind_of(name: str) -> Optional[str]:
    """"generated" or "whole" for a registered name, None for any other (a TFDS dataset under the data dir)."""
    return _DATASETS.get(name, (None,))[0]


def names(kind: Optional[str] = None) -> list[str]:
    """The registered names (of one kind)."""
    return sorted(n for n, (k, _) in _DATASETS.items() if kind is None or k == kind)
