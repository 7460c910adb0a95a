"""Models with fixed collections outside params/batch_stats (LeNet-5's RBF
prototypes in `constants`) train through the ordinary train and eval steps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn import create_model
from jaxcnn.train.state import ApplyWithConstants, create_train_state
from jaxcnn.train.step import eval_step, train_step


def _identity(images, key, train):
    return images


def test_lenet5_as_published_trains_through_train_step():
    model = create_model("lenet5")
    state = create_train_state(model, optax.sgd(1e-2), jax.random.key(0, impl="rbg"), (32, 32, 1))
    assert isinstance(state.apply_fn, ApplyWithConstants)
    assert state.apply_fn.collections == ("constants",)
    assert "constants" not in state.arrays()  # recomputed, never checkpointed
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.normal(size=(4, 32, 32, 1)), jnp.float32),
             "label": jnp.asarray(rng.integers(0, 10, size=(4,)), jnp.int32)}
    step = jax.jit(lambda s, b, k: train_step(s, b, k, preprocess=_identity))
    new_state, metrics = step(state, batch, jax.random.key(1))
    assert np.isfinite(float(metrics["loss"]))
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), state.params, new_state.params)
    assert any(jax.tree_util.tree_leaves(changed))
    out = jax.jit(lambda s, b: eval_step(s, b, preprocess=_identity))(new_state, batch)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree_util.tree_leaves(out))
