"""Counting parameters."""

from __future__ import annotations

import jax
import numpy as np


def count_params(params) -> int:
    """Number of scalars in `params` (a pytree of arrays or ShapeDtypeStructs).

    Given a whole variables dict ({'params': ..., 'batch_stats': ...}) it counts
    `params` only, torchvision's convention: BatchNorm running statistics and
    fixed buffers are not parameters.
    """
    if isinstance(params, dict) or hasattr(params, "keys"):
        if "params" in params:
            params = params["params"]
    return int(sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params)))
