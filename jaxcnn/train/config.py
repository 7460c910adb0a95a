"""The training configuration: every key with its default, and its validation.

Config files in experiments/configs/ start from `base_config()` and change
what they need, so every key a run can take is defined here once. Keys of
`config.model` other than `name` are passed to the model as field overrides.
"""

from __future__ import annotations

import ml_collections

from jaxcnn._validation import check_choice, suggest
from jaxcnn.train.optim import OPTIMIZERS, SCHEDULES
from jaxcnn.train.parallel import PARALLEL

NAN_POLICIES = ("stop", "skip")


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.dataset = "fashion_mnist_offline"  # or "synthetic", or a prepared TFDS name (mnist, cifar10, imagenet2012, ...)
    c.data_dir = ""  # TFDS data dir; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.train_split = "train"
    c.eval_split = "test"
    c.synthetic_shape = (28, 28, 1)  # (H, W, C) of dataset="synthetic"
    c.synthetic_size = 1024
    c.num_classes = 10  # used by dataset="synthetic"; real datasets give their own

    c.model = ml_collections.ConfigDict({"name": "fashion_cnn", "conv_mode": "cross_correlation"})

    c.preprocess = ml_collections.ConfigDict({
        "mean": (0.2860,), "std": (0.3530,),  # Fashion-MNIST training-set pixel mean and std
        "pad_to": 0,  # pad images to this size (LeNet-5: 28 -> 32); 0 = no padding
        "crop_padding": 0, "flip": False, "pca_jitter": 0.0,
        "to_rgb": False,  # repeat a grey channel 3 times (RGB-only models on Fashion-MNIST)
    })

    c.optimizer = ml_collections.ConfigDict({
        "name": "adamw", "learning_rate": 2e-3, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4,
        "schedule": "cosine", "warmup_steps": 100, "step_boundaries": (0.5, 0.75), "step_factor": 0.1,
        "grad_clip_norm": 0.0,
    })
    c.label_smoothing = 0.0
    c.mixed_precision = False  # bf16 compute, float32 parameters
    c.parallel = "mesh"  # "none" | "pmap" | "mesh"
    c.nan_policy = "stop"  # "stop" | "skip"

    c.seed = 0
    c.batch_size = 128  # global, over all devices and processes
    c.eval_batch_size = 1000
    c.num_steps = 2000
    c.log_every = 50
    c.eval_every = 500  # 0 = only at the end
    c.checkpoint_every = 500  # 0 = only at the end
    c.keep_checkpoints = 3
    c.progress = True
    return c


def _flat(cfg, prefix=""):
    out = {}
    for k, v in cfg.items():
        path = f"{prefix}{k}"
        if isinstance(v, ml_collections.ConfigDict) and k != "model":
            out.update(_flat(v, path + "."))
        else:
            out[path] = v
    return out


def known_keys() -> list[str]:
    """Every dotted config key (config.model.* is open: model fields)."""
    keys = []
    for k, v in _flat(base_config()).items():
        keys.append(k)
        if k == "model":
            keys.extend(f"model.{m}" for m in v)
    return keys


def check_key(path: str) -> None:
    """Refuse an unknown dotted key (e.g. from a --config.KEY=VALUE flag), suggesting close ones."""
    if path.startswith("model."):
        return  # model fields are checked against the model by create_model
    keys = known_keys()
    if path not in keys:
        raise ValueError(f"unknown config key {path!r}." + suggest(path, keys) +
                         " See jaxcnn/train/config.py:base_config for every key.")


def validate_config(config) -> None:
    """One-line ValueError/TypeError for any unknown key or bad value."""
    base = _flat(base_config())
    given = _flat(config)
    for key in given:
        check_key(key)
    for key, default in base.items():
        if key not in given or key == "model":
            continue
        value = given[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, tuple):
            ok = isinstance(value, (tuple, list))
        else:
            ok = True
        if not ok:
            raise TypeError(f"config.{key} must be a {type(default).__name__} (like {default!r}), "
                            f"got {value!r} ({type(value).__name__}).")
    for key in ("num_steps", "batch_size", "eval_batch_size", "keep_checkpoints", "log_every"):
        if key in given and given[key] <= 0:
            raise ValueError(f"config.{key} must be positive, got {given[key]}.")
    for key in ("eval_every", "checkpoint_every"):
        if key in given and given[key] < 0:
            raise ValueError(f"config.{key} must be >= 0 (0 = only at the end), got {given[key]}.")
    check_choice("config.parallel", config.parallel, PARALLEL)
    check_choice("config.nan_policy", config.nan_policy, NAN_POLICIES)
    check_choice("config.optimizer.name", config.optimizer.name, OPTIMIZERS)
    check_choice("config.optimizer.schedule", config.optimizer.schedule, SCHEDULES)
    if "name" not in config.model:
        raise ValueError("config.model.name is missing; set it to a registered model (jaxcnn.list_models()).")
    if config.optimizer.learning_rate <= 0:
        raise ValueError(f"config.optimizer.learning_rate must be positive, got {config.optimizer.learning_rate}.")
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ValueError(f"config.label_smoothing must be in [0, 1), got {config.label_smoothing}.")
    if len(config.preprocess.mean) != len(config.preprocess.std) or min(config.preprocess.std) <= 0:
        raise ValueError("config.preprocess.mean and .std need one value per channel (or one for all), std > 0.")
