"""LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998, "Gradient-based learning
applied to document recognition", section II.B and Fig. 2).

    C1 conv 6@5x5        32x32x1 -> 28x28x6      156 parameters
    S2 subsampling       -> 14x14x6               12
    C3 conv 16@5x5, Table I connections -> 10x10x16   1,516
    S4 subsampling       -> 5x5x16                32
    C5 conv 120@5x5      -> 1x1x120           48,120
    F6 dense 84                               10,164
    output: Euclidean RBF, 10 fixed prototypes (840 constants, not parameters)
                                    total     60,000 trainable

Every layer up to F6 is followed by the squashing function
f(a) = 1.7159 tanh(2a/3). The RBF output y_i = sum_j (x_j - w_ij)^2 is a
penalty; the model returns -y as logits so the usual softmax cross-entropy
applies (the paper's MAP criterion, eq. 9, is this with an extra "rubbish"
class).

`lenet5_modern` is the network as usually re-implemented: full C3, 2x2 max
pooling, ReLU and a Dense(10) output: 156 + 2,416 + 48,120 + 10,164 + 850 =
61,706 parameters.

Layer names: C1, S2, C3, S4, C5, F6, output. Images NHWC, kernels HWIO.
"""

from __future__ import annotations


from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from jaxcnn.layers import (
    LENET_C3_TABLE,
    AvgPool,
    EuclideanRBF,
    Flatten,
    MaxPool,
    PartialConv,
    Subsampling,
    scaled_tanh,
)
from jaxcnn.models._common import conv_for, dense_for, validate_image
from jaxcnn.models.registry import Family, register_family, register_model

ACTIVATIONS = {"scaled_tanh": scaled_tanh, "relu": nn.relu, "tanh": jnp.tanh}
POOLINGS = ("subsampling", "max", "avg")
C3_TABLES = ("lenet", "full")
OUTPUTS = ("rbf", "dense")


class LeNet5(nn.Module):
    """LeNet-5, parametrised by its ablation switches.

    Attributes:
      num_classes: output classes (10 digits).
      c3_table: "lenet" (Table I partial connections, 1,516 parameters) or
        "full" (every C3 map sees every S2 map, 2,416).
      pooling: "subsampling" (trainable, 2 parameters per map), "max" or "avg".
      activation: "scaled_tanh" (1.7159 tanh(2a/3)), "relu" or "tanh".
      output: "rbf" (fixed Euclidean RBF prototypes; logits = -penalty) or
        "dense" (a learned Dense(num_classes)).
      conv_mode: "cross_correlation" or "convolution" for C1, C3 and C5.
      dtype: computation dtype.

    Input: (N, 32, 32, 1) NHWC. Output: (N, num_classes) logits.
    """

    num_classes: int = 10
    c3_table: str = "lenet"
    pooling: str = "subsampling"
    activation: str = "scaled_tanh"
    output: str = "rbf"
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        validate_image(x, model="LeNet-5", channels=1, exact_size=(32, 32))
        act = ACTIVATIONS[self.activation]

        def pool(name):
            if self.pooling == "subsampling":
                return Subsampling(dtype=self.dtype, name=name)
            if self.pooling == "max":
                return MaxPool(2, name=name)
            return AvgPool(2, name=name)

        conv = conv_for(self)
        dense = dense_for(self)
        x = act(conv(6, 5, name="C1")(x))
        x = act(pool("S2")(x))
        if self.c3_table == "lenet":
            x = PartialConv(LENET_C3_TABLE, 5, conv_mode=self.conv_mode, dtype=self.dtype, name="C3")(x)
        else:
            x = conv(16, 5, name="C3")(x)
        x = act(x)
        x = act(pool("S4")(x))
        x = act(conv(120, 5, name="C5")(x))
        x = Flatten(name="flatten")(x)
        x = act(dense(84, name="F6")(x))
        if self.output == "rbf":
            return -EuclideanRBF(self.num_classes, dtype=self.dtype, name="output")(x)
        return dense(self.num_classes, name="output")(x)


register_family(LeNet5, Family(head=lambda m: "output", choices=dict(
    c3_table=C3_TABLES, pooling=POOLINGS, activation=tuple(ACTIVATIONS), output=OUTPUTS)))
register_model("lenet5", LeNet5, input_shape=(32, 32, 1),
               description="LeNet-5 as published (LeCun et al. 1998): Table I C3, trainable "
                           "subsampling, scaled tanh, RBF output; 60,000 parameters")
register_model("lenet5_modern", LeNet5, input_shape=(32, 32, 1),
               description="LeNet-5 as usually re-implemented: full C3, max pooling, ReLU, "
                           "Dense(10); 61,706 parameters",
               c3_table="full", pooling="max", activation="relu", output="dense")
