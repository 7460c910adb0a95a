"""The new classifier and the frozen backbone of fine-tuning (seed 002).

When the new data are like the old, retrain only the classifier; when only the
task is alike, retrain every weight, starting from the pretrained ones.

    model, variables = replace_head(model, variables, num_classes=5, key=key)
    state = create_finetune_state(model, variables, optax.adam(1e-3), mode="head")
    ... jaxcnn.train.train_step(state, batch, key, preprocess=...) ...   # only the head moves
    state = unfreeze(state, model, optax.adam(1e-4))                      # then everything, at a smaller rate

mode="head": the backbone is frozen. Its parameters get zero updates
(optax.multi_transform: the head's optimizer for the head, set_to_zero for
the rest, which keeps no optimizer state for it), and the network runs in
inference mode even in training (`FrozenBackbone` wraps apply with
train=False), so BatchNorm normalises with its running statistics and never
updates them, and dropout is off: the backbone computes exactly the
features it computed before. mode="full": the usual training of every
parameter and BatchNorm statistic.

The state is a plain jaxcnn.train.TrainState: the engine, train_step and
eval_step (and the parallel strategies) run it unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn._validation import check_choice
from jaxcnn.layers import Dense
from jaxcnn.models import family_of
from jaxcnn.train.state import TrainState

MODES = ("head", "some", "full")
TRAINABLE, FROZEN = "trainable", "frozen"


def head_name(model, params=None) -> str:
    """The top-level `params` key of `model`'s classifier (the dense layer whose width is num_classes), as
    its family states it (jaxcnn.models.family_of(model).head)."""
    family = family_of(model)
    if family.head is None:
        raise ValueError(f"{type(model).__name__} states no classifier head; pass head=<its name in params>.")
    return family.head(model)


def _check_head(params, head: str) -> None:
    if head not in params:
        raise ValueError(f"head {head!r} is not a top-level entry of params; entries: {sorted(params)}.")


def replace_head(model, variables: dict, num_classes: int, key, *, head: Optional[str] = None):
    """(model with `num_classes` outputs, variables with a fresh classifier and every other variable kept).

    The new classifier is initialised as the models initialise theirs
    (flax.linen.Dense: LeCun-normal kernel, zero bias) from `key`.
    """
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")
    params = variables["params"]
    head = head or head_name(model, params)
    _check_head(params, head)
    in_features = np.shape(params[head]["kernel"])[0]
    new_head = Dense(int(num_classes), dtype=getattr(model, "dtype", None)).init(
        key, jnp.zeros((1, in_features), jnp.float32))["params"]
    new_model = model.clone(num_classes=int(num_classes))
    new_params = {k: (new_head if k == head else v) for k, v in params.items()}
    return new_model, {**variables, "params": new_params}


def param_labels(params, head: str, mode: str = "head", layers: Sequence[str] = ()):
    """A pytree like `params` of 'trainable' / 'frozen' (for optax.multi_transform): the head alone
    (mode 'head'), the head and the top-level entries `layers` (mode 'some'), or everything ('full')."""
    check_choice("fine-tuning mode", mode, MODES)
    _check_head(params, head)
    unknown = sorted(set(layers) - set(params))
    if unknown:
        raise ValueError(f"fine-tuning layers {unknown} are not top-level entries of params; entries: "
                         f"{sorted(params)}.")
    if mode == "some" and not layers:
        raise ValueError("fine-tuning mode 'some' needs the layers to train (config.finetune.train_layers).")

    def trainable(k):
        return mode == "full" or k == head or (mode == "some" and k in layers)

    return {k: jax.tree_util.tree_map(lambda _: TRAINABLE if trainable(k) else FROZEN, v) for k, v in params.items()}


def finetune_optimizer(tx: optax.GradientTransformation, params, head: str, mode: str = "head",
                       layers: Sequence[str] = ()) -> optax.GradientTransformation:
    """`tx` for the trainable parameters, zero updates (and no optimizer state) for the frozen ones."""
    labels = param_labels(params, head, mode, layers)
    if mode == "full":
        return tx
    return optax.multi_transform({TRAINABLE: tx, FROZEN: optax.set_to_zero()}, labels)


@dataclasses.dataclass(frozen=True)
class FrozenBackbone:
    """`apply_fn` run in inference mode whatever `train` says: BatchNorm uses
    (and keeps) its running statistics and dropout is off. Hashable, so a
    TrainState holding it is a valid static jit argument."""

    apply_fn: Callable

    def __call__(self, variables, *args, train: bool = False, **kwargs):
        return self.apply_fn(variables, *args, train=False, **kwargs)


def create_finetune_state(model, variables: dict, tx: optax.GradientTransformation, *, mode: str = "head",
                          head: Optional[str] = None, layers: Sequence[str] = ()) -> TrainState:
    """A jaxcnn.train.TrainState that trains the head alone (mode='head'), the head and `layers` (mode='some':
    BatchNorm statistics stay frozen, the network runs in inference mode) or every parameter ('full')."""
    check_choice("fine-tuning mode", mode, MODES)
    params = variables["params"]
    head = head or head_name(model, params)
    tx = finetune_optimizer(tx, params, head, mode, layers)
    apply_fn = model.apply if mode == "full" else FrozenBackbone(model.apply)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(params), apply_fn=apply_fn, tx=tx)


def unfreeze(state: TrainState, model, tx: optax.GradientTransformation, *,
             layers: Sequence[str] = ()) -> TrainState:
    """The same parameters and statistics, now all trained by `tx` (usually a smaller learning rate),
    BatchNorm in training mode; or, with `layers`, the head and those top-level entries only (BatchNorm
    statistics frozen). A fresh optimizer state; the step count goes on."""
    if layers:
        head = head_name(model, state.params)
        tx = finetune_optimizer(tx, state.params, head, "some", layers)
        return state.replace(opt_state=tx.init(state.params), apply_fn=FrozenBackbone(model.apply), tx=tx)
    return state.replace(opt_state=tx.init(state.params), apply_fn=model.apply, tx=tx)
