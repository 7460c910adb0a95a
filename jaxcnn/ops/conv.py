"""Two-dimensional convolution in both of its meanings.

Images are NHWC (batch, height, width, channels) and kernels HWIO (height,
width, in-channels per group, out-channels), JAX's own layout.

`cross_correlate` slides the kernel over the image as it is: what
`lax.conv_general_dilated`, and every deep-learning framework, calls
"convolution". `convolve` is the textbook operation
[I*K](i, j) = sum_{m,n} I(m, n) K(i-m, j-n): the same sliding product with the
kernel flipped on both spatial axes. A network built on either learns the same
functions; its kernels are flips of each other.
"""

from __future__ import annotations

from typing import Union

import jax.numpy as jnp
from jax import lax

from jaxcnn._validation import as_pair
from jaxcnn.ops import native

IntOrPair = Union[int, tuple[int, int]]
Padding = Union[str, int, tuple[int, int], tuple[tuple[int, int], tuple[int, int]]]

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def normalize_padding(padding: Padding) -> Union[str, tuple[tuple[int, int], tuple[int, int]]]:
    """'VALID' / 'SAME', an int p (p on every side), a pair (ph, pw) or
    ((top, bottom), (left, right)) -> 'VALID', 'SAME' or explicit pairs."""
    if isinstance(padding, str):
        p = padding.upper()
        if p not in ("VALID", "SAME"):
            raise ValueError(
                f"padding must be 'VALID', 'SAME', an int or ((top, bottom), (left, right)); got {padding!r}"
            )
        return p
    if isinstance(padding, bool):
        raise TypeError(f"padding must be 'VALID', 'SAME', an int or pairs, got {padding!r}")
    if isinstance(padding, int):
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        return ((padding, padding), (padding, padding))
    try:
        items = tuple(padding)
    except TypeError:
        raise TypeError(f"padding must be 'VALID', 'SAME', an int or pairs, got {padding!r}") from None
    if len(items) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        pairs = ((items[0], items[0]), (items[1], items[1]))
    elif len(items) == 2 and all(len(tuple(v)) == 2 for v in items):
        pairs = tuple((int(a), int(b)) for a, b in items)
    else:
        raise ValueError(
            f"padding must be 'VALID', 'SAME', an int, (ph, pw) or ((top, bottom), (left, right)); got {padding!r}"
        )
    if min(min(p) for p in pairs) < 0:
        raise ValueError(f"padding must be >= 0 on every side, got {padding!r}")
    return pairs  # type: ignore[return-value]


def explicit_padding(padding, in_hw, kernel_hw, stride, dilation) -> tuple[tuple[int, int], tuple[int, int]]:
    """Padding as ((top, bottom), (left, right)); 'SAME' resolved as XLA does."""
    padding = normalize_padding(padding)
    if padding == "VALID":
        return ((0, 0), (0, 0))
    if padding == "SAME":
        return tuple(lax.padtype_to_pads(tuple(in_hw), tuple(
            (k - 1) * d + 1 for k, d in zip(kernel_hw, dilation)), tuple(stride), "SAME"))  # type: ignore[return-value]
    return padding  # type: ignore[return-value]


def check_image(x, what: str = "x") -> None:
    if getattr(x, "ndim", None) != 4:
        raise ValueError(
            f"{what} must be a batch of images of rank 4 (N, H, W, C), got shape {getattr(x, 'shape', None)}; "
            "add a batch axis with x[None] or a channel axis with x[..., None]."
        )


def check_conv_args(x, w, *, stride, padding, dilation, groups):
    """Validate a convolution's arguments; returns (stride, padding pairs, dilation)."""
    check_image(x)
    if getattr(w, "ndim", None) != 4:
        raise ValueError(
            f"kernel must have rank 4 (KH, KW, C_in/groups, C_out) in HWIO layout, got shape {getattr(w, 'shape', None)}; "
            "a single (KH, KW) filter is w[:, :, None, None]."
        )
    stride = as_pair(stride, "stride")
    dilation = as_pair(dilation, "dilation")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    n, h, wd, c = x.shape
    kh, kw, cin, cout = w.shape
    if c % groups:
        raise ValueError(f"groups={groups} must divide the input channels {c} (x shape {x.shape}); choose a divisor of {c}.")
    if cout % groups:
        raise ValueError(f"groups={groups} must divide the kernel's out-channels {cout} (kernel shape {w.shape}).")
    if cin * groups != c:
        raise ValueError(
            f"x has {c} channels but the kernel {w.shape} expects C_in/groups={cin} with groups={groups}, "
            f"i.e. {cin * groups} channels; make the kernel's third axis {c // groups}."
        )
    pads = explicit_padding(padding, (h, wd), (kh, kw), stride, dilation)
    for size, k, d, (lo, hi), axis in ((h, kh, dilation[0], pads[0], "height"), (wd, kw, dilation[1], pads[1], "width")):
        eff = (k - 1) * d + 1
        if eff > size + lo + hi:
            raise ValueError(
                f"kernel {axis} {k} (dilated to {eff}) is larger than the padded input {axis} "
                f"{size}+{lo}+{hi}={size + lo + hi} (x {x.shape}, kernel {w.shape}); use a larger input, more padding or a smaller kernel."
            )
    return stride, pads, dilation


def _native_ok(x, w) -> bool:
    """Whether the CPU branch may take jaxcnn's oneDNN kernels (`jaxcnn.ops.native`)."""
    return x.size > 0 and w.size > 0 and native.supports(x.dtype)


def promote(x, w):
    """x and w as arrays of their common dtype (the convolution computes in it)."""
    dtype = jnp.result_type(x, w)
    return jnp.asarray(x, dtype), jnp.asarray(w, dtype)


def cross_correlate(x, w, *, stride: IntOrPair = 1, padding: Padding = "VALID",
                    dilation: IntOrPair = 1, groups: int = 1):
    """Cross-correlation y[n,i,j,o] = sum_{a,b,c} x[n, i*s+a*d, j*s+b*d, c] w[a,b,c,o].

    Args:
      x: images, NHWC.
      w: kernel, HWIO, with I = C / groups.
      stride, dilation: an int or a pair (height, width).
      padding: "VALID", "SAME", an int, (ph, pw) or ((top, bottom), (left, right)).
      groups: channel groups (AlexNet's two towers are groups=2).
    Returns:
      NHWC output of size floor((H + 2P - D(K-1) - 1) / S) + 1 per spatial axis.
    """
    stride, pads, dilation = check_conv_args(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x, w = promote(x, w)
    if _native_ok(x, w):
        return native.conv_general(x, w, stride=stride, pads=pads, dilation=dilation, groups=groups)
    return lax.conv_general_dilated(
        x, w, window_strides=stride, padding=pads, rhs_dilation=dilation,
        dimension_numbers=DIMENSION_NUMBERS, feature_group_count=groups)


def flip_kernel(w):
    """The kernel rotated by 180 degrees: reversed on both spatial axes (HWIO)."""
    return w[::-1, ::-1]


def convolve(x, w, *, stride: IntOrPair = 1, padding: Padding = "VALID",
             dilation: IntOrPair = 1, groups: int = 1):
    """True convolution [I*K](i, j) = sum_{m,n} I(m, n) K(i-m, j-n), images NHWC, kernels HWIO.

    Equal to `cross_correlate(x, flip_kernel(w), ...)`; the arguments mean the same.
    """
    check_conv_args(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return cross_correlate(x, flip_kernel(w), stride=stride, padding=padding, dilation=dilation, groups=groups)


def _transpose_sizes(out_size: int, kernel: int, stride: int, padding, output_size, axis: str):
    """The input sizes a cross_correlate maps to `out_size` along one axis, and the one chosen.

    Returns (size, (lo, hi)): the forward input size and its padding.
    """
    if padding == "SAME":
        # ceil(H / S) = O  <=>  (O - 1) S + 1 <= H <= O S; default O S (the input upsampled by S).
        first, last, default = (out_size - 1) * stride + 1, out_size * stride, out_size * stride
    else:
        lo, hi = padding
        # floor((H + lo + hi - K) / S) + 1 = O  <=>  H in [(O - 1) S + K - lo - hi, ... + S - 1].
        first = (out_size - 1) * stride + kernel - lo - hi
        last = first + stride - 1
        first = max(first, 1)
        default = first
    if last < 1:
        raise ValueError(
            f"conv_transpose: no input {axis} maps to {out_size} with kernel {kernel}, stride {stride} and "
            f"padding {padding}; use less padding."
        )
    if output_size is None:
        size = default
    else:
        size = output_size
        if not first <= size <= last:
            reach = f"{first}" if first == last else f"{first}..{last}"
            raise ValueError(
                f"conv_transpose: output {axis} {size} is not reachable: cross_correlate with kernel {kernel}, "
                f"stride {stride} and padding {padding} maps input {axis}s {reach} to {out_size}; "
                f"pass an output_size {axis} in {reach}."
            )
    if padding == "SAME":
        pads = tuple(lax.padtype_to_pads((size,), (kernel,), (stride,), "SAME")[0])
    else:
        pads = tuple(padding)
    return size, pads


def conv_transpose(y, w, *, stride: IntOrPair = 1, padding: Padding = "VALID", output_size=None):
    """The adjoint of `cross_correlate` with the same kernel, stride and padding.

    <cross_correlate(x, w, stride=s, padding=p), y> = <x, conv_transpose(y, w, stride=s, padding=p)>
    for every x and y: the "deconvolution" (fractionally strided convolution)
    of FCN decoders, and exactly what autodiff gives as the input gradient of
    `cross_correlate`.

    Args:
      y: NHWC, with as many channels as the kernel's out-channels.
      w: the forward kernel, HWIO (KH, KW, C_in, C_out); the result has C_in channels.
      stride: the forward stride, an int or a pair; it becomes the upsampling factor.
      padding: the forward padding ("VALID", "SAME", an int, (ph, pw) or
        ((top, bottom), (left, right))).
      output_size: (H, W) of the forward input. With stride > 1 several input
        sizes give the same output size; by default the smallest is taken for
        explicit padding and O * S for "SAME" (as Flax and TensorFlow do). A
        size no forward input could have raises ValueError naming the reachable ones.
    Returns:
      NHWC of shape (N, H, W, C_in).

    How: dilate y by the stride (S - 1 zeros between pixels), then take the
    full convolution with w (i.e. cross-correlate with the flipped kernel, in
    and out channels swapped) and crop the forward padding off again.
    """
    check_image(y, "y")
    if getattr(w, "ndim", None) != 4:
        raise ValueError(
            f"kernel must have rank 4 (KH, KW, C_in, C_out) in HWIO layout, got shape {getattr(w, 'shape', None)}; "
            "a single (KH, KW) filter is w[:, :, None, None]."
        )
    kh, kw, cin, cout = w.shape
    if y.shape[-1] != cout:
        raise ValueError(
            f"y has {y.shape[-1]} channels (shape {y.shape}) but the kernel {w.shape} (HWIO) produces {cout}; "
            f"conv_transpose takes the kernel of the forward cross_correlate, so y needs {cout} channels."
        )
    stride = as_pair(stride, "stride")
    pad = normalize_padding(padding)
    if output_size is not None:
        output_size = as_pair(output_size, "output_size")
    if pad == "VALID":
        pad = ((0, 0), (0, 0))
    sizes, fwd_pads = [], []
    for i, axis in enumerate(("height", "width")):
        size, pads = _transpose_sizes(
            y.shape[1 + i], w.shape[i], stride[i], pad if pad == "SAME" else pad[i],
            None if output_size is None else output_size[i], axis)
        sizes.append(size)
        fwd_pads.append(pads)
    # Position u of the padded forward input received y[o] * w[u - o S]: the full
    # convolution of the dilated y with w. Window offsets: K - 1 - lo before,
    # and whatever makes the length H after (negative pads crop).
    conv_pads = []
    for size, k, s, o, (lo, _hi) in zip(sizes, (kh, kw), stride, y.shape[1:3], fwd_pads):
        conv_pads.append((k - 1 - lo, size + lo - (o - 1) * s - 1))
    y, w = promote(y, w)

    def xla(y, w):
        return lax.conv_general_dilated(
            y, flip_kernel(w), window_strides=(1, 1), padding=conv_pads, lhs_dilation=stride,
            dimension_numbers=("NHWC", "HWOI", "NHWC"))

    if _native_ok(y, w):
        # The input gradient of the forward convolution: oneDNN's backward-data kernel on the CPU.
        return native.conv_input_grad(y, w, in_hw=sizes, stride=stride, pads=fwd_pads, default=xla)
    return xla(y, w)
