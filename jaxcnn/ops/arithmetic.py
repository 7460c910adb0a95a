"""The arithmetic of convolutional layers: output sizes, receptive fields, costs."""

from __future__ import annotations

from typing import Iterable, Sequence, Union

from jaxcnn._validation import as_int, as_pair


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: Union[int, str, tuple[int, int]] = 0,
                     dilation: int = 1) -> int:
    """floor((H + 2P - D(FH - 1) - 1) / S) + 1, the seed's OH = (H + 2P - FH) / S + 1.

    `padding` may be an int P (both sides), a pair (before, after), 'VALID' or
    'SAME' (then the output is ceil(H / S)).
    """
    for what, v in (("size", size), ("kernel", kernel), ("stride", stride), ("dilation", dilation)):
        try:
            as_int(v, what, minimum=1)
        except TypeError:
            raise TypeError(f"conv_output_size: {what} must be a positive int, got {v!r}") from None
        except ValueError:
            raise ValueError(f"conv_output_size: {what} must be a positive int, got {v!r}") from None
    size, kernel, stride, dilation = (int(v) for v in (size, kernel, stride, dilation))
    if isinstance(padding, str):
        if padding.upper() == "SAME":
            return -(-size // stride)
        if padding.upper() != "VALID":
            raise ValueError(f"padding must be an int, a pair, 'VALID' or 'SAME'; got {padding!r}")
        padding = 0
    lo, hi = as_pair(padding, "conv_output_size padding", minimum=0)
    eff = dilation * (kernel - 1) + 1
    if size + lo + hi < eff:
        raise ValueError(f"conv_output_size: kernel {kernel} (dilated {eff}) is larger than the padded input "
                         f"{size}+{lo}+{hi}={size + lo + hi}; use a larger input, more padding or a smaller kernel.")
    return (size + lo + hi - eff) // stride + 1


def receptive_field(layers: Iterable[Sequence[int]]) -> int:
    """Receptive field of a stack of layers, each (kernel, stride) or (kernel, stride, dilation).

    r = 1 + sum_l (k_l - 1) d_l prod_{i<l} s_i; two 3x3 stride-1 convolutions see 5x5.
    """
    rf, jump = 1, 1
    for layer in layers:
        if not isinstance(layer, (tuple, list)) or len(layer) not in (2, 3):
            raise ValueError(f"receptive_field layers are (kernel, stride) or (kernel, stride, dilation), got "
                             f"{layer!r}; e.g. [(3, 1), (3, 1)].")
        k, s, d = (as_int(v, what, minimum=1) for v, what in zip(tuple(layer) + (1,) * (3 - len(layer)),
                                                                ("kernel", "stride", "dilation")))
        rf += (k - 1) * d * jump
        jump *= s
    return rf


def conv_macs(out_hw: Union[int, tuple[int, int]], kernel: Union[int, tuple[int, int]], in_channels: int,
              out_channels: int, groups: int = 1) -> int:
    """Multiply-adds of one convolution for one image: OH*OW*C_out * KH*KW*C_in/groups.

    The seed's GoogLeNet example: 14x14x480 to 48 maps of 5x5 costs
    conv_macs(14, 5, 480, 48) = 112,896,000 ~ 112.9M.
    """
    oh, ow = as_pair(out_hw, "out_hw")
    kh, kw = as_pair(kernel, "kernel")
    in_channels = as_int(in_channels, "in_channels", minimum=1)
    out_channels = as_int(out_channels, "out_channels", minimum=1)
    groups = as_int(groups, "groups", minimum=1)
    if in_channels % groups:
        raise ValueError(f"conv_macs: groups={groups} must divide in_channels={in_channels}; "
                         f"use a divisor of {in_channels}.")
    return oh * ow * out_channels * kh * kw * (in_channels // groups)
