"""Local response normalisation (Krizhevsky et al. 2012, section 3.3)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn._validation import as_float, as_int
from jaxcnn.ops.conv import check_image


def local_response_norm(x, *, size: int = 5, k: float = 2.0, alpha: float = 1e-4, beta: float = 0.75):
    """b[c] = a[c] / (k + alpha * sum_{c' = c - size//2}^{c + size//2} a[c']^2) ** beta.

    x: NHWC; the sum runs over `size` neighbouring channels, clipped at the ends.
    Defaults are AlexNet's (k=2, n=5, alpha=1e-4, beta=0.75). As in the paper,
    alpha multiplies the sum itself; Caffe and PyTorch divide alpha by `size`
    (pass alpha=their_alpha/size to match them).
    """
    check_image(x)
    size = as_int(size, "local_response_norm size", minimum=1, example=5)
    k = as_float(k, "local_response_norm k", example=2.0)
    alpha = as_float(alpha, "local_response_norm alpha", example=1e-4)
    beta = as_float(beta, "local_response_norm beta", example=0.75)
    return x / jnp.power(k + alpha * channel_square_sum(x, size), beta)


def channel_square_sum(x, size: int):
    """S[c] = sum_{c' = c - size//2}^{c + size//2} x[c']^2 over the channels of NHWC `x`, clipped at the ends:
    the data term of local_response_norm's denominator (before alpha)."""
    half = size // 2
    # A numpy init value keeps reduce_window differentiable under jit.
    return lax.reduce_window(jnp.square(x), np.array(0, x.dtype), lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                             ((0, 0), (0, 0), (0, 0), (half, size - 1 - half)))
