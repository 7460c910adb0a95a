"""TrainState: everything that changes during training, as one pytree."""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """params, batch_stats, opt_state and step are pytree leaves (saved,
    replicated, sharded); apply_fn and tx are static (part of the tree's
    structure, not of its data). ema: None, or {"params", "batch_stats"} (an
    exponential moving average of both, config.ema_decay), saved with the rest
    and what evaluation scores."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    apply_fn: Callable = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
    ema: Any = None

    def arrays(self) -> dict:
        """The state's data as a plain dict (what a checkpoint holds; "ema" only when there is one)."""
        out = {"step": self.step, "params": self.params, "batch_stats": self.batch_stats,
               "opt_state": self.opt_state}
        if self.ema is not None:
            out["ema"] = self.ema
        return out

    def variables(self) -> dict:
        """The variables evaluation and inference apply the model with: the EMA's when there is one."""
        params, stats = (self.ema["params"], self.ema["batch_stats"]) if self.ema is not None else (
            self.params, self.batch_stats)
        return {"params": params, **({"batch_stats": stats} if stats else {})}

    def replace_arrays(self, arrays: dict) -> "TrainState":
        return self.replace(**arrays)


class ApplyWithConstants:
    """`model.apply` for a model with fixed, init-computed collections besides
    `params` and `batch_stats` (LeNet-5's RBF prototypes in `constants`).

    Such values are deterministic functions of the model, so they are not
    carried in the state or its checkpoints: they are recomputed inside apply
    and dropped from the updates. Hashable, as a static field of TrainState.
    """

    def __init__(self, model, collections):
        self.model, self.collections = model, tuple(collections)

    def __call__(self, variables, *args, mutable=False, **kwargs):
        extra = list(self.collections)
        if mutable is False:
            out, _ = self.model.apply(variables, *args, mutable=extra, **kwargs)
            return out
        out, updates = self.model.apply(variables, *args, mutable=list(mutable) + extra, **kwargs)
        return out, {k: v for k, v in dict(updates).items() if k not in self.collections}

    def __hash__(self):
        return hash((self.model, self.collections))

    def __eq__(self, other):
        return isinstance(other, ApplyWithConstants) and (self.model, self.collections) == (
            other.model, other.collections)


def apply_fn_for(model, variables):
    """`model.apply`, or an ApplyWithConstants where `variables` hold fixed collections."""
    extra = sorted(set(variables) - {"params", "batch_stats", "intermediates"})
    return ApplyWithConstants(model, extra) if extra else model.apply


def with_ema(state: TrainState) -> TrainState:
    """`state` with an EMA started at its parameters and BatchNorm statistics (copies, host or device)."""
    copy = lambda tree: jax.tree_util.tree_map(lambda x: x.copy(), tree)  # noqa: E731
    return state.replace(ema={"params": copy(state.params), "batch_stats": copy(state.batch_stats)})


def _init_program(model, input_shape: tuple):
    """`model.init` on a zero batch of `input_shape`, jitted: one compiled program instead of hundreds of
    op-by-op dispatches (ResNet-20: ~1 s, not ~11 s). Kept per (model, shape): an equal model (the same
    fields; an ablation's runs of one arm, a resumed or finished run restored again) reuses the compiled
    program rather than compiling it once more."""
    try:
        return _cached_init_program(model, input_shape)
    except TypeError:  # a model with an unhashable field: compiled for this call only
        return _jit_init(model, input_shape)


def _jit_init(model, input_shape: tuple):
    return jax.jit(lambda k: model.init({"params": k, "dropout": k}, jnp.zeros((1,) + input_shape, jnp.float32),
                                        train=False))


_cached_init_program = functools.lru_cache(maxsize=32)(_jit_init)


def create_train_state(model, tx: optax.GradientTransformation, key, input_shape) -> TrainState:
    """Initialise `model` on a zero batch of `input_shape` (H, W, C) (NHWC) and `tx`'s state."""
    variables = _init_program(model, tuple(input_shape))(key)
    params = variables["params"]
    batch_stats = variables.get("batch_stats", {})
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                      opt_state=tx.init(params), apply_fn=apply_fn_for(model, variables), tx=tx)
