"""The model registry: every named variant of every family, the facts the rest
of the library asks about each family, and the pure constructors over both.

A family file defines ONE parametrised Flax module, states its facts once and
registers its named variants as field values:

    register_family(VGG, Family(head=lambda m: f"fc{6 + len(m.fc_features)}", torchvision=...))
    register_model("vgg16", VGG, input_shape=(224, 224, 3), stage_sizes=(2, 2, 3, 3, 3), torchvision="vgg16")

`create_model("vgg16", num_classes=10, kernel_plan="large")` then builds the
module with the variant's fields, overridden by the caller's. Fine-tuning,
weight import and the training engine ask `family_of(model)` and
`get_spec(name)` instead of switching on class names.

`create_model` is where a model's fields are checked, once, before a network is
built: each value's kind and range (jaxcnn.models._fields), `conv_mode` against
jaxcnn.layers.CONV_MODES, the family's `choices` and its `check` (the rules
that tie fields together). The modules themselves check only their input.
"""

from __future__ import annotations

import contextvars
import dataclasses
import fnmatch
from typing import Any, Callable, Mapping, Optional

import flax.linen as nn

from jaxcnn._validation import suggest
from jaxcnn.models._fields import check_fields

# Channel statistics (RGB or grey, images in [0, 1]) the variants are normalised with by default.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)


@dataclasses.dataclass(frozen=True)
class TorchvisionMap:
    """How a family's variables correspond to torchvision's state dict.

    prefix: model -> (our module path, a tuple of names) -> torchvision's module prefix ("layer1.0.conv1").
    required: fields that must keep these values for the weights to mean the same (torchvision's architecture).
    flatten_dense: our name of the first dense layer after a flatten, whose input axis torch orders (C, H, W).
    check: model -> a reason the model is not torchvision's architecture, or None (beyond `required`).
    rename_key: an old torchvision key -> the key its modules have now (checkpoints saved before a rename).
    """

    prefix: Callable[[nn.Module], Callable[[tuple], str]]
    required: dict = dataclasses.field(default_factory=dict)
    flatten_dense: Optional[str] = None
    check: Optional[Callable[[nn.Module], Optional[str]]] = None
    rename_key: Optional[Callable[[str], str]] = None


def _no_aux(model) -> float:
    return 0.0


def _no_progress(model) -> bool:
    return False


@dataclasses.dataclass(frozen=True)
class Family:
    """What the library asks about every model of one module class.

    head: model -> the top-level `params` key of its classifier (the dense layer
      whose width is num_classes); None where the family has no such head.
    aux_weight: model -> the weight of each auxiliary loss it sows as 'aux_logits'.
    takes_progress: model -> whether its __call__ takes `progress`, the fraction of training done (a float
      scalar in [0, 1], traced), which the training step passes in training (NASNet's ScheduledDropPath).
    torchvision: the state-dict map, where torchvision has the family.
    choices: {field: its allowed values} for the fields that pick one of a few named options (conv_mode,
      for every model that has it, is jaxcnn.layers.CONV_MODES without being declared here).
    check: fields -> None: the rules that tie the fields together (e.g. one width per stage), given every
      field of the model to be built ({field: value}: the module's defaults, the variant's values, the
      caller's overrides); raises a one-line ValueError naming the fields and the fix.

    `choices` and `check` run in create_model, once, before the module exists.
    """

    head: Optional[Callable[[nn.Module], str]] = None
    aux_weight: Callable[[nn.Module], float] = _no_aux
    takes_progress: Callable[[nn.Module], bool] = _no_progress
    torchvision: Optional[TorchvisionMap] = None
    choices: Mapping[str, tuple] = dataclasses.field(default_factory=dict)
    check: Optional[Callable[[dict], None]] = None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registered variant: `module(**fields)`, fed `input_shape` (H, W, C) images normalised with mean/std.

    torchvision: torchvision's name for the same network, where it has one.
    """

    name: str
    module: type
    fields: dict[str, Any]
    input_shape: tuple[int, int, int]
    description: str = ""
    mean: tuple = ()
    std: tuple = ()
    torchvision: Optional[str] = None

    @property
    def family(self) -> Family:
        return _FAMILIES.get(self.module, Family())


_REGISTRY: dict[str, ModelSpec] = {}
_FAMILIES: dict[type, Family] = {}

# Fields every Flax module carries that are not architecture switches.
_FLAX_INTERNAL = {"parent", "name"}


def register_family(module: type, family: Family) -> None:
    """State the facts of every model built from `module` (once, in its family file).

    A model built from the class directly (`ResNet(block=...)`, not through create_model) has its fields
    checked by the same checker when it is constructed (check_model), so a misspelt choice cannot quietly
    build another network."""
    if module in _FAMILIES:
        raise ValueError(f"family {module.__name__} is registered twice")
    _FAMILIES[module] = family
    original = module.__post_init__

    def __post_init__(self):
        original(self)
        if not _BUILDING.get():
            check_model(self)

    module.__post_init__ = __post_init__


# Set while create_model builds a module whose fields it has just checked.
_BUILDING = contextvars.ContextVar("jaxcnn_building_checked_model", default=False)


def check_model(model: nn.Module) -> None:
    """Refuse a model (an instance of a registered family's class) whose fields it cannot take: the checks
    create_model runs (jaxcnn.models._fields.check_fields), for a module built from its class directly."""
    module = type(model)
    spec = ModelSpec(name=module.__name__, module=module, fields={}, input_shape=(0, 0, 0))
    check_fields(spec, {f: getattr(model, f) for f in module_fields(module)})


def _default_normalization(input_shape) -> tuple[tuple, tuple]:
    h, _, c = input_shape
    if c == 1:
        return FASHION_MNIST_MEAN, FASHION_MNIST_STD
    return (CIFAR10_MEAN, CIFAR10_STD) if h <= 64 else (IMAGENET_MEAN, IMAGENET_STD)


def register_model(name: str, module: type, *, input_shape: tuple[int, int, int], description: str = "",
                   mean: tuple = (), std: tuple = (), torchvision: Optional[str] = None, **fields) -> None:
    """Register `name` as `module(**fields)` whose images are `input_shape` (H, W, C).

    mean, std: the per-channel normalisation of its inputs (default: Fashion-MNIST's for one channel,
    CIFAR-10's up to 64 px, else ImageNet's). torchvision: torchvision's name of the same network.
    """
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    allowed = module_fields(module)
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(f"{module.__name__} has no field(s) {unknown}; fields: {sorted(allowed)}")
    if not mean:
        mean, std = _default_normalization(input_shape)
    _REGISTRY[name] = ModelSpec(name, module, dict(fields), tuple(input_shape), description, tuple(mean),
                                tuple(std), torchvision)


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


def family_of(model: nn.Module) -> Family:
    """The facts of `model`'s family (an empty Family for a module no family file registered)."""
    return _FAMILIES.get(type(model), Family())


def create_model(name: str, **overrides) -> nn.Module:
    """The registered module `name`, its fields overridden by `overrides`.

    Every field of the model (the variant's and the caller's) is checked here, before the module is built:
    kind, range, conv_mode, the family's choices and its check (jaxcnn.models._fields.check_fields).
    Raises ValueError (TypeError for a value of the wrong kind) for an unknown name or field or a value the
    model cannot take, naming the field and what it can be.
    """
    return _create(name, overrides)


def _create(name: str, overrides: dict, *, where: str = "") -> nn.Module:
    """create_model; `where` prefixes the name of each overridden field in a message ("config.model.")."""
    spec = get_spec(name)
    allowed = module_fields(spec.module)
    for key in overrides:
        if key not in allowed:
            raise ValueError(
                (f"{where}{key}: " if where else "") +
                f"model {name!r} ({spec.module.__name__}) has no field {key!r}." + suggest(key, allowed) +
                f" Fields: {', '.join(sorted(allowed))}."
            )
    check_fields(spec, overrides, where=where)
    token = _BUILDING.set(True)  # checked above, with the variant's name and the config's key in any message
    try:
        return spec.module(**{**spec.fields, **overrides})
    finally:
        _BUILDING.reset(token)


def list_models(pattern: Optional[str] = None, *, family: Optional[str] = None) -> list[str]:
    """Registered names, sorted. `pattern` is shell-style ("resnet*", "vgg1?_bn"); `family` filters by
    module class name (e.g. 'ResNet')."""
    names = sorted(_REGISTRY)
    if pattern is not None:
        if not isinstance(pattern, str):
            raise TypeError(f"list_models pattern must be a str like 'resnet*', got {type(pattern).__name__}")
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if family is not None:
        names = [n for n in names if _REGISTRY[n].module.__name__.lower() == family.lower()]
    return names


def variants_of(module: type) -> list[ModelSpec]:
    """The registered variants built from `module`, in name order."""
    return [_REGISTRY[n] for n in sorted(_REGISTRY) if _REGISTRY[n].module is module]


def default_input_shape(name: str) -> tuple[int, int, int]:
    """The (H, W, C) of the images the paper feeds model `name`."""
    return get_spec(name).input_shape
