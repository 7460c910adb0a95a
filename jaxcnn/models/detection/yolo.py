"""YOLOv1 (Redmon, Divvala, Girshick and Farhadi, CVPR 2016).

The network of the paper's figure 3: 24 convolutional layers (leaky ReLU 0.1)
and 2 fully connected layers on 448x448x3 images; the first FC has 4096 units
(leaky ReLU, then dropout 0.5), the second S*S*(B*5+C) = 7*7*30 = 1470 linear
outputs, reshaped to (N, S, S, B*5+C). Parameters: 271,703,550 (convolutions
60,155,968 + fc1 7*7*1024*4096 + 4096 + fc2 4096*1470 + 1470).

Output layout per cell: B boxes of (x, y, sqrt(w), sqrt(h), confidence), then
C class scores. x, y are offsets inside the cell in [0, 1]; sqrt(w), sqrt(h)
are square roots of the width and height as fractions of the image (the
paper predicts square roots). The loss and decoding with non-max suppression
are in `jaxcnn.models.detection`.

Images NHWC; kernels HWIO.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn

from jaxcnn import ops
from jaxcnn.layers import Dense, Flatten
from jaxcnn.models._common import conv_for, validate_image
from jaxcnn.models.registry import Family, register_family, register_model

# (kernel, features, stride) for a convolution, "M" for 2x2 stride-2 max pooling.
YOLOV1_PLAN = (
    (7, 64, 2), "M",
    (3, 192, 1), "M",
    (1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1), "M",
    *((1, 256, 1), (3, 512, 1)) * 4, (1, 512, 1), (3, 1024, 1), "M",
    *((1, 512, 1), (3, 1024, 1)) * 2, (3, 1024, 1), (3, 1024, 2),
    (3, 1024, 1), (3, 1024, 1),
)

YOLOV1_TINY_PLAN = ((3, 16, 1), "M", (3, 32, 1), "M", (3, 64, 1), "M", (3, 64, 1), "M", (3, 128, 1))


class YOLOv1(nn.Module):
    """Attributes:
      plan: the convolutional trunk (see YOLOV1_PLAN).
      input_size: the square image side the FC layers are sized for.
      grid_size (S), num_boxes (B), num_classes (C).
      hidden: units of the first FC layer. dropout_rate: after it.
    Submodules: conv1 .. conv24 (in order), fc1, fc2.
    """

    plan: Sequence[Any] = YOLOV1_PLAN
    input_size: int = 448
    grid_size: int = 7
    num_boxes: int = 2
    num_classes: int = 20
    hidden: int = 4096
    dropout_rate: float = 0.5
    in_channels: int = 3
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        validate_image(x, model="yolov1", channels=self.in_channels, exact_size=(self.input_size,) * 2)
        conv = conv_for(self)
        n_conv = 0
        for layer in self.plan:
            if layer == "M":
                x = ops.max_pool(x, 2, 2)
                continue
            k, f, s = layer
            n_conv += 1
            x = conv(f, k, strides=s, padding=k // 2, name=f"conv{n_conv}")(x)
            x = nn.leaky_relu(x, 0.1)
        x = Flatten()(x)
        x = nn.leaky_relu(Dense(self.hidden, dtype=self.dtype, name="fc1")(x), 0.1)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        s, d = self.grid_size, self.num_boxes * 5 + self.num_classes
        x = Dense(s * s * d, dtype=self.dtype, name="fc2")(x)
        return x.reshape(x.shape[0], s, s, d)


register_family(YOLOv1, Family())  # a grid of boxes, no classifier head; its one choice is conv_mode
register_model("yolov1", YOLOv1, input_shape=(448, 448, 3),
               description="YOLOv1 (Redmon et al. 2016): 24 conv + 2 FC, output 7x7x30")
register_model("yolov1_tiny", YOLOv1, input_shape=(112, 112, 3), plan=YOLOV1_TINY_PLAN, input_size=112,
               hidden=128, description="five-conv YOLOv1 for tests and demos, output 7x7x30")
