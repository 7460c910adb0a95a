"""Small CNNs of the study notes: a stack of VALID convolutions with ReLU,
some followed by 2x2 max pooling, then Flatten and dense layers.

`keras_cifar_cnn` — the TensorFlow CIFAR-10 tutorial network on 32x32x3:

    conv1  Conv2D 32@3x3    (30, 30, 32)     896 = 32 x (27 + 1)
    pool1  MaxPool 2x2      (15, 15, 32)       0
    conv2  Conv2D 64@3x3    (13, 13, 64)  18,496 = (9 x 32 + 1) x 64
    pool2  MaxPool 2x2      (6, 6, 64)         0
    conv3  Conv2D 64@3x3    (4, 4, 64)    36,928 = (9 x 64 + 1) x 64
    flatten                 (1024)             0
    fc1    Dense 64         (64)          65,600 = (1024 + 1) x 64
    fc2    Dense 10         (10)             650 = (64 + 1) x 10
                                         122,570

`simple_convnet` — the from-scratch SimpleConvNet on 28x28x1: conv 30@5x5,
ReLU, 2x2 pool, Affine 100, ReLU, Affine 10:
(25 + 1) x 30 + (30 x 12 x 12 + 1) x 100 + 101 x 10 = 433,890 parameters.

Layer names conv1.., pool1.., flatten, fc1... Images NHWC, kernels HWIO.
"""

from __future__ import annotations


from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxcnn.layers import Flatten, MaxPool
from jaxcnn.models._common import conv_for, dense_for, validate_image
from jaxcnn.models.registry import Family, register_family, register_model


ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh}


class SmallCNN(nn.Module):
    """conv (+ReLU, + optional 2x2 max pool) x len(conv_features) -> Flatten ->
    Dense+ReLU x len(hidden) -> Dense(num_classes).

    Attributes:
      num_classes: output classes.
      conv_features: maps of each VALID convolution.
      kernel_size: kernel of every convolution.
      pool_after: whether a 2x2 stride-2 max pool follows each convolution.
      hidden: widths of the hidden dense layers.
      activation: "relu" (the default) or "tanh" (saturating, for Krizhevsky et al.'s figure 1), after every
        convolution and hidden dense layer.
      image_size: the (square) input size; the dense head is built for it.
      in_channels: channels of the input images.
      conv_mode: "cross_correlation" or "convolution" for every convolution.
      dtype: computation dtype.

    Input: (N, image_size, image_size, in_channels) NHWC. Output: (N, num_classes) logits.
    """

    num_classes: int = 10
    conv_features: Sequence[int] = (32, 64, 64)
    kernel_size: int = 3
    pool_after: Sequence[bool] = (True, True, False)
    hidden: Sequence[int] = (64,)
    activation: str = "relu"
    image_size: int = 32
    in_channels: int = 3
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        validate_image(x, model="SmallCNN", channels=self.in_channels, exact_size=(self.image_size, self.image_size))
        act = ACTIVATIONS[self.activation]
        conv = conv_for(self, kernel_size=self.kernel_size)
        dense = dense_for(self)
        n_pool = 0
        for i, (f, pool) in enumerate(zip(self.conv_features, self.pool_after), start=1):
            x = act(conv(f, name=f"conv{i}")(x))
            if pool:
                n_pool += 1
                x = MaxPool(2, 2, name=f"pool{n_pool}")(x)
        x = Flatten(name="flatten")(x)
        for j, f in enumerate(self.hidden, start=1):
            x = act(dense(f, name=f"fc{j}")(x))
        return dense(self.num_classes, name=f"fc{len(self.hidden) + 1}")(x)


def _check(fields: dict) -> None:
    if len(fields["pool_after"]) != len(fields["conv_features"]):
        raise ValueError(f"SmallCNN pool_after {tuple(fields['pool_after'])} needs one entry per convolution "
                         f"{tuple(fields['conv_features'])}.")


register_family(SmallCNN, Family(head=lambda m: f"fc{len(m.hidden) + 1}", choices=dict(activation=tuple(ACTIVATIONS)),
                                 check=_check))
register_model("keras_cifar_cnn", SmallCNN, input_shape=(32, 32, 3),
               description="TensorFlow CIFAR-10 tutorial CNN: Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense10; "
                           "122,570 parameters")
register_model("simple_convnet", SmallCNN, input_shape=(28, 28, 1),
               description="SimpleConvNet: conv 30@5x5, ReLU, pool 2x2, Affine 100, ReLU, Affine 10; "
                           "433,890 parameters",
               conv_features=(30,), kernel_size=5, pool_after=(True,), hidden=(100,), image_size=28,
               in_channels=1)
