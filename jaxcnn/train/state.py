"""TrainState: everything that changes during training, as one pytree."""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
    """params, batch_stats, opt_state and step are pytree leaves (saved,
    replicated, sharded); apply_fn and tx are static (part of the tree's
    structure, not of its data)."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    apply_fn: Callable = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    def arrays(self) -> dict:
        """The state's data as a plain dict (what a checkpoint holds)."""
        return {"step": self.step, "params": self.params, "batch_stats": self.batch_stats,
                "opt_state": self.opt_state}

    def replace_arrays(self, arrays: dict) -> "TrainState":
        return self.replace(**arrays)


def create_train_state(model, tx: optax.GradientTransformation, key, input_shape) -> TrainState:
    """Initialise `model` on a zero batch of `input_shape` (H, W, C) (NHWC) and `tx`'s state."""
    variables = model.init({"params": key, "dropout": key}, jnp.zeros((1,) + tuple(input_shape), jnp.float32),
                           train=False)
    params = variables["params"]
    batch_stats = variables.get("batch_stats", {})
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                      opt_state=tx.init(params), apply_fn=model.apply, tx=tx)
