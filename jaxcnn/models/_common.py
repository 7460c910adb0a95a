"""Pieces shared by the model families."""

from __future__ import annotations

import contextlib
import functools
import contextvars
from typing import Any, Optional, Sequence, Union

from jaxcnn._validation import check_array
from jaxcnn.layers import BatchNorm, Conv, Dense

# A layer as a block receives it: a Flax module class, or a functools.partial of one with the fields its
# model shares bound (flax's examples/imagenet passes a ResNet block `conv: ModuleDef` and `norm: ModuleDef`).
ModuleDef = Any

# Set while a convolutionalized model runs: an exact input size becomes a minimum.
_SIZE_AT_LEAST = contextvars.ContextVar("jaxcnn_size_at_least", default=False)


@contextlib.contextmanager
def exact_size_as_minimum():
    """Within this context validate_image treats exact_size as a minimum size
    (used by jaxcnn.models.convolutionalize, whose models take larger images)."""
    token = _SIZE_AT_LEAST.set(True)
    try:
        yield
    finally:
        _SIZE_AT_LEAST.reset(token)


def validate_image(x, *, model: str, channels: Optional[int], min_size: Union[int, Sequence[int]] = 1,
                   exact_size: Optional[Sequence[int]] = None) -> None:
    """Refuse an input the model cannot take, naming the expected shape.

    Args:
      x: the batch given to the model (NHWC).
      model: the model's name, for the message.
      channels: the channel count it needs (None: any).
      min_size: the smallest (H, W) it can reduce without a negative size.
      exact_size: an (H, W) it needs exactly (e.g. a dense classifier after flattening).
    """
    shape = getattr(x, "shape", None)
    _check_dtype(x, model)
    if exact_size is not None and _SIZE_AT_LEAST.get():
        min_size, exact_size = tuple(exact_size), None
    if getattr(x, "ndim", None) != 4:
        raise ValueError(
            f"{model} expects images of rank 4 (N, H, W, C), got shape {shape}; "
            "add a batch axis with x[None] or a channel axis with x[..., None]."
        )
    _, h, w, c = x.shape
    expected = "(N, {}, {}, {})".format(
        *(exact_size if exact_size is not None else (f">={_pair(min_size)[0]}", f">={_pair(min_size)[1]}")),
        channels if channels is not None else "C")
    if channels is not None and c != channels:
        raise ValueError(
            f"{model} expects {channels} input channel(s), got {c} (shape {tuple(shape)}); expected {expected}. "
            f"Convert the images, or create the model with in_channels/input settings that match."
        )
    if exact_size is not None and (h, w) != tuple(exact_size):
        raise ValueError(
            f"{model} expects images of {exact_size[0]}x{exact_size[1]}, got {h}x{w} (shape {tuple(shape)}); "
            f"expected {expected}. Resize or pad the images."
        )
    mh, mw = _pair(min_size)
    if h < mh or w < mw:
        raise ValueError(
            f"{model} needs images of at least {mh}x{mw}, got {h}x{w} (shape {tuple(shape)}); "
            f"expected {expected}. Resize or pad the images."
        )


def _check_dtype(x, model: str) -> None:
    """Images are floating-point arrays: refuse lists, strings, bools, complex numbers, and integer pixels
    (raw 0..255 values the model would take for normalised ones)."""
    try:
        check_array(x, "images")
    except TypeError as e:
        raise TypeError(f"{model}: {e}") from None


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_for(model, **fixed):
    """jaxcnn.layers.Conv with `model`'s conv_mode and dtype (and `fixed`: use_bias, kernel_init, ...) bound
    once: the one place a family states what its convolutions share."""
    return functools.partial(Conv, conv_mode=model.conv_mode, dtype=model.dtype, **fixed)


def norm_for(model, **fixed):
    """jaxcnn.layers.BatchNorm with `model`'s bn_axis_name and dtype (and `fixed`: momentum, epsilon, ...)
    bound once."""
    return functools.partial(BatchNorm, axis_name=model.bn_axis_name, dtype=model.dtype, **fixed)


def dense_for(model, **fixed):
    """flax.linen.Dense with `model`'s dtype (and `fixed`) bound once."""
    return functools.partial(Dense, dtype=model.dtype, **fixed)
