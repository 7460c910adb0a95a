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
    leaves = jax.tree_util.tree_leaves(params)
    bad = [leaf for leaf in leaves if not hasattr(leaf, "shape")]
    if bad:
        raise TypeError(f"count_params expects a pytree of arrays (e.g. model.init(...) or jax.eval_shape(...)), "
                        f"got a leaf {bad[0]!r} ({type(bad[0]).__name__}).")
    return int(sum(int(np.prod(leaf.shape)) for leaf in leaves))
