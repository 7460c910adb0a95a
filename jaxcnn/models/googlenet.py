"""GoogLeNet (Szegedy et al. 2014, "Going deeper with convolutions", table 1)
as published: convolutions with biases and ReLU, no BatchNorm, LRN in the
stem, nine Inception modules, global average pooling, dropout 0.4 and two
auxiliary classifiers. Images NHWC (224x224x3), kernels HWIO.

Submodule names follow torchvision's GoogLeNet: conv1 (7x7/2), conv2 (1x1),
conv3 (3x3), inception3a .. inception5b (each with branch1, branch2_reduce,
branch2, branch3_reduce, branch3, branch4), aux1 / aux2 (conv, fc1, fc2), fc.

The auxiliary classifiers: their logits are not returned (the model always
returns the main logits) but sown, in training, into the `intermediates`
collection as `intermediates["aux_logits"] == (aux1_logits, aux2_logits)`:

    logits, state = model.apply(variables, x, train=True, rngs={"dropout": key},
                                mutable=["intermediates"])
    aux1, aux2 = state["intermediates"]["aux_logits"]
    loss = ce(logits) + model.aux_weight * (ce(aux1) + ce(aux2))

Their parameters exist whenever `aux_logits=True`, whatever `train` is.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxcnn.layers import Conv, Dense, Dropout, Flatten, GlobalAvgPool
from jaxcnn.models._common import ModuleDef, conv_for, dense_for, validate_image
from jaxcnn.models.registry import Family, register_family, register_model
from jaxcnn import ops


_max_pool = ops.max_pool
_avg_pool = ops.avg_pool


def _lrn(x, size=5, k=1.0, alpha=1e-4, beta=0.75):
    """Caffe's cross-channel LRN, which divides alpha by the size. x: NHWC."""
    return ops.local_response_norm(x, size=size, k=k, alpha=alpha / size, beta=beta)


# Table 1 of the paper: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
INCEPTION_PLAN = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class Inception(nn.Module):
    """One Inception module: four branches concatenated on channels. x: NHWC.

    branch1: 1x1; branch2: 1x1 reduce -> 3x3; branch3: 1x1 reduce -> 5x5 (a
    real 5x5); branch4: 3x3/1 max-pool -> 1x1 projection. Each convolution is
    followed by ReLU. With bottleneck=False the two reductions are removed:
    the 3x3 and 5x5 see all input channels (the 1x1 ablation). `conv`: the
    convolution as the model binds it (its conv_mode and dtype).
    """

    features: Sequence[int]  # (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)
    bottleneck: bool = True
    conv: ModuleDef = Conv

    @nn.compact
    def __call__(self, x):
        c1, r3, c3, r5, c5, pp = self.features

        def relu_conv(y, features, kernel, name):
            return nn.relu(self.conv(features, kernel, padding=kernel // 2, name=name)(y))

        b1 = relu_conv(x, c1, 1, "branch1")
        b2 = relu_conv(x, r3, 1, "branch2_reduce") if self.bottleneck else x
        b2 = relu_conv(b2, c3, 3, "branch2")
        b3 = relu_conv(x, r5, 1, "branch3_reduce") if self.bottleneck else x
        b3 = relu_conv(b3, c5, 5, "branch3")
        b4 = _max_pool(x, 3, 1, padding=1)
        b4 = relu_conv(b4, pp, 1, "branch4")
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class AuxClassifier(nn.Module):
    """5x5/3 average pool -> 1x1 conv 128 + ReLU -> FC 1024 + ReLU -> dropout 0.7 -> FC. x: NHWC (14x14).
    `conv`, `dense`: the layers as the model binds them (its conv_mode and dtype)."""

    num_classes: int
    width: float = 1.0
    conv: ModuleDef = Conv
    dense: ModuleDef = Dense

    @nn.compact
    def __call__(self, x, train: bool):
        x = _avg_pool(x, 5, 3)
        x = nn.relu(self.conv(_scaled(128, self.width), 1, name="conv")(x))
        x = Flatten()(x)
        x = nn.relu(self.dense(_scaled(1024, self.width), name="fc1")(x))
        x = Dropout(0.7, deterministic=not train)(x)
        return self.dense(self.num_classes, name="fc2")(x)


def _scaled(channels: int, width: float) -> int:
    """A channel count times the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


class GoogLeNet(nn.Module):
    """GoogLeNet / Inception v1. x: NHWC images, 224x224x3 (any size >= 32 without aux heads).

    Attributes:
      aux_logits: build the two auxiliary classifiers (after 4a and 4d); in
        training their logits are sown as intermediates["aux_logits"].
      aux_weight: the weight of each auxiliary loss in training (0.3 in the paper);
        read by the training code, not used by the forward pass.
      bottleneck: False removes the 1x1 reductions before the 3x3 and 5x5 branches.
      dropout_rate: before the classifier (0.4).
      width: multiplies every channel count of Table 1 (and the auxiliary heads'): 1.0 is the paper's net,
        0.25 a CPU-sized one with the same structure (parameters and multiply-adds scale about as width^2).
      num_classes, conv_mode, dtype: as for every model.
    """

    aux_logits: bool = True
    aux_weight: float = 0.3
    bottleneck: bool = True
    dropout_rate: float = 0.4
    width: float = 1.0
    num_classes: int = 1000
    conv_mode: str = "cross_correlation"
    dtype: Any = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.aux_logits:
            # The auxiliary classifiers' FC 1024 takes a 4x4x128 map: 224x224 input.
            validate_image(x, model="GoogLeNet", channels=3, exact_size=(224, 224))
        else:
            validate_image(x, model="GoogLeNet", channels=3, min_size=32)
        conv, dense = conv_for(self), dense_for(self)  # bound once: this model's conv_mode and dtype

        def scaled_conv(f, k, s, name):
            return conv(_scaled(f, self.width), k, strides=s, padding=k // 2, name=name)

        def inception(x, key):
            plan = tuple(_scaled(c, self.width) for c in INCEPTION_PLAN[key])
            return Inception(plan, bottleneck=self.bottleneck, conv=conv, name=f"inception{key}")(x)

        def aux(x, name):
            logits = AuxClassifier(self.num_classes, width=self.width, conv=conv, dense=dense, name=name)(x, train)
            if train:
                self.sow("intermediates", "aux_logits", logits)

        lrn = _lrn  # Caffe's: size 5, k=1, alpha=1e-4 (divided by the size), beta 0.75
        x = nn.relu(scaled_conv(64, 7, 2, "conv1")(x))   # 112x112x64
        x = _max_pool(x, 3, 2, padding="SAME")           # 56x56x64
        x = lrn(x)
        x = nn.relu(scaled_conv(64, 1, 1, "conv2")(x))
        x = nn.relu(scaled_conv(192, 3, 1, "conv3")(x))  # 56x56x192
        x = lrn(x)
        x = _max_pool(x, 3, 2, padding="SAME")           # 28x28x192
        x = inception(x, "3a")                           # 28x28x256
        x = inception(x, "3b")                           # 28x28x480
        x = _max_pool(x, 3, 2, padding="SAME")           # 14x14x480
        x = inception(x, "4a")                           # 14x14x512
        if self.aux_logits:
            aux(x, "aux1")
        x = inception(x, "4b")
        x = inception(x, "4c")
        x = inception(x, "4d")                           # 14x14x528
        if self.aux_logits:
            aux(x, "aux2")
        x = inception(x, "4e")                           # 14x14x832
        x = _max_pool(x, 3, 2, padding="SAME")           # 7x7x832
        x = inception(x, "5a")
        x = inception(x, "5b")                           # 7x7x1024
        x = GlobalAvgPool()(x)                           # the 7x7/1 average pool
        x = Dropout(self.dropout_rate, deterministic=not train)(x)
        return dense(self.num_classes, name="fc")(x)


def _check(fields: dict) -> None:
    if not 0 < fields["width"] <= 4:
        raise ValueError(f"GoogLeNet width must be a number in (0, 4], got {fields['width']!r}; 1.0 is the paper's.")


register_family(GoogLeNet, Family(head=lambda m: "fc", aux_weight=lambda m: m.aux_weight, check=_check))
register_model("googlenet", GoogLeNet, input_shape=(224, 224, 3),
               description="Szegedy et al. 2014, table 1: GoogLeNet with LRN and two auxiliary classifiers")
