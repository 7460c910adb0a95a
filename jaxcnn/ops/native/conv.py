"""The native convolution as JAX sees it: three primitives, one per custom call,
differentiable in both modes, batchable, partitioned over a Mesh, and chosen
on the CPU only.

A convolution F(x, w) is bilinear, and so are its two transposes, the input
gradient B(dy, w) (what `conv_transpose` computes) and the weight gradient
W(x, dy). Each primitive's derivatives are the others (`ad.defbilinear`), so
`grad`, `jvp` and derivatives of any order stay on the native kernels:

    F(x, w):   x <- B(ct, w),    w <- W(x, ct)
    B(dy, w):  dy <- F(ct, w),   w <- W(ct, dy)
    W(x, dy):  x <- B(dy, ct),   dy <- F(x, ct)

Under `vmap` a batched image argument folds into the batch axis and still runs
natively; anything else (a batched kernel, per-example weight gradients) runs
XLA's convolution, vmapped.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from jaxcnn.ops.native import lowering

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
Pair = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class Spec:
    """A convolution's geometry apart from the shapes: stride, explicit
    ((top, bottom), (left, right)) padding, kernel dilation and groups."""

    stride: Pair
    pads: tuple[Pair, Pair]
    dilation: Pair = (1, 1)
    groups: int = 1

    def params(self) -> np.ndarray:
        (top, bottom), (left, right) = self.pads
        return np.array([*self.stride, top, bottom, left, right, *self.dilation, self.groups], np.int64)

    def out_shape(self, x, w) -> tuple[int, ...]:
        hw = tuple((size + lo + hi - d * (k - 1) - 1) // s + 1 for size, k, s, d, (lo, hi)
                   in zip(x.shape[1:3], w.shape[:2], self.stride, self.dilation, self.pads))
        return (x.shape[0], *hw, w.shape[3])

    def in_shape(self, dy, w, in_hw) -> tuple[int, ...]:
        return (dy.shape[0], *in_hw, w.shape[2] * self.groups)

    def kernel_shape(self, x, dy, kernel_hw) -> tuple[int, ...]:
        return (*kernel_hw, x.shape[3] // self.groups, dy.shape[3])


# XLA's convolution and its two transposes: other platforms, and vmap where
# the native kernels cannot take the batch.

def xla_forward(spec: Spec, x, w):
    return lax.conv_general_dilated(x, w, window_strides=spec.stride, padding=spec.pads,
                                    rhs_dilation=spec.dilation, dimension_numbers=DIMENSION_NUMBERS,
                                    feature_group_count=spec.groups)


def xla_input_grad(spec: Spec, in_hw, dy, w):
    x = jax.ShapeDtypeStruct(spec.in_shape(dy, w, in_hw), dy.dtype)
    return jax.linear_transpose(lambda x: xla_forward(spec, x, w), x)(dy)[0]


def xla_weight_grad(spec: Spec, kernel_hw, x, dy):
    w = jax.ShapeDtypeStruct(spec.kernel_shape(x, dy, kernel_hw), x.dtype)
    return jax.linear_transpose(lambda w: xla_forward(spec, x, w), w)(dy)[0]


# The primitives: F, B and W, each with its custom call's target and output shape.

forward_p = Primitive("jaxcnn_conv_fwd")
input_grad_p = Primitive("jaxcnn_conv_bwd_data")
weight_grad_p = Primitive("jaxcnn_conv_bwd_weights")

_SHAPES = {
    forward_p: lambda a, b, spec: spec.out_shape(a, b),
    input_grad_p: lambda a, b, spec, in_hw: spec.in_shape(a, b, in_hw),
    weight_grad_p: lambda a, b, spec, kernel_hw: spec.kernel_shape(a, b, kernel_hw),
}
_XLA = {
    forward_p: lambda a, b, spec: xla_forward(spec, a, b),
    input_grad_p: lambda a, b, spec, in_hw: xla_input_grad(spec, in_hw, a, b),
    weight_grad_p: lambda a, b, spec, kernel_hw: xla_weight_grad(spec, kernel_hw, a, b),
}


def _abstract_eval(prim):
    def rule(a, b, **params):
        return jax.core.ShapedArray(_SHAPES[prim](a, b, **params), a.dtype)
    return rule


def _call(prim):
    def call(a, b, **params):
        out = jax.ShapeDtypeStruct(_SHAPES[prim](a, b, **params), a.dtype)
        return jax.ffi.ffi_call(prim.name, out)(a, b, params=params["spec"].params())
    return call


def _batching(prim):
    def rule(args, dims, **params):
        (a, b), (da, db) = args, dims
        if prim is not weight_grad_p and db is None:  # an unbatched kernel
            # Only the images are batched: fold the vmapped axis into their batch axis.
            a = jax.numpy.moveaxis(a, da, 0)
            out = prim.bind(a.reshape(-1, *a.shape[2:]), b, **params)
            return out.reshape(a.shape[0], -1, *out.shape[1:]), 0
        xla = functools.partial(_XLA[prim], **params)
        return jax.vmap(xla, in_axes=(da, db))(a, b), 0
    return rule


for _prim in (forward_p, input_grad_p, weight_grad_p):
    _prim.def_impl(lambda *args, _prim=_prim, **params: jax.jit(functools.partial(_prim.bind, **params))(*args))
    _prim.def_abstract_eval(_abstract_eval(_prim))
    # The weight gradient's operands are both images and its result a sum over the batch; the
    # forward pass and the input gradient take images and a kernel and give images.
    lowering.register(_prim, _call(_prim), in_batched=(True, _prim is weight_grad_p),
                      sums_batch=_prim is weight_grad_p)
    batching.primitive_batchers[_prim] = _batching(_prim)


# Transposes: given the cotangent of the output, the cotangent of the linear argument.

def _forward_t_x(ct, x, w, *, spec):
    return input_grad_p.bind(ct, w, spec=spec, in_hw=x.aval.shape[1:3])


def _forward_t_w(ct, x, w, *, spec):
    return weight_grad_p.bind(x, ct, spec=spec, kernel_hw=w.aval.shape[:2])


def _input_grad_t_dy(ct, dy, w, *, spec, in_hw):
    return forward_p.bind(ct, w, spec=spec)


def _input_grad_t_w(ct, dy, w, *, spec, in_hw):
    return weight_grad_p.bind(ct, dy, spec=spec, kernel_hw=w.aval.shape[:2])


def _weight_grad_t_x(ct, x, dy, *, spec, kernel_hw):
    return input_grad_p.bind(dy, ct, spec=spec, in_hw=x.aval.shape[1:3])


def _weight_grad_t_dy(ct, x, dy, *, spec, kernel_hw):
    return forward_p.bind(x, ct, spec=spec)


ad.defbilinear(forward_p, _forward_t_x, _forward_t_w)
ad.defbilinear(input_grad_p, _input_grad_t_dy, _input_grad_t_w)
ad.defbilinear(weight_grad_p, _weight_grad_t_x, _weight_grad_t_dy)


# Entry points for jaxcnn.ops.conv: the native kernels on the CPU, XLA's elsewhere.

def conv_general(x, w, *, stride: Pair, pads, dilation: Pair, groups: int):
    """`lax.conv_general_dilated` in jaxcnn's layouts, native on the CPU."""
    spec = Spec(tuple(stride), tuple(map(tuple, pads)), tuple(dilation), groups)
    return lax.platform_dependent(x, w, cpu=functools.partial(forward_p.bind, spec=spec),
                                  default=functools.partial(xla_forward, spec))


def conv_input_grad(y, w, *, in_hw: Pair, stride: Pair, pads, default):
    """The input gradient of an ungrouped, undilated convolution (`conv_transpose`),
    native on the CPU; `default(y, w)` elsewhere."""
    spec = Spec(tuple(stride), tuple(map(tuple, pads)))
    return lax.platform_dependent(y, w, cpu=functools.partial(input_grad_p.bind, spec=spec, in_hw=tuple(in_hw)),
                                  default=default)
