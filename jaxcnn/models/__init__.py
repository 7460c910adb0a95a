"""Every classic architecture, one file per family, joined by the registry.

Importing this package imports each family module, which registers its named
variants; no list of files to keep up to date.
"""

import importlib
import pkgutil

from jaxcnn.models.registry import (
    ModelSpec,
    create_model,
    default_input_shape,
    get_spec,
    list_models,
    module_fields,
    register_model,
)

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_") and _info.name != "registry":
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "ModelSpec",
    "create_model",
    "default_input_shape",
    "get_spec",
    "list_models",
    "module_fields",
    "register_model",
]
