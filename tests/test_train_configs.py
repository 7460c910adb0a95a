"""Every experiments/configs/*.py is a valid configuration, and its model (where
registered on this checkout) accepts the configured input (shapes only)."""

import glob
import importlib.util
import os

import jax
import jax.numpy as jnp
import pytest

import jaxcnn
from jaxcnn.data import canvases
from jaxcnn.data.datasets import STOCK
from jaxcnn.train import build_model, validate_config
from jaxcnn.train.tasks import task_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "experiments", "configs", "*.py")))
CANVAS = canvases.CONFIGS["default"].size
SIZES = {"fashion_mnist_offline": (28, 28, 1, 10), "imagenet2012": (224, 224, 3, 1000),
         # garments on grey canvases; masks: background + the 10 garment classes
         "fashion_mnist_segmentation": (CANVAS, CANVAS, 1, len(canvases.SEG_CLASSES))}


def _load(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config()


def test_the_required_configs_exist():
    names = {os.path.basename(p)[:-3] for p in CONFIGS}
    assert {"default", "lenet5", "keras_cifar_cnn", "resnet20", "vgg", "cifar10", "imagenet"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.basename(p))
def test_config_is_valid_and_its_model_takes_its_input(path):
    config = _load(path)
    validate_config(config)  # one schema: fine-tuning settings are its `finetune` section
    assert config.task in task_names(), f"{os.path.basename(path)}: task {config.task!r} is not registered"
    assert config.model.name in jaxcnn.list_models(), f"{os.path.basename(path)}: no model {config.model.name!r}"
    if config.task not in ("classification", "segmentation"):
        # detectors take regions or emit grids: their configs are built and trained through the engine in
        # tests/test_detection.py (on the tiny canvases)
        assert config.dataset in canvases.NAMES
        return
    if config.dataset.startswith("synthetic"):
        h, w, c = config.synthetic_shape
        classes = config.model.get("num_classes", config.num_classes)
    else:
        h, w, c, classes = SIZES.get(config.dataset) or STOCK[config.dataset]
    size = config.preprocess.pad_to or h
    channels = 3 if config.preprocess.to_rgb else c
    model = build_model(config, classes)
    x = jax.ShapeDtypeStruct((2, size, size, channels), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    logits = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
    want = (2, size, size, classes) if config.task == "segmentation" else (2, classes)
    assert logits.shape == want


def test_the_applications_own_their_config_sections():
    """base_config's finetune and ablation sections are what those applications define, validated by them; the
    base schema module names neither's keys, and a new section registers the same way."""
    import types
    import warnings

    import ml_collections

    from jaxcnn.ablation import config as ablation_config
    from jaxcnn.finetune import config as finetune_config
    from jaxcnn.train import config as base

    c = base.base_config()
    assert c.finetune.to_dict() == finetune_config.section().to_dict()
    assert c.ablation.to_dict() == ablation_config.section().to_dict()
    source = open(base.__file__).read()
    assert "head_learning_rate" not in source and "target_train_error" not in source
    c.finetune.source = "imagenet"
    with pytest.raises(ValueError, match="config.finetune.source"):
        validate_config(c)
    with pytest.warns(DeprecationWarning, match="jaxcnn.finetune.config"):
        assert base.FINETUNE_SOURCES == finetune_config.FINETUNE_SOURCES

    checked = []
    mod = types.ModuleType("jaxcnn_test_section")
    mod.section = lambda: ml_collections.ConfigDict({"rounds": 2, "overrides": {}, "label": ""})
    mod.validate = lambda config, check_number, check_items: (checked.append(config.demo.rounds),
                                                               check_number("demo.rounds", config.demo.rounds, low=1))
    mod.OPEN = ("overrides",)
    mod.READ_BY_TRAINING = False  # not a hyperparameter of a training run
    mod.RUN_NAME_KEY = "label"  # names the run's config when set
    import sys

    from jaxcnn.train.records import _hparams

    sys.modules[mod.__name__] = mod
    try:
        base.register_section("demo", mod.__name__)
        base.register_section("demo", mod.__name__)  # the same pair again: a no-op
        with pytest.raises(ValueError, match="config section 'demo' is defined twice"):
            base.register_section("demo", "jaxcnn_another_section")
        c = base.base_config()
        assert c.demo.rounds == 2 and "demo.overrides" in base.open_sections()
        assert "demo." in base.not_read_by_training() and not any(k.startswith("demo.") for k in _hparams(c))
        assert base.run_name(c) is None
        c.demo.label = "mine"
        assert base.run_name(c) == "mine"
        c.demo.label = ""
        validate_config(c)
        c.demo.rounds = 0
        with pytest.raises(ValueError, match="config.demo.rounds must be positive"):
            validate_config(c)
        assert checked == [2, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            base.check_key("demo.overrides.anything")  # an open sub-section takes any key
    finally:
        del base.SECTIONS["demo"], sys.modules[mod.__name__]
        base._SECTION_MODULES.pop("demo", None)


def test_the_package_root_registers_the_applications_and_the_engine_names_none():
    """jaxcnn's applications plug into the engine by module path from the package root; jaxcnn.train's modules
    hold none of those paths, and what a plain run records follows the sections' own flags."""
    import re

    from jaxcnn import _applications
    from jaxcnn.train import config as base
    from jaxcnn.train import register_section, register_task_provider
    from jaxcnn.train.records import _hparams

    assert _applications.SECTIONS == {"finetune": "jaxcnn.finetune.config", "ablation": "jaxcnn.ablation.config",
                                      "detection": "jaxcnn.detection.config"}
    assert list(_applications.SECTIONS) == ["finetune", "ablation", "detection"]  # base_config()'s order
    assert _applications.TASK_PROVIDERS == {t: "jaxcnn.detection" for t in ("fast_rcnn", "spp_net", "rcnn", "yolo")}
    assert register_section is _applications.register_section
    assert register_task_provider is _applications.register_task_provider
    with pytest.raises(ValueError, match="task 'yolo' is defined twice"):
        register_task_provider("yolo", "jaxcnn_other_detectors")
    with pytest.raises(ValueError, match="dotted name"):
        register_section("demo", "not a module")
    for path in glob.glob(os.path.join(ROOT, "jaxcnn", "train", "*.py")):
        source = open(path).read()
        assert not re.search(r"jaxcnn\.(finetune|ablation|detection)\.config['\"]|['\"]jaxcnn\.detection['\"]",
                             source), path
        assert 'startswith("ablation' not in source and 'get("ablation"' not in source, path

    c = base.base_config()
    hparams = _hparams(c)
    assert "finetune.head_steps" in hparams and "detection.rois_per_image" in hparams  # read by training
    assert not any(k.startswith(("ablation.", "detection.svm_")) for k in hparams)  # not read by training
    assert base.run_name(c) is None
    c.ablation.name = "lrn"
    assert base.run_name(c) == "lrn"  # the ablation's RUN_NAME_KEY


def test_a_models_conv_mode_default_comes_from_the_model():
    from jaxcnn.train import base_config

    c = base_config()
    assert "conv_mode" not in c.model  # nothing to drop for a model without the field
    for name in ("fashion_cnn", "resnet20"):
        c.model.name = name
        assert build_model(c, 10).conv_mode == jaxcnn.create_model(name).conv_mode == "cross_correlation"
    c.model.conv_mode = "convolution"
    assert build_model(c, 10).conv_mode == "convolution"
