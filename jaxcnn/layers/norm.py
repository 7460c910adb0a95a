"""BatchNorm as one layer for every model that normalises by batch statistics.

`BatchNorm` takes the fields, call signature and variables of
`flax.linen.BatchNorm` (params `scale` and `bias`, batch_stats `mean` and
`var`), so checkpoints, torchvision imports and parameter counts are the same
with either. Its training-mode statistics and their gradients go through
`jaxcnn.ops.batch_norm`, which on the CPU reduces on native kernels
(JAXCNN_NATIVE_BN=0 for Flax's computation); evaluation, and every other
platform, compute what Flax's BatchNorm computes.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from jaxcnn import ops


class BatchNorm(nn.Module):
    """Batch normalisation over every axis of channels-last inputs but the last (Ioffe and Szegedy 2015).

    Attributes (Flax's): use_running_average (or the call argument): normalise with the running
    statistics (evaluation) instead of the batch's; momentum of the running averages; epsilon;
    dtype (result; default the inputs' and parameters' result type) and param_dtype; use_bias,
    use_scale and their initialisers; axis_name / axis_index_groups: a pmap or shard_map axis over
    which the batch statistics are those of the whole batch (synchronised BatchNorm).

    During `init` the running statistics are not updated, as in Flax.
    """

    use_running_average: Optional[bool] = None
    axis: int = -1
    momentum: float = 0.99
    epsilon: float = 1e-5
    dtype: Optional[Any] = None
    param_dtype: Any = jnp.float32
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Any = nn.initializers.zeros
    scale_init: Any = nn.initializers.ones
    axis_name: Optional[str] = None
    axis_index_groups: Any = None

    @nn.compact
    def __call__(self, x, use_running_average: Optional[bool] = None):
        use_running_average = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        if self.axis not in (-1, x.ndim - 1):
            raise ValueError(f"jaxcnn BatchNorm normalises the last axis (channels last); got axis={self.axis} "
                             f"for inputs of shape {x.shape}. Move the features last, or use flax.linen.BatchNorm.")
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), (c,))
        ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), (c,))
        scale = (self.param("scale", self.scale_init, (c,), self.param_dtype) if self.use_scale
                 else jnp.ones((c,), jnp.float32))
        bias = (self.param("bias", self.bias_init, (c,), self.param_dtype) if self.use_bias
                else jnp.zeros((c,), jnp.float32))
        dtype = self.dtype if self.dtype is not None else jnp.result_type(
            x, *([scale] if self.use_scale else []), *([bias] if self.use_bias else []))
        if use_running_average:
            mean, var = ra_mean.value, ra_var.value
            y = (x - mean) * (lax.rsqrt(var + self.epsilon) * scale) + bias
            return jnp.asarray(y, dtype)
        initializing = self.is_initializing()
        y, mean, var = ops.batch_norm(x, scale, bias, shift=ra_mean.value, epsilon=self.epsilon,
                                      axis_name=None if initializing else self.axis_name,
                                      axis_index_groups=self.axis_index_groups, dtype=dtype)
        if not initializing:
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return y
