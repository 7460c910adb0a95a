"""The native convolution as JAX sees it: three custom calls made differentiable,
batchable and chosen on the CPU only.

A convolution F(x, w) has two transposes: the input gradient B(dy, w) (what
`conv_transpose` computes) and the weight gradient W(x, dy). Each of the three
is a `jax.custom_vjp` whose derivatives are the other two, so gradients of any
order stay on the native kernels:

    F(x, w):   dx = B(dy, w),    dw = W(x, dy)
    B(dy, w):  d dy = F(g, w),   dw = W(g, dy)
    W(x, dy):  dx = B(dy, g),    d dy = F(x, g)

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
from jax.custom_batching import custom_vmap

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


# The custom calls. The first argument of each carries the batch; a vmapped
# axis on it alone folds into that batch.

def _batched(call, xla, a, b):
    """`call(a, b)` with a vmap rule: fold a batched `a` into its batch axis, else vmap `xla`."""
    f = custom_vmap(call)

    @f.def_vmap
    def rule(axis_size, in_batched, a, b):
        if in_batched == [True, False]:
            out = f(a.reshape(-1, *a.shape[2:]), b)
            return out.reshape(axis_size, -1, *out.shape[1:]), True
        axes = tuple(0 if batched else None for batched in in_batched)
        return jax.vmap(xla, in_axes=axes)(a, b), True

    return f(a, b)


def _forward_call(spec: Spec, x, w):
    def call(x, w):
        out = jax.eval_shape(functools.partial(xla_forward, spec), x, w)
        return jax.ffi.ffi_call("jaxcnn_conv_fwd", out)(x, w, params=spec.params())
    return _batched(call, functools.partial(xla_forward, spec), x, w)


def _input_grad_call(spec: Spec, in_hw, dy, w):
    def call(dy, w):
        out = jax.ShapeDtypeStruct(spec.in_shape(dy, w, in_hw), dy.dtype)
        return jax.ffi.ffi_call("jaxcnn_conv_bwd_data", out)(dy, w, params=spec.params())
    return _batched(call, functools.partial(xla_input_grad, spec, in_hw), dy, w)


def _weight_grad_call(spec: Spec, kernel_hw, x, dy):
    out = jax.ShapeDtypeStruct(spec.kernel_shape(x, dy, kernel_hw), x.dtype)
    def call(x, dy):
        return jax.ffi.ffi_call("jaxcnn_conv_bwd_weights", out)(x, dy, params=spec.params())
    f = custom_vmap(call)

    @f.def_vmap
    def rule(axis_size, in_batched, x, dy):
        # Per-example weight gradients: one per vmapped slice, so nothing folds.
        axes = tuple(0 if batched else None for batched in in_batched)
        return jax.vmap(functools.partial(xla_weight_grad, spec, kernel_hw), in_axes=axes)(x, dy), True

    return f(x, dy)


# The three directions, each differentiable through the other two.

@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def forward(spec: Spec, x, w):
    return _forward_call(spec, x, w)


# Each fwd rule calls the differentiable op itself, not the custom call, so
# that an outer derivative (grad of grad) differentiates it by its own rule.

def _forward_fwd(spec, x, w):
    return forward(spec, x, w), (x, w)


def _forward_bwd(spec, res, dy):
    x, w = res
    return input_grad(spec, x.shape[1:3], dy, w), weight_grad(spec, w.shape[:2], x, dy)


forward.defvjp(_forward_fwd, _forward_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def input_grad(spec: Spec, in_hw, dy, w):
    return _input_grad_call(spec, in_hw, dy, w)


def _input_grad_fwd(spec, in_hw, dy, w):
    return input_grad(spec, in_hw, dy, w), (dy, w)


def _input_grad_bwd(spec, in_hw, res, g):
    dy, w = res
    return forward(spec, g, w), weight_grad(spec, w.shape[:2], g, dy)


input_grad.defvjp(_input_grad_fwd, _input_grad_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def weight_grad(spec: Spec, kernel_hw, x, dy):
    return _weight_grad_call(spec, kernel_hw, x, dy)


def _weight_grad_fwd(spec, kernel_hw, x, dy):
    return weight_grad(spec, kernel_hw, x, dy), (x, dy)


def _weight_grad_bwd(spec, kernel_hw, res, g):
    x, dy = res
    return input_grad(spec, x.shape[1:3], dy, g), forward(spec, x, g)


weight_grad.defvjp(_weight_grad_fwd, _weight_grad_bwd)


# Entry points for jaxcnn.ops.conv: the native kernels on the CPU, `default` elsewhere.

def conv_general(x, w, *, stride: Pair, pads, dilation: Pair, groups: int):
    """`lax.conv_general_dilated` in jaxcnn's layouts, native on the CPU."""
    spec = Spec(tuple(stride), tuple(map(tuple, pads)), tuple(dilation), groups)
    return lax.platform_dependent(x, w, cpu=functools.partial(forward, spec),
                                  default=functools.partial(xla_forward, spec))


def conv_input_grad(y, w, *, in_hw: Pair, stride: Pair, pads, default):
    """The input gradient of an ungrouped, undilated convolution (`conv_transpose`),
    native on the CPU; `default(y, w)` elsewhere."""
    spec = Spec(tuple(stride), tuple(map(tuple, pads)))
    return lax.platform_dependent(y, w, cpu=functools.partial(input_grad, spec, tuple(in_hw)), default=default)
