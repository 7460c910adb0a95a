"""The model registry: every named variant of every family, and the pure
constructors over it.

A family file defines ONE parametrised Flax module and registers its named
variants as field values:

    register_model("vgg16", VGG, input_shape=(224, 224, 3), stage_sizes=(2, 2, 3, 3, 3))

`create_model("vgg16", num_classes=10, kernel_plan="large")` then builds the
module with the variant's fields, overridden by the caller's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn

from jaxcnn._validation import suggest


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    module: type
    fields: dict[str, Any]
    input_shape: tuple[int, int, int]
    description: str = ""


_REGISTRY: dict[str, ModelSpec] = {}

# Fields every Flax module carries that are not architecture switches.
_FLAX_INTERNAL = {"parent", "name"}


def register_model(name: str, module: type, *, input_shape: tuple[int, int, int],
                   description: str = "", **fields) -> None:
    """Register `name` as `module(**fields)` whose images are `input_shape` (H, W, C)."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    allowed = module_fields(module)
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(f"{module.__name__} has no field(s) {unknown}; fields: {sorted(allowed)}")
    _REGISTRY[name] = ModelSpec(name, module, dict(fields), tuple(input_shape), description)


def module_fields(module: type) -> list[str]:
    """The dataclass fields of a Flax module class that a user may set."""
    return [f.name for f in dataclasses.fields(module) if f.name not in _FLAX_INTERNAL and f.init]


def get_spec(name: str) -> ModelSpec:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}." + suggest(name, _REGISTRY) +
            f" Known models: {', '.join(sorted(_REGISTRY))}."
        ) from None


def create_model(name: str, **overrides) -> nn.Module:
    """The registered module `name`, its fields overridden by `overrides`.

    Raises ValueError for an unknown name or field, naming what exists.
    """
    spec = get_spec(name)
    allowed = module_fields(spec.module)
    for key in overrides:
        if key not in allowed:
            raise ValueError(
                f"model {name!r} ({spec.module.__name__}) has no field {key!r}." + suggest(key, allowed) +
                f" Fields: {', '.join(sorted(allowed))}."
            )
    return spec.module(**{**spec.fields, **overrides})


def list_models(family: str | None = None) -> list[str]:
    """Registered names, sorted; `family` filters by module class name (e.g. 'ResNet')."""
    names = sorted(_REGISTRY)
    if family is not None:
        names = [n for n in names if _REGISTRY[n].module.__name__.lower() == family.lower()]
    return names


def default_input_shape(name: str) -> tuple[int, int, int]:
    """The (H, W, C) of the images the paper feeds model `name`."""
    return get_spec(name).input_shape
