"""The dense layer's product: `dense(x, w)` = x w for a kernel w [K, M], and
`dot_general`, the same as a drop-in for `lax.dot_general` (what
`jaxcnn.layers.Dense` passes to flax.linen.Dense); and `add_bias(y, b)`, a
per-channel bias (what `jaxcnn.layers.Conv` adds).

On the CPU, for float32, the input gradient dy w^T runs natively (oneDNN;
`jaxcnn.ops.native.dense`), where XLA:CPU's matrix product is about three
times slower on the transposed kernel than on the forward product; the forward
product and the kernel gradient stay XLA's. Elsewhere, and with the switch
JAXCNN_NATIVE_DENSE=0 (read when a function is traced), everything is
`lax.dot_general`. Results are equal up to float rounding.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from jaxcnn.ops import native
from jaxcnn.ops.native.bias import add_bias as native_add_bias
from jaxcnn.ops.native.dense import dense as native_dense, xla_dense


def _native_ok(x, w) -> bool:
    return (w.ndim == 2 and x.ndim >= 1 and x.dtype == jnp.float32 and w.dtype == jnp.float32
            and native.enabled("dense", x.dtype))


def dense(x, w):
    """x [..., K] times the kernel w [K, M] -> [..., M]."""
    x, w = jnp.asarray(x), jnp.asarray(w)
    if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"dense: x [..., K] and a kernel [K, M] with the same K expected; got x {x.shape}, "
                         f"w {w.shape}")
    return native_dense(x, w) if _native_ok(x, w) else xla_dense(x, w)


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None, **kw):
    """`lax.dot_general`; a dense layer's product (lhs's last axis against a 2-D rhs's first, no batch
    axes, default precision) goes through `dense`."""
    (lc, rc), (lb, rb) = dimension_numbers
    lhs, rhs = jnp.asarray(lhs), jnp.asarray(rhs)
    plain = (tuple(lc) == (lhs.ndim - 1,) and tuple(rc) == (0,) and not lb and not rb and precision is None
             and preferred_element_type in (None, lhs.dtype) and not kw)
    if plain and _native_ok(lhs, rhs):
        return dense(lhs, rhs)
    return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                           preferred_element_type=preferred_element_type, **kw)


def add_bias(y, b):
    """y [..., C] + b [C]. On the CPU, for float32, the bias gradient (dy summed over every axis but the
    channels) is one native pass (`jaxcnn.ops.native.bias`) instead of XLA:CPU's reduce-window tree; switch
    JAXCNN_NATIVE_BIAS."""
    y, b = jnp.asarray(y), jnp.asarray(b)
    if b.ndim != 1 or y.ndim < 1 or y.shape[-1] != b.shape[0]:
        raise ValueError(f"add_bias: y [..., C] and a bias [C] with the same C expected; got y {y.shape}, b {b.shape}")
    if y.dtype == jnp.float32 and b.dtype == jnp.float32 and native.enabled("bias", y.dtype):
        return native_add_bias(y, b)
    return y + b
