"""AlexNet (Krizhevsky, Sutskever and Hinton 2012, "ImageNet classification
with deep convolutional neural networks", section 3 and Fig. 2).

The paper's network runs on two GPUs: conv2, conv4 and conv5 see only the
maps on their own GPU, which is a grouped convolution with groups=2; conv3
and the dense layers see both. On 227x227x3 (the size that makes the
arithmetic of Fig. 2 work):

    conv1  96@11x11/4        -> 55x55x96    LRN, max pool 3x3/2 -> 27x27x96      34,944
    conv2  256@5x5 pad 2, g2 -> 27x27x256   LRN, max pool 3x3/2 -> 13x13x256    307,456
    conv3  384@3x3 pad 1     -> 13x13x384                                      885,120
    conv4  384@3x3 pad 1, g2 -> 13x13x384                                      663,936
    conv5  256@3x3 pad 1, g2 -> 13x13x256        max pool 3x3/2 -> 6x6x256     442,624
    fc6    9,216 -> 4,096, dropout 0.5                                      37,752,832
    fc7    4,096 -> 4,096, dropout 0.5                                      16,781,312
    fc8    4,096 -> 1,000                                                    4,097,000
                                                             total          60,965,224

`alexnet_owt` is the single-tower "one weird trick" variant (Krizhevsky 2014;
torchvision's alexnet): 64-192-384-256-256 maps, conv1 padded by 2 on
224x224x3, no LRN, no groups: 61,100,840 parameters.

Switches: `lrn` (local response normalisation after conv1 and conv2),
`overlap_pool` (3x3 stride 2, or 2x2 stride 2; both give 27, 13, 6),
`groups` (channel groups of conv2, conv4 and conv5), `dropout_placement` (where the dropout of section 4.2
sits: "outputs", the paper's and Caffe's, drops the outputs of fc6 and fc7 after their ReLU; "inputs",
torchvision's, drops the inputs of fc6 and fc7; dropout has no weights, so either imports the same
torchvision weights). Layer names conv1..conv5,
fc6..fc8 (pool1, pool2, pool5, norm1, norm2). Images NHWC, kernels HWIO.
"""

from __future__ import annotations


from typing import Any, Optional, Sequence

import flax.linen as nn

from jaxcnn.layers import LRN, Dropout, Flatten, MaxPool
from jaxcnn.models._common import conv_for, dense_for, validate_image
from jaxcnn.models.registry import Family, TorchvisionMap, register_family, register_model


DROPOUT_PLACEMENTS = ("outputs", "inputs")


class AlexNet(nn.Module):
    """AlexNet, parametrised.

    Attributes:
      num_classes: classes of fc8.
      widths: maps of conv1..conv5.
      fc_features: widths of fc6 and fc7.
      conv1_padding: zero padding of conv1 (0 on 227x227, 2 on 224x224).
      image_size: the (square) input size the classifier is built for; the
        input must have exactly this size (fc6 takes 6x6xC).
      lrn: local response normalisation after conv1 and conv2 (k=2, n=5,
        alpha=1e-4, beta=0.75, section 3.3).
      overlap_pool: 3x3 stride-2 max pooling (section 3.4) or 2x2 stride 2.
      groups: channel groups of conv2, conv4, conv5 (2: the two GPUs).
      dropout_rate: the dropout probability of fc6 and fc7 (section 4.2).
      dropout_placement: "outputs" (default; the paper, Caffe's train_val: fc -> ReLU -> dropout for fc6
        and fc7) or "inputs" (torchvision's classifier: dropout -> fc -> ReLU).
      conv_mode: "cross_correlation" or "convolution" for every convolution.
      dtype: computation dtype.

    Input: (N, image_size, image_size, 3) NHWC. Output: (N, num_classes) logits.
    """

    num_classes: int = 1000
    widths: Sequence[int] = (96, 256, 384, 384, 256)
    fc_features: Sequence[int] = (4096, 4096)
    conv1_padding: int = 0
    image_size: int = 227
    lrn: bool = True
    overlap_pool: bool = True
    groups: int = 2
    dropout_rate: float = 0.5
    dropout_placement: str = "outputs"
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        validate_image(x, model="AlexNet", channels=3, exact_size=(self.image_size, self.image_size))
        conv = conv_for(self)
        dense = dense_for(self)
        pool = lambda name: MaxPool(3, 2, name=name) if self.overlap_pool else MaxPool(2, 2, name=name)  # noqa: E731
        w = self.widths
        x = nn.relu(conv(w[0], 11, strides=4, padding=self.conv1_padding, name="conv1")(x))
        if self.lrn:
            x = LRN(name="norm1")(x)
        x = pool("pool1")(x)
        x = nn.relu(conv(w[1], 5, padding=2, groups=self.groups, name="conv2")(x))
        if self.lrn:
            x = LRN(name="norm2")(x)
        x = pool("pool2")(x)
        x = nn.relu(conv(w[2], 3, padding=1, name="conv3")(x))
        x = nn.relu(conv(w[3], 3, padding=1, groups=self.groups, name="conv4")(x))
        x = nn.relu(conv(w[4], 3, padding=1, groups=self.groups, name="conv5")(x))
        x = pool("pool5")(x)
        x = Flatten(name="flatten")(x)
        outputs = self.dropout_placement == "outputs"
        for i, f in enumerate(self.fc_features):
            drop = Dropout(self.dropout_rate, deterministic=not train, name=f"drop{6 + i}")
            x = nn.relu(dense(f, name=f"fc{6 + i}")(x if outputs else drop(x)))
            x = drop(x) if outputs else x
        return dense(self.num_classes, name=f"fc{6 + len(self.fc_features)}")(x)


# torchvision's alexnet: features Conv(0) ReLU MaxPool Conv(3) ReLU MaxPool Conv(6) ReLU Conv(8) ReLU Conv(10)
# ReLU MaxPool; classifier Dropout Linear(1) ReLU Dropout Linear(4) ReLU Linear(6) (dropout_placement="inputs";
# the same weights serve "outputs").
TORCHVISION_NAMES = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6", "conv4": "features.8",
                     "conv5": "features.10", "fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"}


def _two_hidden_fc(model) -> str | None:
    return None if len(model.fc_features) == 2 else (
        f"fc_features={tuple(model.fc_features)} (torchvision has two hidden linear layers)")


register_family(AlexNet, Family(
    head=lambda m: f"fc{6 + len(m.fc_features)}",
    choices=dict(dropout_placement=DROPOUT_PLACEMENTS),
    torchvision=TorchvisionMap(lambda model: (lambda path: TORCHVISION_NAMES[path[0]]),
                               required=dict(lrn=False, groups=1, overlap_pool=True, conv1_padding=2),
                               flatten_dense="fc6", check=_two_hidden_fc)))

register_model("alexnet", AlexNet, input_shape=(227, 227, 3),
               description="AlexNet (Krizhevsky et al. 2012), two towers as grouped convolutions; "
                           "60,965,224 parameters")
register_model("alexnet_owt", AlexNet, input_shape=(224, 224, 3), torchvision="alexnet",
               description="single-tower AlexNet (Krizhevsky 2014, torchvision); 61,100,840 parameters",
               widths=(64, 192, 384, 256, 256), conv1_padding=2, image_size=224, lrn=False, groups=1)
