"""Pure functions on arrays: convolution in both semantics, pooling,
normalisation, region pooling and the arithmetic of output sizes and costs.

Images are NHWC and kernels HWIO throughout. Nothing here holds state or
parameters; every function is jit-able and differentiable.
"""

from jaxcnn.ops.arithmetic import conv_macs, conv_output_size, receptive_field
from jaxcnn.ops.conv import (
    check_image,
    conv_transpose,
    convolve,
    cross_correlate,
    flip_kernel,
    normalize_padding,
)
from jaxcnn.ops.im2col import conv_im2col, conv_reference, im2col
from jaxcnn.ops.normalization import batch_norm, local_response_norm
from jaxcnn.ops.pooling import avg_pool, global_avg_pool, max_pool
from jaxcnn.ops.region import SPP_CORNERS, roi_pool, roi_spatial_pyramid_pool, spatial_pyramid_pool
from jaxcnn.ops.unpool import max_pool_with_argmax, max_unpool

__all__ = [
    "avg_pool",
    "batch_norm",
    "check_image",
    "conv_im2col",
    "conv_macs",
    "conv_output_size",
    "conv_reference",
    "conv_transpose",
    "convolve",
    "cross_correlate",
    "flip_kernel",
    "global_avg_pool",
    "im2col",
    "local_response_norm",
    "max_pool",
    "normalize_padding",
    "receptive_field",
    "max_pool_with_argmax",
    "max_unpool",
    "roi_pool",
    "roi_spatial_pyramid_pool",
    "spatial_pyramid_pool",
    "SPP_CORNERS",
]
