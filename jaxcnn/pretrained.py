"""Pretrained weights: torchvision state dicts and our own orbax checkpoints
as Flax variables.

    variables = jaxcnn.load_torchvision_weights("resnet50", "resnet50-0676ba61.pth")
    model = jaxcnn.create_model("resnet50")
    logits = model.apply(variables, images)          # images NHWC, normalised with IMAGENET_MEAN/STD

    variables = jaxcnn.load_checkpoint_weights("fashion_cnn_small", "runs/fmnist")   # scripts/train.py's workdir

The conversion is explicit, one rule per kind of tensor (`conversion_plan`
lists every key):

    convolution  torch (O, I, KH, KW)  -> kernel (KH, KW, I, O)        HWIO
                 (flipped on KH, KW when the model's conv_mode is "convolution")
    linear       torch (out, in)       -> kernel (in, out)
    first linear after a flatten: torch flattens (C, H, W), we flatten (H, W, C),
                 so its input axis is permuted: (out, C*H*W) -> (H*W*C, out)
    BatchNorm    weight, bias          -> params scale, bias
                 running_mean, running_var -> batch_stats mean, var
                 num_batches_tracked   ignored

Models with a torchvision counterpart: alexnet_owt (torchvision's alexnet),
vgg11/13/16/19 and their _bn variants, resnet18/34/50/101/152 and
densenet121/161/169/201 (see TORCHVISION_MODELS). Field overrides that keep
the architecture torchvision's (num_classes, widths, conv_mode, ...) are
allowed; the state dict's shapes must then match the overridden model.

Files are read safely: `.safetensors` (with the `safetensors` package when it
is installed, else a small reader of the format here), anything else with
`torch.load(path, weights_only=True)`, which refuses pickled objects other
than tensors. torch is imported only to read such a file or convert torch
tensors; it is not a dependency of jaxcnn.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.models import create_model, get_spec, list_models

# Channel statistics of ImageNet (RGB, images in [0, 1]) that torchvision's weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Registry name -> torchvision's name for the same architecture.
TORCHVISION_MODELS = {
    "alexnet_owt": "alexnet",
    **{f"vgg{d}{bn}": f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    **{f"resnet{d}": f"resnet{d}" for d in (18, 34, 50, 101, 152)},
    **{f"densenet{d}": f"densenet{d}" for d in (121, 161, 169, 201)},
}

# torchvision's classifier of each family (the layer whose width is num_classes).
_HEADS = {"AlexNet": "classifier.6", "VGG": "classifier.6", "ResNet": "fc", "DenseNet": "classifier"}

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


# ---------------------------------------------------------------------------------------------------------
# Module paths: ours -> torchvision's.


def _resnet_prefix(path: tuple) -> str:
    out = []
    for i, part in enumerate(path):
        m = re.fullmatch(r"layer(\d+)_(\d+)", part)
        if m:
            out += [f"layer{m.group(1)}", m.group(2)]
        elif i > 0 and path[i - 1] == "downsample":
            out.append({"conv": "0", "bn": "1"}[part])
        else:
            out.append(part)
    return ".".join(out)


def _densenet_prefix(path: tuple) -> str:
    return "classifier" if path[0] == "classifier" else "features." + ".".join(path)


def _vgg_prefix(model) -> dict:
    """torchvision's VGG: features is one Sequential (conv, [bn], relu per layer, a pool per stage);
    classifier is Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear."""
    names, idx = {}, 0
    for s, n in enumerate(model.stage_sizes, start=1):
        for i in range(1, n + 1):
            names[f"conv{s}_{i}"] = f"features.{idx}"
            idx += 1
            if model.batch_norm:
                names[f"bn{s}_{i}"] = f"features.{idx}"
                idx += 1
            idx += 1  # ReLU
        idx += 1  # MaxPool
    names.update({"fc6": "classifier.0", "fc7": "classifier.3", "fc8": "classifier.6"})
    return names


# torchvision's alexnet: features Conv(0) ReLU MaxPool Conv(3) ReLU MaxPool Conv(6) ReLU Conv(8) ReLU Conv(10)
# ReLU MaxPool; classifier Dropout Linear(1) ReLU Dropout Linear(4) ReLU Linear(6).
_ALEXNET = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
            "conv5": "features.10", "fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"}


def _check_architecture(name: str, model) -> None:
    """Refuse field overrides that leave torchvision's architecture (its weights would not mean the same)."""
    family = type(model).__name__
    required = {
        "AlexNet": dict(lrn=False, groups=1, overlap_pool=True, conv1_padding=2),
        "VGG": dict(kernel_plan="3x3"),
        "ResNet": dict(stem="imagenet", preact=False, shortcut="B", skip=True, widen_factor=1),
        "DenseNet": dict(stem="imagenet", bottleneck=True, compression=0.5),
    }[family]
    for field, want in required.items():
        got = getattr(model, field)
        if got != want:
            raise ValueError(f"model {name!r} with {field}={got!r} has no torchvision counterpart "
                             f"(torchvision's {TORCHVISION_MODELS[name]} has {field}={want!r}); drop that override.")
    if family in ("AlexNet", "VGG") and len(model.fc_features) != 2:
        raise ValueError(f"model {name!r} with fc_features={tuple(model.fc_features)} has no torchvision "
                         "counterpart (torchvision has two hidden linear layers); drop that override.")


def _input_shape(name: str, model) -> tuple:
    h, w, c = get_spec(name).input_shape
    size = getattr(model, "image_size", None)
    return (size, size, c) if size else (h, w, c)


def _model_and_tree(name: str, overrides: dict):
    try:
        return _cached_model_and_tree(name, tuple(sorted(overrides.items())))
    except TypeError:  # an unhashable override (a list): no cache
        return _build_model_and_tree(name, overrides)


@functools.lru_cache(maxsize=32)
def _cached_model_and_tree(name: str, overrides: tuple):
    return _build_model_and_tree(name, dict(overrides))


def _build_model_and_tree(name: str, overrides: dict):
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    get_spec(name)  # unknown names: ValueError listing the registry
    if name not in TORCHVISION_MODELS:
        hint = " (torchvision's alexnet is our 'alexnet_owt')" if name == "alexnet" else ""
        raise ValueError(f"model {name!r} has no torchvision counterpart{hint}; models with one: "
                         f"{', '.join(TORCHVISION_MODELS)}.")
    model = create_model(name, **overrides)
    _check_architecture(name, model)
    x = jax.ShapeDtypeStruct((1,) + _input_shape(name, model), jnp.float32)
    tree = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape, x.dtype)))
    return model, dict(tree)


def _leaves_with_paths(tree) -> list:
    out = []

    def visit(node, path):
        if hasattr(node, "items"):
            for k, v in node.items():
                visit(v, path + (k,))
        else:
            out.append((path, node))

    visit(tree, ())
    return out


def conversion_plan(name: str, **overrides) -> list[Entry]:
    """Every tensor of registry model `name` (with field `overrides`) and its torchvision key, shape and rule.

    Raises ValueError for an unknown name, a model without a torchvision
    counterpart, or overrides that change the architecture away from torchvision's.
    """
    model, tree = _model_and_tree(name, overrides)
    family = type(model).__name__
    vgg_names = _vgg_prefix(model) if family == "VGG" else None
    flatten_dense = "fc6" if family in ("AlexNet", "VGG") else None
    plan = []
    for collection in ("params", "batch_stats"):
        for path, leaf in _leaves_with_paths(tree.get(collection, {})):
            module, leaf_name = path[:-1], path[-1]
            if family == "ResNet":
                prefix = _resnet_prefix(module)
            elif family == "DenseNet":
                prefix = _densenet_prefix(module)
            elif family == "VGG":
                prefix = vgg_names[module[0]]
            else:
                prefix = _ALEXNET[module[0]]
            shape = tuple(leaf.shape)
            flatten_chw = None
            if leaf_name == "kernel" and len(shape) == 4:
                rule, torch_name, torch_shape = "conv", "weight", (shape[3], shape[2], shape[0], shape[1])
            elif leaf_name == "kernel" and len(shape) == 2:
                torch_name, torch_shape = "weight", (shape[1], shape[0])
                rule = "linear"
                if module[-1] == flatten_dense:
                    channels = model.widths[-1]
                    hw = shape[0] // channels
                    side = math.isqrt(hw)
                    flatten_chw = (channels, side, side)
                    rule = "linear_after_flatten"
            else:
                rule, torch_name, torch_shape = "copy", _BN_LEAVES[leaf_name], shape
            plan.append(Entry(f"{prefix}.{torch_name}", torch_shape, collection, path, shape, rule, flatten_chw))
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


# ---------------------------------------------------------------------------------------------------------
# Reading.

_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
              "U8": "u1", "BOOL": "?"}


def _read_safetensors(path: str) -> dict:
    """The safetensors format (8-byte little-endian header length, a JSON header of dtype/shape/data_offsets,
    then the raw little-endian data): arrays only, nothing executed."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return dict(load_file(path))
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if info["dtype"] == "BF16":
            import ml_dtypes

            dtype = np.dtype(ml_dtypes.bfloat16)
        elif info["dtype"] in _ST_DTYPES:
            dtype = np.dtype(_ST_DTYPES[info["dtype"]])
        else:
            raise ValueError(f"{path}: tensor {key!r} has safetensors dtype {info['dtype']}, which is not read.")
        start, end = info["data_offsets"]
        out[key] = np.frombuffer(data[start:end], dtype=dtype).reshape(info["shape"]).copy()
    return out


def _to_numpy(key, value) -> np.ndarray:
    if isinstance(value, np.ndarray) or isinstance(value, (jax.Array, np.generic)):
        return np.asarray(value)
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor (torch is not imported for this)
        t = value.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        return t.numpy()
    raise TypeError(f"state dict value for {key!r} is a {type(value).__name__}; expected a torch tensor or a "
                    "numpy array.")


def read_state_dict(state_dict_or_path) -> dict[str, np.ndarray]:
    """A state dict as {key: numpy array}, from a mapping of torch tensors or numpy
    arrays, a `.safetensors` file, or a torch file read with `weights_only=True`.

    A torch file that also holds other objects (a pickled module, an optimizer
    with custom classes) is refused, not unpickled. A checkpoint dict with the
    weights under 'state_dict' or 'model' is unwrapped, and a 'module.' prefix
    (torch's DataParallel) is dropped.
    """
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        path = os.fspath(state_dict_or_path)
        if not os.path.isfile(path):
            raise ValueError(f"no weights file {path!r}; pass an existing .pth/.pt/.safetensors file or a state dict.")
        if path.endswith(".safetensors"):
            raw = _read_safetensors(path)
        else:
            try:
                import torch
            except ImportError:
                raise ValueError(f"reading {path} needs torch (pip install torch), which is optional for jaxcnn; "
                                 "or convert the file to .safetensors, or pass a dict of numpy arrays.") from None
            try:
                raw = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # UnpicklingError and friends: something other than tensors in the file
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
                raise ValueError(f"refusing to read {path}: torch.load(weights_only=True) failed ({first}). Only "
                                 "plain state dicts of tensors are read; save model.state_dict(), not the model."
                                 ) from None
    else:
        raw = state_dict_or_path
    if not isinstance(raw, Mapping):
        raise TypeError(f"a state dict must be a mapping of names to tensors, got {type(raw).__name__}.")
    for wrapper in ("state_dict", "model"):
        if wrapper in raw and isinstance(raw[wrapper], Mapping):
            raw = raw[wrapper]
            break
    keys = list(raw)
    strip = bool(keys) and all(isinstance(k, str) and k.startswith("module.") for k in keys)
    out = {}
    for k, v in raw.items():
        if not isinstance(k, str):
            raise TypeError(f"state dict keys must be str, got {k!r}.")
        out[k[len("module."):] if strip else k] = _to_numpy(k, v)
    return out


# torchvision's DenseNet checkpoints name `denselayer1.norm.1.weight` what its modules call `denselayer1.norm1.weight`
# (torchvision's _load_state_dict renames them with this pattern).
_OLD_DENSENET = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
                           r"running_var|num_batches_tracked))$")


def _normalise_keys(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        m = _OLD_DENSENET.match(k)
        out[m.group(1) + m.group(2) if m else k] = v
    return out


# ---------------------------------------------------------------------------------------------------------
# Conversion.


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


def _set(tree: dict, path: tuple, value) -> None:
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = value


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
      normalised with IMAGENET_MEAN/IMAGENET_STD.

    Raises ValueError naming the first missing or unexpected key or the first
    shape that does not match, for an unknown name, or for a model without a
    torchvision counterpart.
    """
    plan = conversion_plan(name, **overrides)
    model = create_model(name, **overrides)
    state = _normalise_keys(read_state_dict(state_dict_or_path))
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
    head = _HEADS[type(model).__name__]
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
        _set(variables.setdefault(e.collection, {}), e.path,
             jnp.asarray(_convert(e, np.asarray(value, np.float32), model.conv_mode)))
    return variables


# ---------------------------------------------------------------------------------------------------------
# Our own checkpoints.


def load_checkpoint_weights(name: str, directory: str, *, step: Optional[int] = None, **overrides) -> dict:
    """{'params', 'batch_stats'} of registry model `name` from an orbax checkpoint
    written by jaxcnn.train (scripts/train.py): `directory` is the run's workdir
    or its `checkpoints/` folder; `step` defaults to the latest.

    The optimizer state in the checkpoint is not read. Raises ValueError when
    there is no checkpoint or its variables do not fit the model (naming the
    first key or shape that differs).
    """
    from jaxcnn.train.checkpoint import Checkpointer

    directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))
    if os.path.isdir(os.path.join(directory, "checkpoints")):
        directory = os.path.join(directory, "checkpoints")
    if not os.path.isdir(directory):
        raise ValueError(f"no checkpoint directory {directory}; pass the --workdir of a training run.")
    import orbax.checkpoint as ocp

    ckpt = Checkpointer(directory)
    try:
        step = ckpt.latest_step() if step is None else int(step)
        if step is None:
            raise ValueError(f"no checkpoint in {directory}; pass the --workdir of a training run.")
        try:
            restored = ckpt.manager.restore(step, args=ocp.args.StandardRestore())
        except Exception as e:  # orbax raises many types for a missing or unreadable step
            raise ValueError(f"cannot read checkpoint step {step} in {directory} ({type(e).__name__}); "
                             f"steps there: {list(ckpt.manager.all_steps())}.") from None
    finally:
        ckpt.close()
    model = create_model(name, **overrides)
    x = jnp.zeros((1,) + _input_shape(name, model), jnp.float32)
    want = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    variables = {}
    for collection in want:
        got = dict(restored.get(collection) or {})
        want_leaves = dict(_leaves_with_paths(want[collection]))
        got_leaves = dict(_leaves_with_paths(got))
        for path, leaf in want_leaves.items():
            if path not in got_leaves:
                raise ValueError(f"checkpoint step {step} in {directory} has no {collection}/{'/'.join(path)} that "
                                 f"model {name!r} needs; pass the model name and overrides it was trained with.")
            if tuple(got_leaves[path].shape) != tuple(leaf.shape):
                raise ValueError(f"checkpoint {collection}/{'/'.join(path)} has shape {got_leaves[path].shape} but "
                                 f"model {name!r} needs {tuple(leaf.shape)}; pass the overrides it was trained with "
                                 "(e.g. num_classes).")
        extra = [p for p in got_leaves if p not in want_leaves]
        if extra:
            raise ValueError(f"checkpoint step {step} in {directory} has {collection}/{'/'.join(extra[0])}, which "
                             f"model {name!r} does not; pass the model name and overrides it was trained with.")
        variables[collection] = jax.tree_util.tree_map(jnp.asarray, got)
    return variables


def torchvision_counterparts() -> list[str]:
    """Registry names with a torchvision counterpart (and so importable weights)."""
    return [n for n in list_models() if n in TORCHVISION_MODELS]
