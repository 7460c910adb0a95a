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
    if config.model.name not in jaxcnn.list_models():
        pytest.skip(f"model {config.model.name} is not registered on this checkout")
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
