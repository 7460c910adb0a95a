"""Every classic architecture, one file per family, joined by the registry,
and what is asked of a model as a whole: its summary (shapes, parameters,
multiply-adds), its parameter count, and FCN's convolutionalisation.

Importing this package imports each family module, which registers its named
variants and its family's facts; no list of files to keep up to date.
"""

import importlib
import pkgutil

from jaxcnn.models.registry import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Family,
    ModelSpec,
    TorchvisionMap,
    check_model,
    create_model,
    default_input_shape,
    family_of,
    get_spec,
    list_models,
    module_fields,
    register_family,
    register_model,
    variants_of,
)

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_") and _info.name != "registry":
        importlib.import_module(f"{__name__}.{_info.name}")

from jaxcnn.models.convolutionalize import convolutionalize  # noqa: E402
from jaxcnn.models.params import count_params  # noqa: E402
from jaxcnn.models.summary import Summary, summary  # noqa: E402

__all__ = [
    "CIFAR10_MEAN", "CIFAR10_STD", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "IMAGENET_MEAN", "IMAGENET_STD",
    "Family", "ModelSpec", "Summary", "TorchvisionMap", "check_model", "convolutionalize", "count_params", "create_model",
    "default_input_shape", "family_of", "get_spec", "list_models", "module_fields", "register_family",
    "register_model", "summary", "variants_of",
]
