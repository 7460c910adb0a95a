"""FCN's trick (Long et al. 2015, section 3.1): a classifier's fully connected
layers are convolutions whose kernels cover their whole input. Recast them so
and the network slides over larger images, giving a class heat map.

    conv_model, conv_vars = jaxcnn.convolutionalize(model, variables, input_shape=(32, 32, 3))
    heat = conv_model.apply(conv_vars, big_images)   # (N, H'', W'', num_classes)

At the original input size the heat map is (N, 1, 1, num_classes) and equals
the original logits.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import unfreeze
from jax import lax

from jaxcnn import ops
from jaxcnn.layers import Flatten
from jaxcnn.models._common import exact_size_as_minimum
from jaxcnn.models.registry import module_fields, variants_of


class Convolutionalized(nn.Module):
    """`model` with each jaxcnn.layers.Flatten an identity and each nn.Dense
    named in `dense_paths` (those applied after a Flatten) a VALID
    convolution. Its variables are the model's under the key "model", the
    converted Dense kernels reshaped to HWIO: (h, w, c, out) for the first
    after a Flatten of an (h, w, c) map, (1, 1, in, out) for the rest.

    __call__(x, *args, **kwargs) passes through to the model (e.g. train=...).
    Images NHWC.
    """

    model: nn.Module
    dense_paths: Sequence[tuple] = ()

    @nn.compact
    def __call__(self, x, *args, **kwargs):
        paths = {tuple(p) for p in self.dense_paths}

        def interceptor(next_fun, fargs, fkwargs, context):
            mdl = context.module
            if context.method_name != "__call__":
                return next_fun(*fargs, **fkwargs)
            if isinstance(mdl, Flatten):
                return fargs[0]
            if isinstance(mdl, nn.Dense) and tuple(mdl.path[1:]) in paths:
                y = fargs[0]
                kernel = mdl.get_variable("params", "kernel")
                bias = mdl.get_variable("params", "bias") if mdl.use_bias else None
                dtype = mdl.dtype or jnp.result_type(y, kernel)
                if mdl.precision is None:  # jaxcnn's convolution: native on the CPU
                    y = ops.cross_correlate(y.astype(dtype), kernel.astype(dtype))
                else:
                    y = lax.conv_general_dilated(y.astype(dtype), kernel.astype(dtype), (1, 1), "VALID",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                 precision=mdl.precision)
                return y if bias is None else y + bias.astype(dtype)
            return next_fun(*fargs, **fkwargs)

        with exact_size_as_minimum(), nn.intercept_methods(interceptor):
            return self.model(x, *args, **kwargs)


def _default_input_shape(model):
    shapes = set()
    for spec in variants_of(type(model)):
        ref = spec.module(**spec.fields)
        if all(getattr(ref, f) == getattr(model, f) for f in module_fields(spec.module)
               if f not in ("num_classes", "dtype", "conv_mode")):
            shapes.add(spec.input_shape)
    if len(shapes) != 1:
        raise ValueError(f"cannot tell the input size {type(model).__name__} was built for; "
                         "pass input_shape=(H, W, C)")
    return shapes.pop()


def convolutionalize(model: nn.Module, variables, input_shape: Optional[Sequence[int]] = None
                     ) -> tuple[Convolutionalized, Any]:
    """Turn a classifier's dense head (jaxcnn.layers.Flatten then nn.Dense
    layers) into convolutions.

    Args:
      model: a Flax module whose head flattens with jaxcnn.layers.Flatten and
        applies nn.Dense layers after it.
      variables: its trained variables.
      input_shape: the (H, W, C) it was trained on; None looks it up in the
        registry (when the model matches a registered variant).

    Returns:
      (conv_model, conv_variables): conv_model.apply(conv_variables, x) on
      images NHWC of any size >= input_shape gives (N, H'', W'', num_classes)
      logits, one per input_shape window at the network's output stride; at
      input_shape itself, (N, 1, 1, num_classes) equal to the original logits.
    """
    if input_shape is None:
        input_shape = _default_input_shape(model)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, C), got {input_shape}")
    found = []  # (path in the model, (h, w, c) of the Flatten input or None, in, out)
    state = {"flat": None, "first": False}

    def recorder(next_fun, fargs, fkwargs, context):
        mdl = context.module
        if context.method_name != "__call__":
            return next_fun(*fargs, **fkwargs)
        if isinstance(mdl, Flatten):
            state["flat"], state["first"] = tuple(fargs[0].shape[1:]), True
        elif isinstance(mdl, nn.Dense) and state["flat"] is not None:
            y = next_fun(*fargs, **fkwargs)
            found.append((tuple(mdl.path), state["flat"] if state["first"] else None,
                          fargs[0].shape[-1], y.shape[-1]))
            state["first"] = False
            return y
        return next_fun(*fargs, **fkwargs)

    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    with nn.intercept_methods(recorder):
        jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    if not found:
        raise ValueError(f"{type(model).__name__} has no jaxcnn.layers.Flatten followed by nn.Dense; "
                         "nothing to convolutionalize")

    params = unfreeze(variables)
    for path, hwc, din, dout in found:
        node = params["params"]
        for name in path[:-1]:
            node = node[name]
        leaf = node[path[-1]]
        shape = (*hwc, dout) if hwc is not None else (1, 1, din, dout)
        leaf["kernel"] = jnp.reshape(leaf["kernel"], shape)
    conv_vars = {col: {"model": tree} for col, tree in params.items()}
    return Convolutionalized(model, tuple(p for p, *_ in found)), conv_vars
