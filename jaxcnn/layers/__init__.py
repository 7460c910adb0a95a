"""Flax linen layers that hold parameters and call `jaxcnn.ops`: the
convolution with its `conv_mode`, pooling and LRN as layers (so they show in
summaries), and LeNet-5's pieces, and the BatchNorm every model uses. Images NHWC, kernels HWIO."""

from jaxcnn.layers.conv import (
    CONV_MODES,
    LRN,
    AvgPool,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Initializer,
    MaxPool,
    check_conv_mode,
)
from jaxcnn.layers.norm import BatchNorm
from jaxcnn.layers.lenet import (
    LECUN_TANH_A,
    LECUN_TANH_S,
    LENET_C3_TABLE,
    EuclideanRBF,
    PartialConv,
    ScaledTanh,
    Subsampling,
    rbf_prototypes,
    scaled_tanh,
)

__all__ = [
    "AvgPool", "BatchNorm", "CONV_MODES", "Conv", "Dense", "Dropout", "EuclideanRBF", "Flatten", "GlobalAvgPool",
    "Initializer", "LECUN_TANH_A", "LECUN_TANH_S", "LENET_C3_TABLE", "LRN", "MaxPool", "PartialConv", "ScaledTanh",
    "Subsampling", "check_conv_mode", "rbf_prototypes", "scaled_tanh",
]
