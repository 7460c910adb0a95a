"""The pure train and eval steps.

    state, metrics = train_step(state, batch, key, preprocess=...)

`batch` is {'image': (N, H, W, C) NHWC uint8/float, 'label': ...}; what the
label is and how the outputs are scored is the `task`'s (jaxcnn.train.tasks;
classification by default). The step's randomness is `fold_in(key,
state.step)`: the same key and state give the same result. Under pmap pass
`axis_name`: gradients, metrics and (through the model's `bn_axis_name`)
BatchNorm statistics are averaged over it.
"""

from __future__ import annotations

import functools
import operator
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax

from jaxcnn.data.augment import mix_batch
from jaxcnn.train.tasks import Classification, cross_entropy  # noqa: F401  (cross_entropy: part of this API)

AUX_LOGITS = "aux_logits"


def _aux_logits(intermediates) -> list:
    """Every value sown under the name 'aux_logits' (GoogLeNet's auxiliary classifiers)."""
    found = []

    def visit(tree):
        if isinstance(tree, dict) or hasattr(tree, "items"):
            for k, v in tree.items():
                if k == AUX_LOGITS:
                    found.extend(v if isinstance(v, (tuple, list)) else [v])
                else:
                    visit(v)

    visit(intermediates)
    return found


# Leaves above this many elements are checked in pieces of about this size: XLA:CPU runs one reduction
# on one thread, and independent pieces on all of them (VGG-11's 34M parameters: 12 ms -> 8 ms on 2 cores).
FINITE_CHUNK = 1 << 22


def _all_finite(*trees) -> jax.Array:
    """Whether every element of every leaf is finite (one boolean). Trees of one structure are checked
    leaf beside leaf, in one pass over each leaf's elements."""
    parts = []
    for leaves in zip(*(jax.tree_util.tree_leaves(t) for t in trees)):
        ok = functools.reduce(operator.and_, (jnp.isfinite(jnp.ravel(x)) for x in leaves))
        pieces = max(1, ok.size // FINITE_CHUNK)
        if pieces > 1 and ok.size % pieces == 0:
            parts += [jnp.all(c) for c in jnp.split(ok, pieces)]
        else:
            parts.append(jnp.all(ok))
    return jnp.all(jnp.stack(parts)) if parts else jnp.array(True)


def train_step(state, batch, key, *, preprocess: Callable, task=None, label_smoothing: float = 0.0,
               aux_weight: float = 0.3, learning_rate_fn: Optional[Callable] = None,
               progress_fn: Optional[Callable] = None, axis_name: Optional[str] = None,
               device_fold: bool = False, ema_decay: float = 0.0, mix: Optional[dict] = None):
    """One optimisation step. Pure.

    Returns (new_state, metrics) with metrics loss, the task's metrics
    (accuracy), learning_rate, finite (1.0 if the loss, every gradient and
    every new parameter and statistic were finite) and skipped. A step that is
    not finite leaves params, batch_stats and opt_state unchanged (the step
    counter still advances); the loop decides whether to stop or go on
    (config nan_policy).

    task: scores the outputs (jaxcnn.train.tasks); default classification with
      `label_smoothing`, the cross-entropy of every 'aux_logits' the model sows
      into 'intermediates' in training weighted by `aux_weight` (GoogLeNet: 0.3).
    progress_fn: step -> the fraction of training done, passed to the model as `progress=` (models whose
      family takes it: NASNet's ScheduledDropPath); None passes nothing.
    axis_name: the pmap axis to average gradients and metrics over.
    device_fold: also fold the device index into the key (pmap: each device
      draws its own dropout masks and augmentations).
    ema_decay: with state.ema set, move it toward the new params and batch
      stats at decay min(ema_decay, (1 + step) / (10 + step)) (the short-run
      warm-up of tf.train.ExponentialMovingAverage's num_updates); a skipped
      step leaves it unchanged.
    mix: mixup/CutMix settings (jaxcnn.data.augment.mix_batch's keywords): the
      preprocessed batch is mixed with its reverse and the task scores both
      label sets (batch["mix_lambda"]). Under pmap each device mixes its part.
    """
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.wrap_key_data(key)  # raw uint32 key data (how the loop passes it: host-replicable)
    step_key = jax.random.fold_in(key, state.step)
    if device_fold and axis_name is not None:
        step_key = jax.random.fold_in(step_key, jax.lax.axis_index(axis_name))
    if task is None:
        task = Classification(label_smoothing=label_smoothing, aux_weight=aux_weight)
    aug_key, dropout_key = jax.random.split(step_key)
    task_key = jax.random.fold_in(step_key, 2)  # the task's own draws (e.g. which regions to sample)
    images = preprocess(batch["image"], aug_key, True)
    model_kwargs = {} if progress_fn is None else {"progress": jnp.asarray(progress_fn(state.step), jnp.float32)}
    if mix:
        images, lam = mix_batch(jax.random.fold_in(step_key, 3), images, **mix)
        batch = {**batch, "mix_lambda": lam}

    def loss_fn(params):
        variables = {"params": params}
        if state.batch_stats:
            variables["batch_stats"] = state.batch_stats
        outputs, updates = task.apply(state.apply_fn, variables, images, batch, train=True, key=task_key,
                                      rngs={"dropout": dropout_key}, mutable=["batch_stats", "intermediates"],
                                      **model_kwargs)
        loss, task_metrics = task.loss(outputs, batch, _aux_logits(updates.get("intermediates", {})))
        return loss, (task_metrics, updates.get("batch_stats", {}))

    (loss, (task_metrics, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        loss, task_metrics = jax.lax.pmean((loss, task_metrics), axis_name)

    def updated():
        updates, new_opt_state = state.tx.update(grads, state.opt_state, state.params)
        return optax.apply_updates(state.params, updates), new_opt_state

    def commit():
        new_params, new_opt_state = updated()
        new_ema = state.ema
        if new_ema is not None and ema_decay:
            step = state.step.astype(jnp.float32)
            decay = jnp.minimum(jnp.float32(ema_decay), (1.0 + step) / (10.0 + step))
            new_ema = jax.tree_util.tree_map(lambda e, v: (decay * e + (1.0 - decay) * v).astype(e.dtype),
                                             new_ema, {"params": new_params, "batch_stats": new_stats})
        return new_params, new_stats, new_opt_state, new_ema

    # The new parameters and statistics are checked too: a NaN learning rate gives finite gradients and NaN
    # parameters, and a step must never write those into the state. The check computes the new parameters
    # only to test them (XLA fuses the update into the reductions); the cond computes them again and writes
    # them over the old ones in place. Computing them once and choosing between old and new afterwards
    # copies every parameter and optimizer slot once more per step (VGG-11's 34M parameters: the check and
    # the choice cost 46 ms on 2 cores that way, 21 ms this way; benchmarks/ANALYSIS.md). A cond, not an
    # element-wise where over every leaf: XLA:CPU also compiles it about twice as fast.
    finite = jnp.isfinite(loss) & _all_finite(grads, updated()[0]) & _all_finite(new_stats)
    params, batch_stats, opt_state, ema = jax.lax.cond(
        finite, commit, lambda: (state.params, state.batch_stats, state.opt_state, state.ema))
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                              ema=ema)
    lr = learning_rate_fn(state.step) if learning_rate_fn is not None else jnp.nan
    metrics = {"loss": loss, **task_metrics, "learning_rate": jnp.asarray(lr, jnp.float32),
               "finite": finite.astype(jnp.float32), "skipped": 1.0 - finite.astype(jnp.float32)}
    return new_state, metrics


def eval_step(state, batch, *, preprocess: Callable, task=None, axis_name: Optional[str] = None):
    """The task's sums over a batch (classification: loss_sum, correct, count), counting only examples
    with batch['mask'] == 1 (padding of the last batch has mask 0); with state.ema, of the EMA. Pure."""
    task = task if task is not None else Classification()
    variables = state.variables()
    images = preprocess(batch["image"], None, False)
    outputs = task.apply(state.apply_fn, variables, images, batch, train=False)
    mask = batch.get("mask", jnp.ones(images.shape[:1], jnp.float32)).astype(jnp.float32)
    sums = task.eval_sums(outputs, {**batch, "mask": mask})
    if axis_name is not None and task.psum_eval:
        sums = jax.lax.psum(sums, axis_name)
    return sums
