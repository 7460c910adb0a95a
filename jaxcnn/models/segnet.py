"""SegNet (Badrinarayanan, Kendall and Cipolla, TPAMI 2017): an encoder-decoder
whose decoder unpools with the max-pooling indices of the encoder.

Encoder: VGG16's 13 convolutions (3x3, padding 1, BatchNorm, ReLU) in five
stages, each ended by 2x2 stride-2 max pooling that records its argmax
(`ops.max_pool_with_argmax`). Decoder: the mirror image; each stage first
unpools (`ops.max_unpool`) to the size its encoder stage had, then applies as
many 3x3 conv + BN + ReLU as the encoder stage, the last one narrowing to the
previous stage's width. The very last convolution (conv1_1_D) maps to
num_classes logits with no BN or ReLU, as in the reference Caffe net.

Images NHWC, any size >= 2**len(stage_sizes); kernels HWIO.
Output (N, H, W, num_classes).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn

from jaxcnn import ops
from jaxcnn.models._common import conv_for, norm_for, validate_image
from jaxcnn.models.registry import Family, register_family, register_model


class SegNet(nn.Module):
    """Attributes:
      stage_sizes: convolutions per encoder (and decoder) stage.
      widths: channels of each stage.
      num_classes: output channels.
    Submodules: conv{s}_{i} / bn{s}_{i} (encoder), conv{s}_{i}_D / bn{s}_{i}_D
    (decoder), the last being conv1_1_D.
    """

    stage_sizes: Sequence[int] = (2, 2, 3, 3, 3)
    widths: Sequence[int] = (64, 128, 256, 512, 512)
    num_classes: int = 12
    in_channels: int = 3
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None
    bn_axis_name: Optional[str] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        validate_image(x, model="segnet", channels=self.in_channels, min_size=2 ** len(self.stage_sizes))

        conv = conv_for(self, kernel_size=3, padding=1)
        norm = norm_for(self, use_running_average=not train, momentum=0.9, epsilon=1e-5)

        def block(y, f, name, relu_bn=True):
            y = conv(f, name=f"conv{name}")(y)
            if not relu_bn:
                return y
            y = norm(name=f"bn{name}")(y)
            return nn.relu(y)

        saved = []
        for s, (n, f) in enumerate(zip(self.stage_sizes, self.widths), start=1):
            for i in range(1, n + 1):
                x = block(x, f, f"{s}_{i}")
            shape = x.shape
            x, idx = ops.max_pool_with_argmax(x, 2, 2)
            saved.append((shape, idx))
        for s in range(len(self.stage_sizes), 0, -1):
            shape, idx = saved[s - 1]
            x = ops.max_unpool(x, idx, shape)
            n, f = self.stage_sizes[s - 1], self.widths[s - 1]
            for i in range(n, 0, -1):
                if i > 1:
                    x = block(x, f, f"{s}_{i}_D")
                elif s > 1:
                    x = block(x, self.widths[s - 2], f"{s}_{i}_D")
                else:
                    x = block(x, self.num_classes, f"{s}_{i}_D", relu_bn=False)
        return x


def _check(fields: dict) -> None:
    if len(fields["stage_sizes"]) != len(fields["widths"]):
        raise ValueError(f"stage_sizes {tuple(fields['stage_sizes'])} and widths {tuple(fields['widths'])} "
                         "must have the same length")


register_family(SegNet, Family(check=_check))  # a segmentation net: no classifier head
register_model("segnet", SegNet, input_shape=(360, 480, 3),
               description="SegNet (Badrinarayanan et al. 2017), VGG16 encoder, 12 CamVid classes")
register_model("segnet_small", SegNet, input_shape=(48, 48, 3), stage_sizes=(1, 2, 2), widths=(16, 32, 64),
               num_classes=4, description="three-stage SegNet for 32-64 px images (demos, tests)")
