"""Model fields are checked once, where a model is created: create_model refuses a bad conv_mode, a value
outside a family's declared choices and fields that disagree, before any module exists; the models'
__call__ no longer repeat those checks, and their blocks receive bound layers instead of conv_mode, dtype
and bn_axis_name fields."""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import pytest

import jaxcnn
from jaxcnn.layers import CONV_MODES
from jaxcnn.models import create_model, get_spec, list_models, module_fields, registry
from jaxcnn.models import densenet, googlenet, nasnet, resnet
from jaxcnn.train.config import base_config
from jaxcnn.train.setup import build_model

MODELS = list_models()
PACKAGE = pathlib.Path(jaxcnn.__file__).parent

# The choice fields each family declares (issue 32): the values it can take are the family's, the names here.
DECLARED = {
    "ResNet": {"block", "shortcut", "stem"},
    "VGG": {"kernel_plan", "stage_entry"},
    "LeNet5": {"c3_table", "pooling", "activation", "output"},
    "FCN": {"variant", "weight_init", "upsampling"},
    "AlexNet": {"dropout_placement"},
    "SmallCNN": {"activation"},
    "DenseNet": {"stem"},
    "NASNet": {"stem"},
    "SPPNet": {"pool_mode"},
    "FastRCNN": {"region_pool", "spp_corners"},
}


def test_every_model_with_conv_mode_refuses_a_bad_one_in_create_model():
    with_field = [n for n in MODELS if "conv_mode" in module_fields(get_spec(n).module)]
    assert with_field == MODELS  # every registered model has the public field
    for name in with_field:
        with pytest.raises(ValueError) as info:
            create_model(name, conv_mode="flipped")  # refused here: no module is built, nothing initialised
        msg = str(info.value)
        assert "\n" not in msg and f"model {name!r}: unknown conv_mode 'flipped'; allowed: " in msg, msg
        assert all(repr(mode) in msg for mode in CONV_MODES), msg


def test_each_family_declares_its_choice_fields():
    declared = {}
    for name in MODELS:
        spec = get_spec(name)
        declared.setdefault(spec.module.__name__, set(spec.family.choices))
    assert {k: v for k, v in declared.items() if v} == DECLARED


def test_each_declared_choice_refuses_a_bad_value_and_takes_every_allowed_one():
    cases = [(name, field, allowed) for name in MODELS for field, allowed in get_spec(name).family.choices.items()]
    assert {get_spec(name).module.__name__ for name, _, _ in cases} == set(DECLARED)
    for name, field, allowed in cases:
        with pytest.raises(ValueError) as info:
            create_model(name, **{field: "no_such_value"})
        msg = str(info.value)
        assert f"model {name!r}: unknown {field} 'no_such_value'; allowed: " in msg, msg
        assert all(repr(a) in msg for a in allowed), msg
        for value in allowed:
            assert getattr(create_model(name, **{field: value}), field) == value


def test_a_registered_variants_own_value_is_checked(monkeypatch):
    spec = get_spec("resnet20")
    bad = dataclasses.replace(spec, name="resnet20_shortcut_d", fields={**spec.fields, "shortcut": "D"})
    monkeypatch.setitem(registry._REGISTRY, bad.name, bad)
    with pytest.raises(ValueError, match=r"^model 'resnet20_shortcut_d': unknown shortcut 'D'; allowed: 'A', 'B', 'C'"):
        create_model(bad.name)
    create_model(bad.name, shortcut="A")  # the caller's override is what is built, and checked


@pytest.mark.parametrize("name, fields, match", [
    ("vgg16", dict(widths=(64, 128)), r"VGG stage_sizes \(2, 2, 3, 3, 3\) and widths \(64, 128\) must have the same"),
    ("minivgg", dict(image_size=30), r"VGG image_size 30 must be divisible by 2\*\*stages = 4"),  # 2 stages: 2**2
    ("segnet_small", dict(widths=(16, 32)), r"stage_sizes \(1, 2, 2\) and widths \(16, 32\) must have the same"),
    ("keras_cifar_cnn", dict(pool_after=(True,)), r"SmallCNN pool_after \(True,\) needs one entry per convolution"),
    ("fcn8s", dict(widths=((8,),) * 4), r"widths must give the convolutions of 5 stages, got 4"),
    ("googlenet", dict(width=4.5), r"GoogLeNet width must be a number in \(0, 4\], got 4.5"),
    ("nasnet_a_cifar", dict(penultimate_filters=100), r"multiple of 24 \* filter_multiplier\*\*2 = 96, got 100"),
    ("fast_rcnn", dict(trunk_pools=5), r"trunk_pools must be -1 \(all\) or 0..4 .* got 5"),  # 5 stages: 4 pools
    ("fast_rcnn", dict(svd_ranks=(4,)), r"svd_ranks must be \(k6, k7\) or \(\), got \(4,\)"),
])
def test_fields_that_disagree_are_refused_in_create_model(name, fields, match):
    with pytest.raises(ValueError, match=match) as info:
        create_model(name, **fields)
    assert "\n" not in str(info.value)


def _config(**model):
    c = base_config()
    with c.unlocked():
        c.model.name = model.pop("name", "fashion_cnn_tiny")
        c.parallel = "none"
        for k, v in model.items():
            c.model[k] = v
    return c


@pytest.mark.parametrize("model, match", [
    (dict(conv_mode="conv"), r"^config\.model\.conv_mode: unknown conv_mode 'conv'; allowed: 'cross_correlation', "
                             r"'convolution'"),
    (dict(dropout="abc"), r"^config\.model\.dropout must be a float, got 'abc'"),
    (dict(name="minivgg", widths=(8, 16, 32)), r"^config\.model: VGG stage_sizes \(2, 2\) and widths \(8, 16, 32\)"),
    (dict(widthz=(8, 8, 8)), r"^config\.model\.widthz: model 'fashion_cnn_tiny' \(FashionCNN\) has no field 'widthz'\."
                             r" Did you mean 'widths'"),
])
def test_the_training_config_reaches_the_same_check_and_names_the_key(model, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build_model(_config(**model), num_classes=10)


def _calls(path: pathlib.Path, names: set) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if called in names:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {called}")
    return found


def test_no_model_module_checks_fields_again():
    # _fields.py is the one checker create_model runs; every other file in jaxcnn/models is a model or helper.
    files = [p for p in (PACKAGE / "models").rglob("*.py") if p.name != "_fields.py"]
    assert {"resnet.py", "densenet.py", "googlenet.py", "nasnet.py", "vgg.py", "spp.py", "yolo.py"} <= {
        p.name for p in files}
    assert [c for p in files for c in _calls(p, {"check_conv_mode", "check_choice"})] == []
    setup = (PACKAGE / "train" / "setup.py").read_text()
    assert "_check_field_types" not in setup and "check_fields" not in setup


BLOCKS = [resnet.ResidualBlock, resnet._Projection, densenet.DenseLayer, densenet.DenseBlock, densenet.Transition,
          googlenet.Inception, googlenet.AuxClassifier, nasnet.SeparableBranch, nasnet.NormalCell,
          nasnet.ReductionCell, nasnet.AuxHead]


def test_blocks_receive_bound_layers_and_models_keep_their_public_fields():
    for block in BLOCKS:
        fields = set(module_fields(block))
        assert not fields & {"conv_mode", "dtype", "bn_axis_name"}, block.__name__
        assert "conv" in fields, block.__name__
    for model in (resnet.ResNet, densenet.DenseNet, nasnet.NASNet):
        assert {"conv_mode", "dtype", "bn_axis_name"} <= set(module_fields(model))
    assert {"conv_mode", "dtype"} <= set(module_fields(googlenet.GoogLeNet))


def test_a_model_built_from_its_class_directly_is_checked_by_the_same_checker():
    # Without the check a misspelt block would quietly build another network (ResidualBlock's plan treats
    # anything but "basic" as a bottleneck); the class-built model goes through check_model, create_model's
    # checker, when it is constructed, and a good one builds as before.
    with pytest.raises(ValueError, match=r"^model 'ResNet': unknown block 'bottlenek'; allowed: 'basic', 'bottleneck'"):
        resnet.ResNet(block="bottlenek")
    with pytest.raises(ValueError, match=r"unknown conv_mode 'conv'"):
        resnet.ResNet(conv_mode="conv")
    with pytest.raises(ValueError, match=r"GoogLeNet width must be a number in \(0, 4\], got 4.5"):
        googlenet.GoogLeNet(width=4.5)
    direct = resnet.ResNet(stage_sizes=(1, 1, 1), block="basic", stem="cifar", base_width=4, num_classes=3)
    shapes = jax.eval_shape(direct.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
    assert shapes["params"]["fc"]["kernel"].shape == (4 * 2 ** 2, 3)  # the last stage's 4 * 2**2 = 16 maps
    # create_model checks before it builds, with the variant's name in the message (not the class's)
    with pytest.raises(ValueError, match=r"^model 'resnet20': unknown block"):
        create_model("resnet20", block="bottlenek")
