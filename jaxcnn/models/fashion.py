"""FashionCNN: a small, fast and accurate network for 28x28 grey images.

The default model of the training job (Fashion-MNIST on a CPU). Three
conv-BatchNorm-ReLU stages (3x3 kernels, 32 -> 64 -> 128 channels), each
followed by 2x2 max pooling (28 -> 14 -> 7 -> 3), then a 128-unit dense layer
with dropout and the classifier:

    conv1 3x3x1x32   + BN + ReLU, maxpool 2   28x28 -> 14x14
    conv2 3x3x32x64  + BN + ReLU, maxpool 2   14x14 -> 7x7
    conv3 3x3x64x128 + BN + ReLU, maxpool 2   7x7   -> 3x3
    flatten (3*3*128 = 1152), dropout, fc4 1152->128 + ReLU, dropout, fc5 128->classes

`res_blocks` adds residual blocks after a stage's pool, at the pooled
resolution (ResNet's basic block: conv-BN-ReLU-conv-BN, identity shortcut,
ReLU: jaxcnn.models.resnet.ResidualBlock), as the ResNet-9 of the fast CIFAR recipes does: (0, 0, 1) puts one
128-channel block at 3x3 (2 x 9 x 128 x 128 multiply-adds per position, about
2.7M per image, a third more than the plain net's 7.6M). The default (0, 0, 0)
is the plain net.

Convolutions use SAME padding and no bias (BatchNorm follows). Images NHWC,
kernels HWIO.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxcnn import layers, ops
from jaxcnn.models._common import conv_for, dense_for, norm_for, validate_image
from jaxcnn.models.registry import Family, register_family, register_model
from jaxcnn.models.resnet import ResidualBlock


def _identity_norm(name=None):
    """A stand-in for BatchNorm in ResidualBlock when the net has none (batch_norm=False)."""
    return lambda y, use_running_average=None: y


class FashionCNN(nn.Module):
    """Small BatchNorm CNN for 28x28 images (NHWC).

    Attributes:
      num_classes: classifier outputs.
      widths: channels of conv1, conv2, conv3.
      hidden: units of fc4.
      dropout: dropout rate before fc4 and before fc5 (0 disables).
      batch_norm: use BatchNorm after each convolution (ablation switch; without
        it the convolutions carry a bias).
      in_channels: channels of the input images.
      conv_mode: "cross_correlation" or "convolution" (kernel flipped).
      dtype: computation dtype (parameters stay float32).
      bn_axis_name: axis over which BatchNorm averages statistics under pmap.
      res_blocks: residual blocks after each stage's pool (one count per stage).
      pool_last: pool after the last stage (False: fc4 sees its whole 7x7 map,
        7*7*128 = 6272 inputs, at 0.6M more multiply-adds and 0.66M more parameters).
    """

    num_classes: int = 10
    widths: Sequence[int] = (32, 64, 128)
    hidden: int = 128
    dropout: float = 0.3
    batch_norm: bool = True
    in_channels: int = 1
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None
    bn_axis_name: Optional[str] = None
    res_blocks: Sequence[int] = (0, 0, 0)
    pool_last: bool = True

    @nn.compact
    def __call__(self, x, train: bool = False):
        validate_image(x, model="FashionCNN", channels=self.in_channels, min_size=8)
        if len(self.res_blocks) != len(self.widths):
            raise ValueError(f"FashionCNN: res_blocks {tuple(self.res_blocks)} needs one count per stage of widths "
                             f"{tuple(self.widths)}; e.g. res_blocks={(0,) * (len(self.widths) - 1) + (1,)}.")
        x = jnp.asarray(x, self.dtype) if self.dtype is not None else x
        conv = conv_for(self)
        dense = dense_for(self)
        norm = norm_for(self, use_running_average=not train, momentum=0.9, epsilon=1e-5)
        # res_blocks: ResNet's basic block with this net's layers; without BatchNorm its convolutions carry a bias
        # and its norm is the identity
        block_conv = conv_for(self, use_bias=not self.batch_norm)
        block_norm = norm_for(self, momentum=0.9, epsilon=1e-5) if self.batch_norm else _identity_norm
        for i, width in enumerate(self.widths, start=1):
            x = conv(width, 3, padding="SAME", use_bias=not self.batch_norm, name=f"conv{i}")(x)
            if self.batch_norm:
                x = norm(name=f"bn{i}")(x)
            x = nn.relu(x)
            if i < len(self.widths) or self.pool_last:
                x = ops.max_pool(x, 2)
            for j in range(self.res_blocks[i - 1]):
                x = ResidualBlock(width, conv=block_conv, norm=block_norm, name=f"res{i}_{j}")(x, train)
        x = layers.Flatten()(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.relu(dense(self.hidden, name="fc4")(x))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return dense(self.num_classes, name="fc5")(x)


register_family(FashionCNN, Family(head=lambda m: "fc5"))
register_model("fashion_cnn", FashionCNN, input_shape=(28, 28, 1),
               description="Small 3-stage BatchNorm CNN for Fashion-MNIST (the default training model)")
register_model("fashion_cnn_small", FashionCNN, input_shape=(28, 28, 1), widths=(16, 32, 64),
               description="FashionCNN at half width (16-32-64): about 2x faster on a CPU")
register_model("fashion_cnn_tiny", FashionCNN, input_shape=(28, 28, 1), widths=(4, 8, 8), hidden=16, dropout=0.0,
               description="A very small FashionCNN for tests and smoke runs")
