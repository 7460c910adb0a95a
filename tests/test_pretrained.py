"""torchvision weights -> Flax variables, and our own orbax checkpoints.

torchvision itself is not importable beside the CPU torch here, so the torch
references below are small torch modules written with torchvision's exact
module names and forward semantics (torchvision/models/{alexnet,vgg,resnet,
densenet}.py): the same state-dict keys, the same layer order, eval-mode
BatchNorm, AdaptiveAvgPool before the classifier, torch.flatten of (C, H, W).
Random weights (and random BatchNorm statistics) go through
`load_torchvision_weights`; the eval-mode logits must agree to float tolerance.
"""

from __future__ import annotations

import json
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn
from jaxcnn.pretrained import (TORCHVISION_MODELS, conversion_plan, load_checkpoint_weights,
                               load_torchvision_weights, read_state_dict, torchvision_keys)

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


# ----------------------------------------------------------------------------------------------------------
# torchvision's architectures, written out (module names as torchvision's).

class TvAlexNet(nn.Module):
    def __init__(self, widths=(64, 192, 384, 256, 256), fc=4096, num_classes=1000):
        super().__init__()
        w = widths
        self.features = nn.Sequential(
            nn.Conv2d(3, w[0], 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(w[0], w[1], 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(w[1], w[2], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w[2], w[3], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w[3], w[4], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(w[4] * 36, fc), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Linear(fc, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


VGG_CFGS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


class TvVGG(nn.Module):
    def __init__(self, depth=11, batch_norm=False, widths=(64, 128, 256, 512, 512), fc=4096, num_classes=1000):
        super().__init__()
        layers, c = [], 3
        for n, w in zip(VGG_CFGS[depth], widths):
            for _ in range(n):
                layers.append(nn.Conv2d(c, w, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(w))
                layers.append(nn.ReLU(inplace=True))
                c = w
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(c * 49, fc), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(fc, fc), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(fc, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)  # stride on the 3x3 (v1.5)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


RESNET_CFGS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
               101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3))}


class TvResNet(nn.Module):
    def __init__(self, depth=18, num_classes=1000):
        super().__init__()
        block, layers = RESNET_CFGS[depth]
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            setattr(self, f"layer{i}", self._make_layer(block, planes, n, 1 if i == 1 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, n, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        blocks = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        blocks += [block(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class _DenseLayer(nn.Module):
    def __init__(self, c, growth, bn_size):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(c)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class _DenseBlock(nn.ModuleDict):
    def __init__(self, n, c, growth, bn_size):
        super().__init__()
        for i in range(n):
            self.add_module(f"denselayer{i + 1}", _DenseLayer(c + i * growth, growth, bn_size))

    def forward(self, x):
        feats = [x]
        for layer in self.values():
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


class _Transition(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


DENSENET_CFGS = {121: (32, (6, 12, 24, 16), 64), 161: (48, (6, 12, 36, 24), 96), 169: (32, (6, 12, 32, 32), 64),
                 201: (32, (6, 12, 48, 32), 64)}


class TvDenseNet(nn.Module):
    def __init__(self, depth=121, num_classes=1000, bn_size=4):
        super().__init__()
        growth, blocks, init = DENSENET_CFGS[depth]
        from collections import OrderedDict
        mods = OrderedDict([("conv0", nn.Conv2d(3, init, 7, 2, 3, bias=False)), ("norm0", nn.BatchNorm2d(init)),
                            ("relu0", nn.ReLU(inplace=True)), ("pool0", nn.MaxPool2d(3, 2, 1))])
        c = init
        for i, n in enumerate(blocks):
            mods[f"denseblock{i + 1}"] = _DenseBlock(n, c, growth, bn_size)
            c += n * growth
            if i != len(blocks) - 1:
                mods[f"transition{i + 1}"] = _Transition(c, c // 2)
                c //= 2
        mods["norm5"] = nn.BatchNorm2d(c)
        self.features = nn.Sequential(mods)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        x = F.relu(self.features(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))


def _torch_reference(name, **kw):
    if name == "alexnet_owt":
        return TvAlexNet(**kw)
    if name.startswith("vgg"):
        return TvVGG(int(name[3:5]), name.endswith("_bn"), **kw)
    if name.startswith("resnet"):
        return TvResNet(int(name[6:]), **kw)
    return TvDenseNet(int(name[8:]), **kw)


def _randomise(module, seed=0):
    """Random weights and BatchNorm statistics (the defaults 0/1 would hide a swapped mean/var)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in module.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.copy_(1 + 0.2 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.copy_(0.2 * torch.randn(mod.bias.shape, generator=g))
                mod.running_mean.copy_(0.2 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))
                mod.num_batches_tracked.fill_(7)
            elif isinstance(mod, nn.Linear) and mod.bias is not None:
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
            elif isinstance(mod, nn.Conv2d) and mod.bias is not None:
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
    return module.eval()


def _compare(name, ref, size, batch=2, atol=1e-4, rtol=1e-4, **overrides):
    x = np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32)  # NCHW for torch
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    variables = load_torchvision_weights(name, ref.state_dict(), **overrides)
    model = jaxcnn.create_model(name, **overrides)
    got = np.asarray(model.apply(variables, x.transpose(0, 2, 3, 1), train=False))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)
    assert np.abs(want).max() > 1e-2  # the comparison is not of vanishing numbers
    return variables


# ----------------------------------------------------------------------------------------------------------
# Logits equal torchvision's.


def test_resnet18_logits_match_torch_reference():
    ref = _randomise(TvResNet(18, num_classes=10))
    _compare("resnet18", ref, 64, num_classes=10)


def test_resnet50_bottleneck_downsample_logits_match():
    # The bottleneck's stride on the 3x3 and the projection on layer1.0 (64 -> 256 at stride 1).
    ref = _randomise(TvResNet(50, num_classes=7), seed=1)
    _compare("resnet50", ref, 32, batch=1, atol=2e-4, num_classes=7)


def test_alexnet_owt_logits_match_at_224_with_narrow_widths():
    # Full 224x224 arithmetic (55 -> 27 -> 13 -> 6, conv1 padded by 2), so fc6 sees 6x6xC flattened in (C, H, W)
    # order by torch and (H, W, C) by us; narrow widths keep the test cheap.
    widths, fc = (8, 16, 24, 16, 12), 32
    ref = _randomise(TvAlexNet(widths, fc, num_classes=5))
    _compare("alexnet_owt", ref, 224, widths=widths, fc_features=(fc, fc), num_classes=5)


def test_vgg11_bn_logits_match_at_224_with_narrow_widths():
    widths, fc = (4, 8, 8, 16, 16), 24
    ref = _randomise(TvVGG(11, True, widths, fc, num_classes=6))
    _compare("vgg11_bn", ref, 224, widths=widths, fc_features=(fc, fc), num_classes=6)


def test_vgg13_without_bn_logits_match():
    widths, fc = (4, 4, 8, 8, 8), 16
    ref = _randomise(TvVGG(13, False, widths, fc, num_classes=3))
    _compare("vgg13", ref, 224, widths=widths, fc_features=(fc, fc), num_classes=3)


def test_densenet121_logits_match_at_64():
    ref = _randomise(TvDenseNet(121, num_classes=10))
    _compare("densenet121", ref, 64, batch=1, atol=2e-4, num_classes=10)


def test_convolution_mode_imports_flipped_kernels():
    # conv_mode="convolution" flips every kernel; the import flips it back, so the logits are unchanged.
    widths, fc = (8, 16, 24, 16, 12), 32
    ref = _randomise(TvAlexNet(widths, fc, num_classes=5), seed=3)
    v = _compare("alexnet_owt", ref, 224, batch=1, widths=widths, fc_features=(fc, fc), num_classes=5,
                 conv_mode="convolution")
    w = ref.state_dict()["features.0.weight"].numpy()  # (O, I, KH, KW)
    np.testing.assert_array_equal(np.asarray(v["params"]["conv1"]["kernel"]), w.transpose(2, 3, 1, 0)[::-1, ::-1])


# ----------------------------------------------------------------------------------------------------------
# The layout rules, on tensors small enough to read.


def test_layout_rules_by_hand():
    plan = {e.torch_key: e for e in conversion_plan("vgg11", widths=(2, 2, 2, 2, 3), fc_features=(4, 4),
                                                        num_classes=2)}
    # 224 / 2**5 = 7: fc6 reads 7 * 7 * 3 = 147 inputs flattened as (C, H, W) by torch.
    e = plan["classifier.0.weight"]
    assert e.rule == "linear_after_flatten" and e.flatten_chw == (3, 7, 7) and e.torch_shape == (4, 147)
    assert plan["classifier.3.weight"].rule == "linear" and plan["features.0.weight"].rule == "conv"
    sd = {k: np.zeros(s, np.float32) for k, s in torchvision_keys("vgg11", widths=(2, 2, 2, 2, 3),
                                                                   fc_features=(4, 4), num_classes=2).items()}
    conv = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3)  # (O, I, KH, KW)
    sd["features.0.weight"] = conv
    fc6 = np.arange(4 * 147, dtype=np.float32).reshape(4, 147)
    sd["classifier.0.weight"] = fc6
    fc7 = np.arange(16, dtype=np.float32).reshape(4, 4)
    sd["classifier.3.weight"] = fc7
    v = load_torchvision_weights("vgg11", sd, widths=(2, 2, 2, 2, 3), fc_features=(4, 4), num_classes=2)
    k = np.asarray(v["params"]["conv1_1"]["kernel"])
    assert k.shape == (3, 3, 3, 2)
    for o, i, h, w in [(0, 0, 0, 0), (1, 2, 0, 1), (0, 1, 2, 2)]:
        assert k[h, w, i, o] == conv[o, i, h, w]
    np.testing.assert_array_equal(np.asarray(v["params"]["fc7"]["kernel"]), fc7.T)
    k6 = np.asarray(v["params"]["fc6"]["kernel"])  # (H*W*C, out); our flatten index is (h*7 + w)*3 + c
    for out, c, h, w in [(0, 0, 0, 1), (3, 2, 6, 5), (1, 1, 3, 0)]:
        assert k6[(h * 7 + w) * 3 + c, out] == fc6[out, c * 49 + h * 7 + w]


def test_batchnorm_statistics_go_to_batch_stats():
    ref = _randomise(TvVGG(11, True, (2, 2, 2, 2, 2), 4, num_classes=2), seed=5)
    sd = ref.state_dict()
    v = load_torchvision_weights("vgg11_bn", sd, widths=(2, 2, 2, 2, 2), fc_features=(4, 4), num_classes=2)
    assert set(v) == {"params", "batch_stats"}
    np.testing.assert_array_equal(v["params"]["bn1_1"]["scale"], sd["features.1.weight"].numpy())
    np.testing.assert_array_equal(v["params"]["bn1_1"]["bias"], sd["features.1.bias"].numpy())
    np.testing.assert_array_equal(v["batch_stats"]["bn1_1"]["mean"], sd["features.1.running_mean"].numpy())
    np.testing.assert_array_equal(v["batch_stats"]["bn1_1"]["var"], sd["features.1.running_var"].numpy())
    # num_batches_tracked has no place in Flax and is dropped; a state dict without it loads as well.
    sd2 = {k: t for k, t in sd.items() if not k.endswith("num_batches_tracked")}
    v2 = load_torchvision_weights("vgg11_bn", sd2, widths=(2, 2, 2, 2, 2), fc_features=(4, 4), num_classes=2)
    jax.tree_util.tree_map(np.testing.assert_array_equal, v, v2)


# ----------------------------------------------------------------------------------------------------------
# Every model name maps structurally: torch modules built on the meta device (shapes only, no memory).


@pytest.mark.parametrize("name", sorted(TORCHVISION_MODELS))
def test_every_key_and_shape_maps(name):
    with torch.device("meta"):
        ref = _torch_reference(name)
    want = {k: tuple(t.shape) for k, t in ref.state_dict().items()}
    got = torchvision_keys(name)
    assert got == want
    plan = conversion_plan(name)
    # Every one of our variables is filled, once.
    tree = jax.eval_shape(lambda: jaxcnn.create_model(name).init(
        jax.random.key(0), jnp.zeros((1,) + jaxcnn.default_input_shape(name))))
    n_leaves = len(jax.tree_util.tree_leaves(tree))
    assert len(plan) == n_leaves == len({e.flax_name for e in plan})
    assert len(want) == len(plan) + sum(k.endswith("num_batches_tracked") for k in want)


def test_registry_counterparts_are_the_issue_list():
    assert sorted(TORCHVISION_MODELS) == sorted(
        ["alexnet_owt"] + [f"vgg{d}{b}" for d in (11, 13, 16, 19) for b in ("", "_bn")]
        + [f"resnet{d}" for d in (18, 34, 50, 101, 152)] + [f"densenet{d}" for d in (121, 161, 169, 201)])
    assert set(TORCHVISION_MODELS) <= set(jaxcnn.list_models())


# ----------------------------------------------------------------------------------------------------------
# Refusals.


def _small_vgg_sd():
    ref = TvVGG(11, True, (2, 2, 2, 2, 2), 4, num_classes=2)
    return {k: t.numpy() for k, t in ref.state_dict().items()}


SMALL = dict(widths=(2, 2, 2, 2, 2), fc_features=(4, 4), num_classes=2)


def test_refuses_unknown_and_counterpartless_models():
    with pytest.raises(ValueError, match="unknown model 'resnet19'"):
        load_torchvision_weights("resnet19", {})
    with pytest.raises(ValueError, match="no torchvision counterpart.*alexnet_owt"):
        load_torchvision_weights("alexnet", {})
    with pytest.raises(ValueError, match="'resnet20' has no torchvision counterpart"):
        load_torchvision_weights("resnet20", {})
    with pytest.raises(ValueError, match="kernel_plan='large' has no torchvision counterpart"):
        load_torchvision_weights("vgg11", {}, kernel_plan="large")
    with pytest.raises(ValueError, match="preact=True has no torchvision counterpart"):
        load_torchvision_weights("resnet18", {}, preact=True)


def test_refuses_missing_unexpected_and_misshapen_keys():
    sd = _small_vgg_sd()
    missing = dict(sd)
    del missing["features.4.weight"]
    with pytest.raises(ValueError, match=r"no key 'features.4.weight'.*1 of \d+ keys missing"):
        load_torchvision_weights("vgg11_bn", missing, **SMALL)
    extra = dict(sd, **{"features.99.weight": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="unexpected key 'features.99.weight'"):
        load_torchvision_weights("vgg11_bn", extra, **SMALL)
    # The same weights under a model without BatchNorm: its BN keys are unexpected.
    with pytest.raises(ValueError, match="vgg11"):
        load_torchvision_weights("vgg11", sd, **SMALL)
    # A classifier for another number of classes: the fix is num_classes.
    with pytest.raises(ValueError, match=r"'classifier.6.bias' has shape \(2,\).*needs \(5,\).*num_classes=2"):
        load_torchvision_weights("vgg11_bn", sd, **dict(SMALL, num_classes=5))
    wrong = dict(sd, **{"features.0.weight": np.zeros((2, 3, 5, 5), np.float32)})
    with pytest.raises(ValueError, match=r"'features.0.weight' has shape \(2, 3, 5, 5\).*\(2, 3, 3, 3\)"):
        load_torchvision_weights("vgg11_bn", wrong, **SMALL)
    with pytest.raises(TypeError, match="torch tensor or a numpy array"):
        load_torchvision_weights("vgg11_bn", dict(sd, **{"features.0.weight": [1, 2]}), **SMALL)


# ----------------------------------------------------------------------------------------------------------
# Files: read safely.


def test_torch_file_roundtrip_and_wrappers(tmp_path):
    ref = TvVGG(11, True, (2, 2, 2, 2, 2), 4, num_classes=2)
    path = tmp_path / "vgg.pth"
    torch.save(ref.state_dict(), path)
    v = load_torchvision_weights("vgg11_bn", str(path), **SMALL)
    np.testing.assert_array_equal(v["params"]["fc8"]["kernel"], ref.state_dict()["classifier.6.weight"].numpy().T)
    # A training checkpoint {'state_dict': ...} with DataParallel's 'module.' prefix.
    wrapped = {"state_dict": {"module." + k: t for k, t in ref.state_dict().items()}, "epoch": 3}
    torch.save(wrapped, tmp_path / "ckpt.pt")
    v2 = load_torchvision_weights("vgg11_bn", tmp_path / "ckpt.pt", **SMALL)
    jax.tree_util.tree_map(np.testing.assert_array_equal, v, v2)


class _Payload:
    """Unpickling this would write a file: the reader must never do it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_objects_are_refused_not_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"features.0.weight": _Payload(str(marker))}, f, protocol=2)
    with pytest.raises(ValueError, match="refusing to read"):
        read_state_dict(str(path))
    assert not marker.exists()
    # A whole pickled module (not a state dict) is refused too.
    torch.save(TvVGG(11, True, (2, 2, 2, 2, 2), 4, num_classes=2), tmp_path / "module.pth")
    with pytest.raises(ValueError, match="refusing to read"):
        read_state_dict(str(tmp_path / "module.pth"))
    with pytest.raises(ValueError, match="no weights file"):
        read_state_dict(str(tmp_path / "absent.pth"))


def _write_safetensors(path, tensors):
    """The safetensors layout from its specification: u64 little-endian header size, JSON header, raw data."""
    import ml_dtypes

    codes = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<i8"): "I64",
             np.dtype(ml_dtypes.bfloat16): "BF16"}
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for k, a in tensors.items():
        a = np.ascontiguousarray(a)
        header[k] = {"dtype": codes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def test_safetensors_file(tmp_path):
    sd = _small_vgg_sd()
    import ml_dtypes

    sd["features.1.weight"] = np.array([1.5, -0.25], np.float32)  # exact in bfloat16
    half = {"features.0.bias": np.float16, "features.1.weight": ml_dtypes.bfloat16}
    sd = {k: (v.astype(half[k]) if k in half else v) for k, v in sd.items()}
    _write_safetensors(tmp_path / "w.safetensors", sd)
    got = read_state_dict(str(tmp_path / "w.safetensors"))
    assert set(got) == set(sd)
    for k in sd:
        np.testing.assert_array_equal(got[k], sd[k])
    v = load_torchvision_weights("vgg11_bn", str(tmp_path / "w.safetensors"), **SMALL)
    np.testing.assert_array_equal(v["params"]["conv1_1"]["bias"], sd["features.0.bias"].astype(np.float32))
    np.testing.assert_array_equal(v["params"]["bn1_1"]["scale"], [1.5, -0.25])


def test_old_densenet_key_names_load():
    # torchvision's published DenseNet files name 'denselayer1.norm.1.weight' what the module calls 'norm1.weight'.
    keys = torchvision_keys("densenet121", growth_rate=4, init_features=8, block_sizes=(1, 1, 1, 1), num_classes=2)
    old = {}
    for k, s in keys.items():
        k2 = k
        for part in ("norm1", "norm2", "conv1", "conv2"):
            k2 = k2.replace(f"denselayer1.{part}.", f"denselayer1.{part[:-1]}.{part[-1]}.")
        old[k2] = np.full(s, 0.5, np.float32) if s else np.zeros((), np.int64)
    assert any(".norm.1." in k for k in old)
    v = load_torchvision_weights("densenet121", old, growth_rate=4, init_features=8, block_sizes=(1, 1, 1, 1),
                                 num_classes=2)
    assert v["params"]["denseblock1"]["denselayer1"]["norm1"]["scale"].shape == (8,)


# ----------------------------------------------------------------------------------------------------------
# Our own orbax checkpoints load the same way; convolutionalize works on imported weights.


def test_orbax_checkpoint_of_our_training_loads(tmp_path):
    import optax

    from jaxcnn.train import create_train_state
    from jaxcnn.train.checkpoint import Checkpointer

    model = jaxcnn.create_model("fashion_cnn_tiny", num_classes=4)
    state = create_train_state(model, optax.adam(1e-3), jax.random.key(1), (28, 28, 1))
    state = state.replace(batch_stats=jax.tree_util.tree_map(lambda x: x + 0.25, state.batch_stats))
    ckpt = Checkpointer(str(tmp_path / "checkpoints"))
    ckpt.save(3, jax.tree_util.tree_map(np.asarray, state.arrays()))
    ckpt.close()
    v = load_checkpoint_weights("fashion_cnn_tiny", str(tmp_path), num_classes=4)  # the run's workdir
    assert set(v) == {"params", "batch_stats"}
    jax.tree_util.tree_map(np.testing.assert_array_equal, v["params"], state.params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, v["batch_stats"], state.batch_stats)
    x = jnp.ones((2, 28, 28, 1))
    np.testing.assert_array_equal(model.apply(v, x), model.apply({"params": state.params,
                                                                  "batch_stats": state.batch_stats}, x))
    with pytest.raises(ValueError, match=r"params/fc5/bias has shape \(4,\) but .* needs \(10,\).*num_classes"):
        load_checkpoint_weights("fashion_cnn_tiny", str(tmp_path))
    with pytest.raises(ValueError, match="no checkpoint directory"):
        load_checkpoint_weights("fashion_cnn_tiny", str(tmp_path / "nowhere"))


def test_convolutionalize_on_imported_weights():
    widths, fc = (8, 16, 24, 16, 12), 32
    ref = _randomise(TvAlexNet(widths, fc, num_classes=5), seed=4)
    over = dict(widths=widths, fc_features=(fc, fc), num_classes=5)
    variables = load_torchvision_weights("alexnet_owt", ref.state_dict(), **over)
    model = jaxcnn.create_model("alexnet_owt", **over)
    x = np.random.default_rng(1).normal(size=(1, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    fcn, fcn_vars = jaxcnn.convolutionalize(model, variables, input_shape=(224, 224, 3))
    out = np.asarray(fcn.apply(fcn_vars, x.transpose(0, 2, 3, 1)))
    # At the training size the dense map is 1x1: the classifier's logits.
    np.testing.assert_allclose(out.reshape(1, -1), want, atol=1e-4, rtol=1e-4)
