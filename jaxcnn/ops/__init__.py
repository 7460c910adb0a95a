"""Pure functions on arrays: convolution in both semantics, pooling,
normalisation, region pooling and the arithmetic of output sizes and costs.

Images are NHWC and kernels HWIO throughout. Nothing here holds state or
parameters; every function is jit-able and differentiable.
"""

from jaxcnn.ops.conv import (
    convolve,
    cross_correlate,
    flip_kernel,
    normalize_padding,
)

__all__ = [
    "convolve",
    "cross_correlate",
    "flip_kernel",
    "normalize_padding",
]
