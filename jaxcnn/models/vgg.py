"""VGG (Simonyan and Zisserman 2015, "Very deep convolutional networks for
large-scale image recognition", Table 1).

Five stages of 3x3 convolutions (stride 1, padding 1) with ReLU, each closed
by a 2x2 stride-2 max pool, then fc6 (7x7x512 -> 4,096), fc7 (4,096) and fc8
(1,000) with dropout 0.5 after fc6 and fc7. Convolutions per stage:

    A  vgg11  (1, 1, 2, 2, 2)        132,863,336 parameters
    B  vgg13  (2, 2, 2, 2, 2)        133,047,848
    D  vgg16  (2, 2, 3, 3, 3)        138,357,544
    E  vgg19  (2, 2, 4, 4, 4)        143,667,240

with 64, 128, 256, 512, 512 maps. The `_bn` variants put BatchNorm after each
convolution (scale and bias are parameters, running statistics are not,
torchvision's convention). `minivgg` is a two-stage VGG for 32x32 images
(32, 32, pool, 64, 64, pool, fc 512, with BatchNorm).

Switch `kernel_plan`: "3x3" (the paper) or "large": every stack of n 3x3
convolutions becomes one (2n+1)x(2n+1) convolution with the same receptive
field (section 2.3's argument for stacking small filters).

Layer names: conv{stage}_{i} (conv1_1 .. conv5_3), bn{stage}_{i},
pool{stage}, flatten, fc6, fc7, fc8 (Caffe's VGG names). With
kernel_plan="large" a stage has the single conv{stage}_1. Images NHWC,
kernels HWIO.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn

from jaxcnn.layers import Dropout, Flatten, MaxPool
from jaxcnn.models._common import conv_for, dense_for, norm_for, validate_image
from jaxcnn.models.registry import Family, TorchvisionMap, register_family, register_model

KERNEL_PLANS = ("3x3", "large")
STAGE_ENTRIES = ("conv", "1x1")

CONFIGS = {
    "A": (1, 1, 2, 2, 2),
    "B": (2, 2, 2, 2, 2),
    "D": (2, 2, 3, 3, 3),
    "E": (2, 2, 4, 4, 4),
}


class VGG(nn.Module):
    """VGG, parametrised.

    Attributes:
      num_classes: classes of the last dense layer.
      stage_sizes: 3x3 convolutions per stage (Table 1's configurations).
      widths: maps per stage.
      fc_features: hidden dense layers (fc6, fc7).
      image_size: the (square) input size the classifier is built for; the
        input must have exactly this size.
      batch_norm: BatchNorm after every convolution.
      kernel_plan: "3x3" or "large" (one (2n+1)x(2n+1) conv per stack of n).
      stage_entry: "conv" (Table 1: the stack's first convolution changes the channel count) or "1x1" (a
        1x1 convolution, with BatchNorm and ReLU, takes each stage to its width first, so every kernel of the
        stack, or the one large kernel, maps C to C channels: n 3x3 have 9nC^2 weights against (2n+1)^2 C^2,
        the like-for-like form of Simonyan and Zisserman's argument).
      dropout_rate: dropout after each hidden dense layer.
      conv_mode: "cross_correlation" or "convolution" for every convolution.
      bn_axis_name: the axis over which BatchNorm averages batch statistics
        under pmap / shard_map (None: the local batch).
      dtype: computation dtype.

    Input: (N, image_size, image_size, 3) NHWC. Output: (N, num_classes) logits.
    """

    num_classes: int = 1000
    stage_sizes: Sequence[int] = CONFIGS["D"]
    widths: Sequence[int] = (64, 128, 256, 512, 512)
    fc_features: Sequence[int] = (4096, 4096)
    image_size: int = 224
    batch_norm: bool = False
    kernel_plan: str = "3x3"
    stage_entry: str = "conv"
    dropout_rate: float = 0.5
    conv_mode: str = "cross_correlation"
    bn_axis_name: Optional[str] = None
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        validate_image(x, model="VGG", channels=3, exact_size=(self.image_size, self.image_size))
        conv = conv_for(self)
        dense = dense_for(self)
        norm = norm_for(self, use_running_average=not train, momentum=0.9, epsilon=1e-5)
        for s, (n, width) in enumerate(zip(self.stage_sizes, self.widths), start=1):
            plan = [3] * n if self.kernel_plan == "3x3" else [2 * n + 1]
            if self.stage_entry == "1x1":
                plan = [1] + plan
            for i, k in enumerate(plan, start=0 if self.stage_entry == "1x1" else 1):
                x = conv(width, k, padding=k // 2, name=f"conv{s}_{i}")(x)
                if self.batch_norm:
                    x = norm(name=f"bn{s}_{i}")(x)
                x = nn.relu(x)
            x = MaxPool(2, 2, name=f"pool{s}")(x)
        x = Flatten(name="flatten")(x)
        first = 6
        for j, f in enumerate(self.fc_features):
            x = nn.relu(dense(f, name=f"fc{first + j}")(x))
            x = Dropout(self.dropout_rate, deterministic=not train, name=f"drop{first + j}")(x)
        return dense(self.num_classes, name=f"fc{first + len(self.fc_features)}")(x)


def torchvision_prefix(model: VGG):
    """torchvision's VGG: `features` is one Sequential (conv, [bn], relu per layer, a pool per stage);
    `classifier` is Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear."""
    names, idx = {}, 0
    for s, n in enumerate(model.stage_sizes, start=1):
        for i in range(1, n + 1):
            names[f"conv{s}_{i}"] = f"features.{idx}"
            idx += 1
            if model.batch_norm:
                names[f"bn{s}_{i}"] = f"features.{idx}"
                idx += 1
            idx += 1  # ReLU
        idx += 1  # MaxPool
    names.update({"fc6": "classifier.0", "fc7": "classifier.3", "fc8": "classifier.6"})
    return lambda path: names[path[0]]


def _two_hidden_fc(model) -> str | None:
    return None if len(model.fc_features) == 2 else (
        f"fc_features={tuple(model.fc_features)} (torchvision has two hidden linear layers)")


def _check(fields: dict) -> None:
    stage_sizes, widths = tuple(fields["stage_sizes"]), tuple(fields["widths"])
    if len(stage_sizes) != len(widths):
        raise ValueError(f"VGG stage_sizes {stage_sizes} and widths {widths} must have the same length.")
    factor = 2 ** len(stage_sizes)
    if fields["image_size"] % factor:
        raise ValueError(f"VGG image_size {fields['image_size']} must be divisible by 2**stages = {factor}.")


register_family(VGG, Family(
    head=lambda m: f"fc{6 + len(m.fc_features)}",
    choices=dict(kernel_plan=KERNEL_PLANS, stage_entry=STAGE_ENTRIES),
    check=_check,
    torchvision=TorchvisionMap(torchvision_prefix, required=dict(kernel_plan="3x3"), flatten_dense="fc6",
                               check=_two_hidden_fc)))

for _depth, _cfg in ((11, "A"), (13, "B"), (16, "D"), (19, "E")):
    register_model(f"vgg{_depth}", VGG, input_shape=(224, 224, 3), torchvision=f"vgg{_depth}",
                   description=f"VGG-{_depth}, configuration {_cfg} (Simonyan and Zisserman 2015, Table 1)",
                   stage_sizes=CONFIGS[_cfg])
    register_model(f"vgg{_depth}_bn", VGG, input_shape=(224, 224, 3), torchvision=f"vgg{_depth}_bn",
                   description=f"VGG-{_depth} (configuration {_cfg}) with BatchNorm after every convolution",
                   stage_sizes=CONFIGS[_cfg], batch_norm=True)

register_model("minivgg", VGG, input_shape=(32, 32, 3),
               description="two-stage VGG for 32x32 images: 2x conv32, pool, 2x conv64, pool, fc 512, BatchNorm",
               num_classes=10, stage_sizes=(2, 2), widths=(32, 64), fc_features=(512,), image_size=32,
               batch_norm=True)
