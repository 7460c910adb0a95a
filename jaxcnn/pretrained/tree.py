"""The variable tree a registry model expects, traced without allocating a weight."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcnn.models import create_model, get_spec


def input_shape_of(name: str, model) -> tuple:
    """The (H, W, C) registry model `name` takes as `model` (a model's `image_size` field wins)."""
    h, w, c = get_spec(name).input_shape
    size = getattr(model, "image_size", None)
    return (size, size, c) if size else (h, w, c)


def variables_shape(name: str, model, input_shape=None) -> dict:
    """`model.init`'s variables as ShapeDtypeStructs on (H, W, C) `input_shape` images (default: the
    registry's; jax.eval_shape: nothing is allocated)."""
    x = jnp.zeros((1,) + tuple(input_shape or input_shape_of(name, model)), jnp.float32)
    return dict(jax.eval_shape(lambda: model.init(jax.random.key(0), x)))


def leaves_with_paths(tree) -> list:
    """[(path tuple, leaf)] of a nested mapping, in its own order."""
    out = []

    def visit(node, path):
        if hasattr(node, "items"):
            for k, v in node.items():
                visit(v, path + (k,))
        else:
            out.append((path, node))

    visit(tree, ())
    return out


def set_path(tree: dict, path: tuple, value) -> None:
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = value


def checked_model(name: str, overrides: dict):
    """create_model(name, **overrides), with a one-line TypeError for a name that is not a str."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    return create_model(name, **overrides)
