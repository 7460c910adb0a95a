"""torchvision state dicts as Flax variables, by one rule per kind of tensor.

    convolution  torch (O, I, KH, KW)  -> kernel (KH, KW, I, O)        HWIO
                 (flipped on KH, KW when the model's conv_mode is "convolution")
    linear       torch (out, in)       -> kernel (in, out)
    first linear after a flatten: torch flattens (C, H, W), we flatten (H, W, C),
                 so its input axis is permuted: (out, C*H*W) -> (H*W*C, out)
    BatchNorm    weight, bias          -> params scale, bias
                 running_mean, running_var -> batch_stats mean, var
                 num_batches_tracked   ignored

Which module is which is a fact of each family (`jaxcnn.models.family_of(model)
.torchvision`); which variants torchvision has, of each registry entry
(`get_spec(name).torchvision`). Nothing here knows a family by name.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Optional

import jax.numpy as jnp
import numpy as np

from jaxcnn.models import family_of, get_spec, list_models
from jaxcnn.pretrained.files import read_state_dict
from jaxcnn.pretrained.tree import checked_model, leaves_with_paths, set_path, variables_shape

# Registry name -> torchvision's name for the same architecture.
TORCHVISION_MODELS = {n: get_spec(n).torchvision for n in list_models() if get_spec(n).torchvision}

_BN_LEAVES = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One tensor of the conversion: torch key and shape, our collection/path and shape, and the rule."""

    torch_key: str
    torch_shape: tuple
    collection: str  # "params" or "batch_stats"
    path: tuple  # the keys inside the collection
    shape: tuple  # our shape
    rule: str  # "conv", "linear", "linear_after_flatten", "copy"
    flatten_chw: Optional[tuple] = None  # (C, H, W) of the flattened maps, for linear_after_flatten

    @property
    def flax_name(self) -> str:
        return "/".join((self.collection,) + self.path)


def _check_architecture(name: str, model) -> None:
    """Refuse field overrides that leave torchvision's architecture (its weights would not mean the same)."""
    tv = family_of(model).torchvision
    for field, want in tv.required.items():
        got = getattr(model, field)
        if got != want:
            raise ValueError(f"model {name!r} with {field}={got!r} has no torchvision counterpart "
                             f"(torchvision's {TORCHVISION_MODELS[name]} has {field}={want!r}); drop that override.")
    reason = tv.check(model) if tv.check is not None else None
    if reason:
        raise ValueError(f"model {name!r} with {reason} has no torchvision counterpart; drop that override.")


def _model_and_tree(name: str, overrides: dict):
    try:
        return _cached_model_and_tree(name, tuple(sorted(overrides.items())))
    except TypeError:  # an unhashable override (a list): no cache
        return _build_model_and_tree(name, overrides)


@functools.lru_cache(maxsize=32)
def _cached_model_and_tree(name: str, overrides: tuple):
    return _build_model_and_tree(name, dict(overrides))


def _build_model_and_tree(name: str, overrides: dict):
    model = checked_model(name, overrides)  # unknown names: ValueError listing the registry
    if name not in TORCHVISION_MODELS:
        others = [n for n, tv in TORCHVISION_MODELS.items() if tv == name]
        hint = f" (torchvision's {name} is our {others[0]!r})" if others else ""
        raise ValueError(f"model {name!r} has no torchvision counterpart{hint}; models with one: "
                         f"{', '.join(TORCHVISION_MODELS)}.")
    _check_architecture(name, model)
    return model, variables_shape(name, model)


def conversion_plan(name: str, **overrides) -> list[Entry]:
    """Every tensor of registry model `name` (with field `overrides`) and its torchvision key, shape and rule.

    Raises ValueError for an unknown name, a model without a torchvision
    counterpart, or overrides that change the architecture away from torchvision's.
    """
    model, tree = _model_and_tree(name, overrides)
    tv = family_of(model).torchvision
    prefix = tv.prefix(model)
    plan = []
    for collection in ("params", "batch_stats"):
        for path, leaf in leaves_with_paths(tree.get(collection, {})):
            module, leaf_name = path[:-1], path[-1]
            shape = tuple(leaf.shape)
            flatten_chw = None
            if leaf_name == "kernel" and len(shape) == 4:
                rule, torch_name, torch_shape = "conv", "weight", (shape[3], shape[2], shape[0], shape[1])
            elif leaf_name == "kernel" and len(shape) == 2:
                torch_name, torch_shape = "weight", (shape[1], shape[0])
                rule = "linear"
                if module[-1] == tv.flatten_dense:
                    channels = model.widths[-1]
                    side = math.isqrt(shape[0] // channels)
                    flatten_chw = (channels, side, side)
                    rule = "linear_after_flatten"
            else:
                rule, torch_name, torch_shape = "copy", _BN_LEAVES[leaf_name], shape
            plan.append(Entry(f"{prefix(module)}.{torch_name}", torch_shape, collection, path, shape, rule,
                              flatten_chw))
    return plan


def torchvision_keys(name: str, **overrides) -> dict[str, tuple]:
    """The state-dict keys and shapes torchvision's counterpart of `name` has
    (BatchNorm's num_batches_tracked, shape (), included)."""
    plan = conversion_plan(name, **overrides)
    keys = {e.torch_key: e.torch_shape for e in plan}
    for e in plan:
        if e.path[-1] == "mean" and e.collection == "batch_stats":
            keys[e.torch_key.rsplit(".", 1)[0] + ".num_batches_tracked"] = ()
    return keys


def _convert(entry: Entry, value: np.ndarray, conv_mode: str) -> np.ndarray:
    if entry.rule == "conv":
        out = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        if conv_mode == "convolution":  # the textbook convolution flips the kernel: flip it back
            out = out[::-1, ::-1]
    elif entry.rule == "linear":
        out = value.T  # (out, in) -> (in, out)
    elif entry.rule == "linear_after_flatten":
        c, h, w = entry.flatten_chw
        out = value.reshape(value.shape[0], c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, value.shape[0])
    else:
        out = value
    return np.ascontiguousarray(out)


def load_torchvision_weights(name: str, state_dict_or_path, **overrides) -> dict:
    """Flax variables for registry model `name` from torchvision weights.

    Args:
      name: a registry name with a torchvision counterpart (TORCHVISION_MODELS).
      state_dict_or_path: a torchvision state dict (mapping of torch tensors or
        numpy arrays), a `.safetensors` file, or a torch file (read with
        torch.load(weights_only=True)).
      **overrides: model fields, as for `create_model(name, **overrides)`
        (e.g. num_classes for weights with another classifier).

    Returns:
      {'params': ..., 'batch_stats': ...} (batch_stats only for models with
      BatchNorm, as `model.init` gives), float32 jax arrays, for
      `create_model(name, **overrides).apply(variables, x)` on NHWC images
      normalised with the registry's mean and std (ImageNet's).

    Raises ValueError naming the first missing or unexpected key or the first
    shape that does not match, for an unknown name, or for a model without a
    torchvision counterpart.
    """
    plan = conversion_plan(name, **overrides)
    model, _ = _model_and_tree(name, overrides)
    family = family_of(model)
    state = read_state_dict(state_dict_or_path)
    if family.torchvision.rename_key is not None:
        state = {family.torchvision.rename_key(k): v for k, v in state.items()}
    tv = TORCHVISION_MODELS[name]
    expected = {e.torch_key for e in plan}
    bn_prefixes = {e.torch_key.rsplit(".", 1)[0] for e in plan if e.collection == "batch_stats"}
    missing = [e.torch_key for e in plan if e.torch_key not in state]
    if missing:
        raise ValueError(f"state dict has no key {missing[0]!r} that model {name!r} needs ({len(missing)} of "
                         f"{len(plan)} keys missing); pass a state dict of torchvision's {tv} "
                         f"(model.state_dict()), or the registry name of the model these weights are for.")
    unexpected = [k for k in state if k not in expected and not (
        k.endswith(".num_batches_tracked") and k.rsplit(".", 1)[0] in bn_prefixes)]
    if unexpected:
        raise ValueError(f"unexpected key {unexpected[0]!r} in the state dict for model {name!r} "
                         f"({len(unexpected)} unexpected); these weights are not torchvision's {tv}: pass the "
                         "registry name of the model they are for (or the field overrides that match them).")
    head = family.torchvision.prefix(model)((family.head(model),))
    variables: dict[str, Any] = {}
    for e in plan:
        value = state[e.torch_key]
        if tuple(value.shape) != tuple(e.torch_shape):
            fix = (f"pass num_classes={value.shape[0]} (these weights classify {value.shape[0]} classes)"
                   if e.torch_key.startswith(head + ".") and value.shape[1:] == tuple(e.torch_shape)[1:]
                   else "the weights are for another variant or size; pass the matching name or field overrides")
            raise ValueError(f"state dict key {e.torch_key!r} has shape {tuple(value.shape)} but model {name!r} "
                             f"needs {tuple(e.torch_shape)} (for {e.flax_name} {e.shape}); {fix}.")
        if value.dtype.kind in "iub":  # float16/32/64 and bfloat16 (kind "V" in ml_dtypes) are read
            raise ValueError(f"state dict key {e.torch_key!r} has dtype {value.dtype}; expected floating point.")
        set_path(variables.setdefault(e.collection, {}), e.path,
                 jnp.asarray(_convert(e, np.asarray(value, np.float32), model.conv_mode)))
    return variables


def torchvision_counterparts() -> list[str]:
    """Registry names with a torchvision counterpart (and so importable weights)."""
    return [n for n in list_models() if n in TORCHVISION_MODELS]
