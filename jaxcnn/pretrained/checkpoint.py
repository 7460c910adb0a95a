"""Our own checkpoints as Flax variables: the params and batch_stats a
jaxcnn.train run saved, checked against the model before use."""

from __future__ import annotations

import os
from typing import Optional

import jax
import jax.numpy as jnp

from jaxcnn.models import family_of
from jaxcnn.pretrained.tree import checked_model, leaves_with_paths, variables_shape
from jaxcnn.train.checkpoint import Checkpointer


def load_checkpoint_weights(name: str, directory: str, *, step: Optional[int] = None, input_shape=None,
                            **overrides) -> dict:
    """{'params', 'batch_stats'} of registry model `name` from an orbax checkpoint
    written by jaxcnn.train (scripts/train.py): `directory` is the run's workdir
    or its `checkpoints/` folder; `step` defaults to the latest; `input_shape` (H, W, C) is the size the
    model will see (default: the registry's), for models whose variables depend on it.

    The optimizer state in the checkpoint is not read. Raises ValueError when
    there is no checkpoint or its variables do not fit the model (naming the
    first key or shape that differs).
    """
    directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))
    if os.path.isdir(os.path.join(directory, "checkpoints")):
        directory = os.path.join(directory, "checkpoints")
    if not os.path.isdir(directory):
        raise ValueError(f"no checkpoint directory {directory}; pass the --workdir of a training run.")
    model = checked_model(name, overrides)
    ckpt = Checkpointer(directory)
    try:
        step = ckpt.latest_step() if step is None else int(step)
        if step is None:
            raise ValueError(f"no checkpoint in {directory}; pass the --workdir of a training run.")
        restored = ckpt.restore_variables(step)
    finally:
        ckpt.close()
    want = variables_shape(name, model, input_shape)
    variables = {}
    for collection in want:
        got = dict(restored.get(collection) or {})
        want_leaves = dict(leaves_with_paths(want[collection]))
        got_leaves = dict(leaves_with_paths(got))
        for path, leaf in want_leaves.items():
            if path not in got_leaves:
                raise ValueError(f"checkpoint step {step} in {directory} has no {collection}/{'/'.join(path)} that "
                                 f"model {name!r} needs; pass the model name and overrides it was trained with.")
            got_shape = tuple(got_leaves[path].shape)
            if got_shape != tuple(leaf.shape):
                raise ValueError(f"checkpoint {collection}/{'/'.join(path)} has shape {got_shape} but model "
                                 f"{name!r} needs {tuple(leaf.shape)}; {_fix(model, path, got_shape, leaf.shape)}.")
        extra = [p for p in got_leaves if p not in want_leaves]
        if extra:
            raise ValueError(f"checkpoint step {step} in {directory} has {collection}/{'/'.join(extra[0])}, which "
                             f"model {name!r} does not; pass the model name and overrides it was trained with.")
        variables[collection] = jax.tree_util.tree_map(jnp.asarray, got)
    return variables


def _fix(model, path, got, want) -> str:
    """What to change when a saved array has another shape: the classifier's width is num_classes; a dense
    layer's input width follows the input size; anything else, the architecture's fields."""
    family = family_of(model)
    head = family.head(model) if family.head is not None else None
    if path[0] == head and len(got) == len(want) and got[:-1] == tuple(want[:-1]):
        return f"pass num_classes={got[-1]} (the checkpoint classifies {got[-1]} classes)"
    if len(got) == 2 and len(want) == 2 and got[1:] == tuple(want[1:]):
        return ("the checkpoint was trained on images of another size (its dense layer takes "
                f"{got[0]} inputs, this model {want[0]}); use the input size and preprocessing it was trained with")
    return "pass the model name and field overrides it was trained with"
