"""A Keras-style summary of any model: one row per layer with its output
shape, parameter count and multiply-adds, without allocating a weight.

    print(jaxcnn.summary("keras_cifar_cnn"))

The model is traced once under `jax.eval_shape` with a method interceptor
recording every layer call, so even VGG-19 costs nothing but the trace.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.models.registry import create_model, default_input_shape

# Collections that describe a run rather than the model.
_NOT_VARIABLES = {"intermediates"}


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One layer: `name` is its path in the variables tree ('conv1', 'stage1/block0/conv1')."""

    name: str
    layer_type: str
    output_shape: Any  # per image, without the batch axis; a list for several outputs
    params: int  # in `params`
    non_trainable: int  # in every other collection (batch_stats, constants)
    macs: int  # multiply-adds per image

    @property
    def total(self) -> int:
        return self.params + self.non_trainable


@dataclasses.dataclass(frozen=True)
class Summary:
    model: str
    input_shape: tuple
    rows: tuple
    total_params: int
    trainable_params: int
    non_trainable_params: int
    total_macs: int

    def row(self, name: str) -> SummaryRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no layer {name!r}; layers: {', '.join(r.name for r in self.rows)}")

    def __str__(self) -> str:
        def shape(s):
            if isinstance(s, list):
                return ", ".join(shape(t) for t in s)
            return "(None, " + ", ".join(str(d) for d in s) + ")" if s else "(None,)"

        body = [(f"{r.name} ({r.layer_type})", shape(r.output_shape), f"{r.total:,}") for r in self.rows]
        head = ("Layer (type)", "Output Shape", "Param #")
        w = [max(len(row[i]) for row in body + [head]) + 2 for i in range(3)]
        width = sum(w)
        lines = [f'Model: "{self.model}"', "_" * width, "".join(h.ljust(w[i]) for i, h in enumerate(head)),
                 "=" * width]
        for k, row in enumerate(body):
            lines.append("".join(c.ljust(w[i]) for i, c in enumerate(row)))
            lines.append(("=" if k == len(body) - 1 else "_") * width)
        lines += [f"Total params: {self.total_params:,}",
                  f"Trainable params: {self.trainable_params:,}",
                  f"Non-trainable params: {self.non_trainable_params:,}",
                  f"Multiply-adds per image: {self.total_macs:,} ({self.total_macs / 1e6:.1f}M)",
                  "_" * width]
        return "\n".join(lines)


def _resolve(name_or_module, input_shape):
    if isinstance(name_or_module, str):
        module = create_model(name_or_module)
        shape = tuple(input_shape) if input_shape is not None else default_input_shape(name_or_module)
        return module, shape, name_or_module
    if isinstance(name_or_module, nn.Module):
        if input_shape is None:
            raise ValueError("summary of a module needs input_shape=(H, W, C); "
                             "only a registered model name has a default.")
        return name_or_module, tuple(input_shape), type(name_or_module).__name__
    raise TypeError(f"summary takes a model name or a flax Module, got {type(name_or_module).__name__}")


def _takes_train(module) -> bool:
    import inspect
    try:
        return "train" in inspect.signature(module.__call__).parameters
    except (TypeError, ValueError):
        return False


def _subtree(tree, path):
    for p in path:
        if not isinstance(tree, dict) and not hasattr(tree, "keys"):
            return None
        if p not in tree:
            return None
        tree = tree[p]
    return tree


def _size(tree) -> int:
    return int(sum(int(np.prod(l.shape)) for l in jax.tree_util.tree_leaves(tree)))


def _out_shape(out):
    if hasattr(out, "shape"):
        return tuple(int(d) for d in out.shape[1:])
    leaves = [l for l in jax.tree_util.tree_leaves(out) if hasattr(l, "shape")]
    return [tuple(int(d) for d in l.shape[1:]) for l in leaves]


def _generic_macs(kernels: Sequence, out_shape) -> int:
    """Each kernel (ndim >= 2: HWIO conv or (in, out) dense) costs its size per
    output position: OH*OW * KH*KW*C_in/groups*C_out for a convolution."""
    if isinstance(out_shape, list) or not kernels:
        return 0
    positions = int(np.prod(out_shape[:-1])) if len(out_shape) > 1 else 1
    return int(sum(positions * int(np.prod(k.shape)) for k in kernels))


def summary(name_or_module: Union[str, nn.Module], input_shape: Optional[Sequence[int]] = None,
            dtype=jnp.float32) -> Summary:
    """The layer table of a registered model (by name) or of any Flax module.

    Args:
      name_or_module: a name from `jaxcnn.list_models()` or a flax Module.
      input_shape: (H, W, C) of one image (NHWC); defaults to the model's
        `default_input_shape` for a name.
    Returns:
      a `Summary`: `.rows` (name, layer_type, output_shape, params,
      non_trainable, macs), `.total_params`, `.trainable_params` (`params`),
      `.non_trainable_params` (every other collection: BatchNorm statistics,
      LeNet-5's RBF prototypes), `.total_macs` (multiply-adds per image);
      `str()` is a Keras-style table. Nothing is allocated: the model is
      traced under `jax.eval_shape`.
    """
    module, shape, label = _resolve(name_or_module, input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (H, W, C), got {shape}")
    calls = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__":
            mod = context.module
            path = tuple(mod.scope.path) if mod.scope is not None else ()
            if path:
                calls.append((path, mod, _out_shape(out)))
        return out

    x = jax.ShapeDtypeStruct((1, *shape), dtype)
    kwargs = {"train": False} if _takes_train(module) else {}

    def init(x):
        return module.init(jax.random.key(0), x, **kwargs)

    with nn.intercept_methods(interceptor):
        variables = jax.eval_shape(init, x)
    variables = {k: v for k, v in dict(variables).items() if k not in _NOT_VARIABLES}

    # Rows: layers with no recorded sub-layer, plus any container owning variables directly.
    paths = {c[0] for c in calls}
    rows, seen = [], set()
    for path, mod, out in calls:
        children = [p for p in paths if len(p) > len(path) and p[:len(path)] == path]
        own = {}
        for col, tree in variables.items():
            sub = _subtree(tree, path)
            if sub is None:
                continue
            if children:
                child_names = {p[len(path)] for p in children}
                sub = {k: v for k, v in dict(sub).items() if k not in child_names}
            if _size(sub):
                own[col] = sub
        if children and not own:
            continue
        first = path not in seen  # a shared layer's weights are counted once
        seen.add(path)
        params = _size(own.get("params", {})) if first else 0
        non_trainable = sum(_size(v) for k, v in own.items() if k != "params") if first else 0
        if hasattr(mod, "macs"):
            macs = int(mod.macs(own, (1, *out) if not isinstance(out, list) else out))
        else:
            kernels = [l for l in jax.tree_util.tree_leaves(own.get("params", {})) if len(l.shape) >= 2]
            macs = _generic_macs(kernels, out)
        rows.append(SummaryRow("/".join(path), type(mod).__name__, out, params, non_trainable, macs))

    trainable = _size(variables.get("params", {}))
    non_trainable = sum(_size(v) for k, v in variables.items() if k != "params")
    return Summary(label, shape, tuple(rows), trainable + non_trainable, trainable, non_trainable,
                   int(sum(r.macs for r in rows)))
