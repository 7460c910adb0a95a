"""PyTorch twins of the benchmarked jaxcnn models (torch.nn, NCHW tensors).

The same networks as benchmarks.twins_flax (and jaxcnn): the same layers,
widths, paddings, shortcuts and parameter counts. Flattening before a dense
layer reads (C, H, W) order instead of jaxcnn's (H, W, C): the same layer up
to a permutation of its input weights. BatchNorm: momentum 0.1 in torch's
convention (= Flax's 0.9), eps 1e-5.

Importing this module imports torch; callers import it only when torch is
wanted and installed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.twins_flax import C3_COLS, C3_ROWS, C3_TABLE, twin_config


def _scaled_tanh(x):
    return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class _Subsampling(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.coefficient = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return F.avg_pool2d(x, 2) * 4.0 * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class _C3(nn.Module):
    """Table I's 60 connected 5x5 kernels (1,516 parameters), scattered into a
    zero (16, 6, 5, 5) OIHW kernel for one convolution."""

    def __init__(self):
        super().__init__()
        fan_in = 6 * 25
        self.kernel = nn.Parameter(torch.randn(len(C3_ROWS), 5, 5) / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(len(C3_TABLE)))
        self.register_buffer("rows", torch.as_tensor(C3_ROWS), persistent=False)
        self.register_buffer("cols", torch.as_tensor(C3_COLS), persistent=False)

    def forward(self, x):
        dense = self.kernel.new_zeros((len(C3_TABLE), 6, 5, 5)).index_put((self.cols, self.rows), self.kernel)
        return F.conv2d(x, dense, self.bias)


class LeNet5(nn.Module):
    """LeNet-5 as published: 60,000 parameters; RBF prototypes a fixed buffer."""

    def __init__(self, num_classes=10):
        super().__init__()
        from jaxcnn.layers import rbf_prototypes

        self.C1 = nn.Conv2d(1, 6, 5)
        self.S2 = _Subsampling(6)
        self.C3 = _C3()
        self.S4 = _Subsampling(16)
        self.C5 = nn.Conv2d(16, 120, 5)
        self.F6 = nn.Linear(120, 84)
        self.register_buffer("prototypes", torch.as_tensor(np.ascontiguousarray(rbf_prototypes(num_classes, 84).T)))

    def forward(self, x):
        x = _scaled_tanh(self.C1(x))
        x = _scaled_tanh(self.S2(x))
        x = _scaled_tanh(self.C3(x))
        x = _scaled_tanh(self.S4(x))
        x = _scaled_tanh(self.C5(x))
        x = _scaled_tanh(self.F6(torch.flatten(x, 1)))
        return -torch.sum(torch.square(x[:, None, :] - self.prototypes[None]), dim=2)


class KerasCifarCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.fc1 = nn.Linear(4 * 4 * 64, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def _conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


class _Basic(nn.Module):
    """Two 3x3 conv-BN; option A shortcut (subsample, zero-pad channels)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, cout, 3, stride), _bn(cout)
        self.conv2, self.bn2 = _conv(cout, cout, 3), _bn(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        sc = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.extra > 0:
            sc = F.pad(sc, (0, 0, 0, 0, 0, self.extra))
        return F.relu(y + sc)


class _BasicB(nn.Module):
    """torchvision's BasicBlock: two 3x3 conv-BN, projection shortcut where the shape changes."""

    expansion = 1

    def __init__(self, cin, f, stride):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, f, 3, stride), _bn(f)
        self.conv2, self.bn2 = _conv(f, f, 3), _bn(f)
        self.downsample = None
        if stride != 1 or cin != f:
            self.downsample = nn.Sequential(_conv(cin, f, 1, stride), _bn(f))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, f, stride):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, f, 1), _bn(f)
        self.conv2, self.bn2 = _conv(f, f, 3, stride), _bn(f)
        self.conv3, self.bn3 = _conv(f, 4 * f, 1), _bn(4 * f)
        self.downsample = None
        if stride != 1 or cin != 4 * f:
            self.downsample = nn.Sequential(_conv(cin, 4 * f, 1, stride), _bn(4 * f))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class CifarResNet(nn.Module):
    def __init__(self, stage_sizes=(3, 3, 3), num_classes=10):
        super().__init__()
        self.conv1, self.bn1 = _conv(3, 16, 3), _bn(16)
        blocks, cin = [], 16
        for s, n in enumerate(stage_sizes):
            for b in range(n):
                cout = 16 * 2 ** s
                blocks.append(_Basic(cin, cout, 2 if (s > 0 and b == 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean(dim=(2, 3)))


class ImageNetResNet(nn.Module):
    def __init__(self, stage_sizes=(3, 4, 6, 3), num_classes=1000, block="bottleneck"):
        super().__init__()
        self.conv1, self.bn1 = _conv(3, 64, 7, 2), _bn(64)
        kind = _Bottleneck if block == "bottleneck" else _BasicB
        blocks, cin = [], 64
        for s, n in enumerate(stage_sizes):
            for b in range(n):
                f = 64 * 2 ** s
                blocks.append(kind(cin, f, 2 if (s > 0 and b == 0) else 1))
                cin = kind.expansion * f
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, padding=1)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


class VGG(nn.Module):
    def __init__(self, stage_sizes=(1, 1, 2, 2, 2), widths=(64, 128, 256, 512, 512), fc_features=(4096, 4096),
                 dropout_rate=0.5, num_classes=1000, image_size=224):
        super().__init__()
        layers, cin = [], 3
        for n, width in zip(stage_sizes, widths):
            for _ in range(n):
                layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU()]
                cin = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(stage_sizes)
        head, fin = [], cin * side * side
        for f in fc_features:
            head += [nn.Linear(fin, f), nn.ReLU(), nn.Dropout(dropout_rate)]
            fin = f
        head.append(nn.Linear(fin, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class _DenseLayer(nn.Module):
    def __init__(self, cin, growth_rate, bn_size):
        super().__init__()
        self.norm1, self.conv1 = _bn(cin), _conv(cin, bn_size * growth_rate, 1)
        self.norm2, self.conv2 = _bn(bn_size * growth_rate), _conv(bn_size * growth_rate, growth_rate, 3)

    def forward(self, x):
        y = self.conv1(F.relu(self.norm1(x)))
        return torch.cat([x, self.conv2(F.relu(self.norm2(y)))], 1)


class DenseNetBC(nn.Module):
    """DenseNet-BC on CIFAR, as benchmarks.twins_flax.DenseNetBC."""

    def __init__(self, block_sizes=(16, 16, 16), growth_rate=12, init_features=24, bn_size=4, compression=0.5,
                 num_classes=10):
        super().__init__()
        layers, c = [_conv(3, init_features, 3)], init_features
        for i, n in enumerate(block_sizes, start=1):
            for _ in range(n):
                layers.append(_DenseLayer(c, growth_rate, bn_size))
                c += growth_rate
            if i < len(block_sizes):
                out = int(c * compression)
                layers += [_bn(c), nn.ReLU(), _conv(c, out, 1), nn.AvgPool2d(2, 2)]
                c = out
        layers += [_bn(c), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class AlexNet(nn.Module):
    """Krizhevsky et al. 2012 on 227x227, as benchmarks.twins_flax.AlexNet (torch's LocalResponseNorm divides
    alpha by the window size, so it is given alpha * 5)."""

    def __init__(self, widths=(96, 256, 384, 384, 256), fc_features=(4096, 4096), groups=2, dropout_rate=0.5,
                 num_classes=1000):
        super().__init__()
        w = widths
        lrn = lambda: nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(3, w[0], 11, 4), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
            nn.Conv2d(w[0], w[1], 5, padding=2, groups=groups), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
            nn.Conv2d(w[1], w[2], 3, padding=1), nn.ReLU(),
            nn.Conv2d(w[2], w[3], 3, padding=1, groups=groups), nn.ReLU(),
            nn.Conv2d(w[3], w[4], 3, padding=1, groups=groups), nn.ReLU(), nn.MaxPool2d(3, 2))
        head, fin = [], w[4] * 6 * 6
        for f in fc_features:
            head += [nn.Linear(fin, f), nn.ReLU(), nn.Dropout(dropout_rate)]
            fin = f
        head.append(nn.Linear(fin, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def torch_twin(name: str, model) -> nn.Module:
    """The torch twin of jaxcnn model instance `model` (registered as `name`).

    Build it under `with torch.device("meta"):` to get shapes and parameter
    counts without allocating weights.
    """
    kind, cfg = twin_config(name, model)
    return {"lenet5": LeNet5, "keras_cifar_cnn": KerasCifarCNN, "cifar_resnet": CifarResNet,
            "imagenet_resnet": ImageNetResNet, "vgg": VGG, "densenet_bc": DenseNetBC, "alexnet": AlexNet}[kind](**cfg)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
