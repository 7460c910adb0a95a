"""A dense layer's product y = x w (kernel [K, M], Flax's layout) whose input
gradient runs natively on the CPU.

XLA:CPU computes the forward product and the kernel gradient x^T dy as fast as
PyTorch does, but the input gradient dy w^T, a product with the transposed
kernel, about three times slower (VGG-11's 4096x4096 fc7 at batch 32: 33 ms
against PyTorch's 10-14; benchmarks/ANALYSIS.md). Two primitives, each the
other's transpose in its first argument (`ad.defbilinear`), so `grad`, `jvp`
and derivatives of any order keep the native input gradient:

    D(x, w)  = x w      (XLA's dot)     x <- G(ct, w),   w <- x^T ct
    G(dy, w) = dy w^T   (oneDNN)        dy <- D(ct, w),  w <- ct^T dy

Leading axes of x and dy are batch axes (flattened for the call). Under `vmap`
a batched x or dy folds into them; a batched kernel runs XLA's products,
vmapped. Over a Mesh the native call runs on each device's slice of the batch.
"""

from __future__ import annotations


import jax
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxcnn.ops.native import lowering


def xla_dense(x, w):
    """x [..., K] times w [K, M]: x's last axis contracted with w's first."""
    return lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())))


def xla_input_grad(dy, w):
    return lax.dot_general(dy, w, (((dy.ndim - 1,), (1,)), ((), ())))


def _outer_sum(a, b):
    """a^T b summed over every leading axis: a [..., K], b [..., M] -> [K, M] (a kernel's gradient)."""
    lead = tuple(range(a.ndim - 1))
    return lax.dot_general(a, b, ((lead, lead), ((), ())))


dense_p = Primitive("jaxcnn_dense")
input_grad_p = Primitive("jaxcnn_dense_input_grad")

_XLA = {dense_p: xla_dense, input_grad_p: xla_input_grad}


def _abstract(prim):
    def rule(a, w):
        out = a.shape[:-1] + (w.shape[1] if prim is dense_p else w.shape[0],)
        return jax.core.ShapedArray(out, a.dtype)
    return rule


def _call_input_grad(dy, w):
    flat = dy.reshape(-1, dy.shape[-1])
    out = jax.ShapeDtypeStruct((flat.shape[0], w.shape[0]), dy.dtype)
    return jax.ffi.ffi_call(input_grad_p.name, out)(flat, w).reshape(*dy.shape[:-1], w.shape[0])


def _batching(prim):
    def rule(args, dims):
        (a, w), (da, dw) = args, dims
        if dw is None:  # only the activations are batched: the mapped axis is one more batch axis
            return prim.bind(jax.numpy.moveaxis(a, da, 0), w), 0
        return jax.vmap(_XLA[prim], in_axes=(da, dw))(a, w), 0
    return rule


for _prim in (dense_p, input_grad_p):
    _prim.def_impl(lambda *args, _prim=_prim: jax.jit(_prim.bind)(*args))
    _prim.def_abstract_eval(_abstract(_prim))
    batching.primitive_batchers[_prim] = _batching(_prim)
# The forward product stays XLA's dot (an ordinary op to every partitioner); the input gradient is the
# custom call, its activations batched over a Mesh and the kernel replicated.
mlir.register_lowering(dense_p, mlir.lower_fun(xla_dense, multiple_results=False))
lowering.register(input_grad_p, _call_input_grad, in_batched=(True, False))


def _dense_t_x(ct, x, w):
    return input_grad_p.bind(ct, w)


def _dense_t_w(ct, x, w):
    return _outer_sum(x, ct)


def _input_grad_t_dy(ct, dy, w):
    return dense_p.bind(ct, w)


def _input_grad_t_w(ct, dy, w):
    return _outer_sum(ct, dy)


ad.defbilinear(dense_p, _dense_t_x, _dense_t_w)
ad.defbilinear(input_grad_p, _input_grad_t_dy, _input_grad_t_w)


def dense(x, w):
    """x [..., K] times the kernel w [K, M]; its input gradient native on the CPU, XLA's elsewhere."""
    return lax.platform_dependent(x, w, cpu=dense_p.bind, default=xla_dense)


__all__ = ["dense", "xla_dense", "xla_input_grad"]
