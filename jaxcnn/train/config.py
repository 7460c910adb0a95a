"""The one configuration schema: every key with its default, and its validation.

Config files (experiments/configs/*.py, experiments/ablations/*.py) start from
`base_config()` and change what they need, so every key a run can take is
listed by it once. Keys of `config.model` other than `name` are passed to the
model as field overrides; a field not set there takes the model's own default.

An application's settings are its own section, defined and validated by the
application, which registers it by module path (`register_section(name, module)`;
the package root registers jaxcnn's own). `SECTIONS` holds them; each module is
imported the first time a config is built. Such a module holds `section()` (the
keys and their defaults), `validate(config, check_number, check_items)`, `OPEN`
(sub-sections that hold any key) and, optionally, `READ_BY_TRAINING = False`
(a plain training run does not read the section: a rerun may change it, and it
is no hyperparameter of the run), `NOT_READ_BY_TRAINING` (prefixes of the
section's keys that a plain training run does not read) and `RUN_NAME_KEY` (the
section's key that, when set, names the config a run was made from:
`run_name`). This module names no application.
"""

from __future__ import annotations

import importlib
import math
import warnings
from typing import Optional

import ml_collections

from jaxcnn._applications import SECTIONS, register_section  # noqa: F401 - register_section: public here too
from jaxcnn._validation import check_choice, check_split, check_workers, suggest
from jaxcnn.data.augment import AUGMENTS
from jaxcnn.train.optim import OPTIMIZERS, SCHEDULES
from jaxcnn.train.parallel import PARALLEL

NAN_POLICIES = ("stop", "skip")

_SECTION_MODULES: dict = {}  # the imported section modules, by section name


def section_module(name: str):
    """The module that defines config section `name`."""
    if name not in _SECTION_MODULES:
        _SECTION_MODULES[name] = importlib.import_module(SECTIONS[name])
    return _SECTION_MODULES[name]


def open_sections() -> tuple:
    """Sections whose keys are not listed: model fields (checked by the model) and the applications' open
    sub-sections (the ablation's override sets)."""
    return ("model",) + tuple(f"{name}.{sub}" for name in SECTIONS for sub in section_module(name).OPEN)


def not_read_by_training() -> tuple:
    """Prefixes of the sections (or of keys within one: its NOT_READ_BY_TRAINING) that a plain training run
    does not read (the application that does checks them)."""
    out = []
    for name in SECTIONS:
        module = section_module(name)
        if not getattr(module, "READ_BY_TRAINING", True):
            out.append(f"{name}.")
        out.extend(f"{name}.{key}" for key in getattr(module, "NOT_READ_BY_TRAINING", ()))
    return tuple(out)


def run_name(config) -> Optional[str]:
    """The name a config gives its run, from the first section whose module names a key for it (RUN_NAME_KEY;
    e.g. an ablation's name), or None when no section sets one."""
    for name in SECTIONS:
        key = getattr(section_module(name), "RUN_NAME_KEY", None)
        value = config.get(name, {}).get(key) if key else None
        if value:
            return str(value)
    return None


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "classification"  # the loss and metrics (jaxcnn.train.tasks)
    c.dataset = "fashion_mnist_offline"  # or "synthetic", or a prepared TFDS name (mnist, cifar10, ...)
    c.data_dir = ""  # TFDS data dir; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.train_split = "train"
    c.eval_split = "test"  # watched during training and reported at the end (a validation split, e.g. "train[90%:]")
    c.test_split = ""  # also evaluated once at the end, as test_loss / test_accuracy; "" = none
    c.allow_split_overlap = False  # True: eval_split / test_split may share examples with train_split (meant)
    c.eval_examples = 0  # evaluate on the first N examples of eval_split; 0 = all of them
    # Worker processes that read, decode and augment a streamed split (jaxcnn.data.pipeline); 0 = two threads
    # of this process. The batches are the same either way.
    c.data_workers = 0
    c.classes = ()  # train and evaluate on these class ids only, relabelled 0..; () = all
    c.train_examples_per_class = 0  # few labels: this many training images per class (seeded); 0 = all
    c.synthetic_shape = (28, 28, 1)  # (H, W, C) of dataset="synthetic"
    c.synthetic_size = 1024
    c.num_classes = 10  # used by dataset="synthetic"; real datasets give their own

    c.model = ml_collections.ConfigDict({"name": "fashion_cnn"})  # other fields: the model's own defaults

    c.preprocess = ml_collections.ConfigDict({
        "mean": (0.2860,), "std": (0.3530,),  # Fashion-MNIST training-set pixel mean and std
        "pad_to": 0,  # pad images to this size (LeNet-5: 28 -> 32); 0 = no padding
        "resize_to": 0,  # bilinear resize to this size (nets whose strides need larger inputs); 0 = no resize
        "crop_padding": 0, "flip": False, "pca_jitter": 0.0,
        "to_rgb": False,  # repeat a grey channel 3 times (RGB-only models on Fashion-MNIST)
        # The side of the square the model sees, cut on the host by the input pipeline (jaxcnn.data.pipeline):
        # training an Inception random-resized crop (and `flip`), evaluation a resize and centre crop. Images of
        # varying sizes need it; > 0 always streams through the pipeline. 0 = off (the stored size).
        "image_size": 0,
    })

    c.optimizer = ml_collections.ConfigDict({
        "name": "adamw", "learning_rate": 2e-3, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4,
        "schedule": "cosine", "warmup_steps": 100, "step_boundaries": (0.5, 0.75), "step_factor": 0.1,
        "grad_clip_norm": 0.0,
        # schedule "onecycle": rises over warmup_steps from learning_rate / div_factor to learning_rate, then
        # falls to learning_rate / (div_factor * final_div_factor) at num_steps
        "div_factor": 25.0, "final_div_factor": 1e4,
        # the warm-up (onecycle: the rise) as a fraction of num_steps, so it scales with --config.num_steps;
        # 0 = warmup_steps instead
        "warmup_fraction": 0.0,
    })
    # Training recipes (docs/recipes.md): each is off at its default.
    c.label_smoothing = 0.0  # classification targets (1 - e) * one-hot + e / classes
    # An exponential moving average of the parameters and BatchNorm statistics, updated every step with decay
    # min(ema_decay, (1 + step) / (10 + step)), checkpointed, and what every evaluation scores; 0 = off (e.g. 0.999)
    c.ema_decay = 0.0
    # Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on the device: a batch is mixed with its reverse at
    # lambda ~ Beta(alpha, alpha); 0 = off. mixup_prob: the chance a batch is mixed at all; mixup_switch_prob: with
    # both alphas set, the chance a mixed batch uses CutMix rather than mixup. Classification only.
    c.mixup_alpha = 0.0
    c.cutmix_alpha = 0.0
    c.mixup_prob = 1.0
    c.mixup_switch_prob = 0.5
    # On-device training augmentation: "none" (only preprocess.crop_padding / flip), "flip_crop" (random flip
    # and a random crop padded by preprocess.crop_padding, or 2 when that is 0), "trivial" (flip_crop, then
    # TrivialAugment wide: one random op at a random strength per image). Classification only.
    c.augment = "none"
    c.grad_accum_steps = 1  # average the gradients of this many steps per update (optax.MultiSteps); 1 = off
    c.mixed_precision = False  # bf16 compute, float32 parameters
    c.parallel = "mesh"  # "none" | "pmap" | "mesh"
    c.nan_policy = "stop"  # "stop" | "skip"

    c.seed = 0
    # A finished run's workdir (or its checkpoints/ folder) whose latest params and batch_stats start every
    # variable this model shares with it (the same path and shape); the rest keep their initialisation. FCN's
    # staged training: FCN-16s from a trained FCN-32s, FCN-8s from a trained FCN-16s. "{seed}" in it is replaced
    # by config.seed (each seed's run from the same seed's coarser run). "" = a fresh start.
    c.init_from = ""
    c.batch_size = 128  # global, over all devices and processes
    c.eval_batch_size = 1000
    c.num_steps = 2000
    c.log_every = 50
    c.eval_every = 500  # 0 = only at the end
    c.checkpoint_every = 500  # 0 = only at the end (and when interrupted)
    c.keep_checkpoints = 3
    c.progress = True
    c.tensorboard = True

    for name in SECTIONS:  # the applications' sections, in the order they were registered
        c[name] = section_module(name).section()
    return c


def flat(cfg, prefix: str = "") -> dict:
    """{dotted key: value} of a config; the open sections (model fields) and the ablation arms stay whole."""
    out, open_ = {}, open_sections()
    for k, v in cfg.items():
        path = f"{prefix}{k}"
        if isinstance(v, ml_collections.ConfigDict) and path not in open_:
            out.update(flat(v, path + "."))
        else:
            out[path] = v
    return out


def known_keys() -> list[str]:
    """Every dotted config key (config.model.* is open: model fields)."""
    keys, open_ = [], open_sections()
    for k, v in flat(base_config()).items():
        keys.append(k)
        if k in open_:
            keys.extend(f"{k}.{m}" for m in v)
    return keys


def check_key(path: str) -> None:
    """Refuse an unknown dotted key (e.g. from a --config.KEY=VALUE flag), suggesting close ones."""
    if any(path.startswith(s + ".") for s in open_sections()):
        return  # model fields are checked by create_model, the ablation's overrides when they are applied
    keys = known_keys()
    if path not in keys:
        raise ValueError(f"unknown config key {path!r}." + suggest(path, keys) +
                         " See jaxcnn/train/config.py:base_config for every key.")


def _type_ok(default, value) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list))
    if isinstance(default, dict):
        return hasattr(value, "items")
    return True


def _check_number(key: str, value, *, low=None, high=None, low_open=False, what=""):
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"config.{key} must be a finite number, got {value}.")
    if low is not None and (value <= low if low_open else value < low):
        bound = "positive" if (low == 0 and low_open) or (low == 1 and not low_open) else \
            f"{'>' if low_open else '>='} {low}"
        raise ValueError(f"config.{key} must be {bound}{what}, got {value}.")
    if high is not None and value > high:
        raise ValueError(f"config.{key} must be <= {high}{what}, got {value}.")


def validate_config(config) -> None:
    """One-line ValueError/TypeError for any unknown key or bad value, naming the key and a valid value."""
    base = flat(base_config())
    given = flat(config)
    for key in given:
        check_key(key)
    missing = sorted(set(base) - set(given))
    if missing:
        raise ValueError(f"config has no key {missing[0]!r} ({len(missing)} missing); start config files from "
                         "jaxcnn.train.base_config() and change what they need.")
    for key, default in base.items():
        if key not in given or key in open_sections():
            continue
        value = given[key]
        if not _type_ok(default, value):
            kind = type(default).__name__
            raise TypeError(f"config.{key} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind} (like {default!r}), "
                            f"got {value!r} ({type(value).__name__}).")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"config.{key} must be a finite number (like {default!r}), got {value}.")
    for key in ("num_steps", "batch_size", "eval_batch_size", "keep_checkpoints", "log_every", "synthetic_size",
                "num_classes"):
        _check_number(key, given[key], low=1)
    for key in ("eval_every", "checkpoint_every"):
        _check_number(key, given[key], low=0, what=" (0 = only at the end)")
    for key in ("eval_examples", "train_examples_per_class"):
        _check_number(key, given[key], low=0, what=" (0 = all)")
    if not 0 <= config.seed < 2**32:  # jax.random.key(s) keeps s mod 2**32: seed 2**32 would silently be seed 0
        raise ValueError(f"config.seed must be in 0..{2**32 - 1}, got {config.seed}; e.g. 0.")
    for key in ("task", "dataset", "train_split", "eval_split"):
        if not given[key].strip():
            raise ValueError(f"config.{key} is empty; e.g. {base[key]!r}.")
    for key in ("train_split", "eval_split") + (("test_split",) if given.get("test_split") else ()):
        check_split(given[key], f"config.{key}")  # the whole expression, not its first name only
    _check_items("synthetic_shape", config.synthetic_shape, int, low=1, example=(28, 28, 1))
    _check_items("classes", config.classes, int, low=0, example=(0, 1, 2))
    _check_items("optimizer.step_boundaries", config.optimizer.step_boundaries, float, low=0, low_open=True,
                 example=(0.5, 0.75))
    _check_items("preprocess.mean", config.preprocess.mean, float, example=(0.2860,))
    _check_items("preprocess.std", config.preprocess.std, float, low=0, low_open=True, example=(0.3530,))
    if not isinstance(config.model.get("name"), str):
        raise TypeError(f"config.model.name must be a str naming a registered model, got "
                        f"{config.model.get('name')!r}; e.g. 'fashion_cnn'.")
    check_choice("config.parallel", config.parallel, PARALLEL)
    check_choice("config.nan_policy", config.nan_policy, NAN_POLICIES)
    check_choice("config.optimizer.name", config.optimizer.name, OPTIMIZERS)
    check_choice("config.optimizer.schedule", config.optimizer.schedule, SCHEDULES)
    if "name" not in config.model:
        raise ValueError("config.model.name is missing; set it to a registered model (jaxcnn.list_models()).")
    opt = config.optimizer
    _check_number("optimizer.learning_rate", opt.learning_rate, low=0, low_open=True)
    _check_number("optimizer.momentum", opt.momentum, low=0, high=1)
    if opt.momentum == 1:
        raise ValueError("config.optimizer.momentum must be < 1 (1 never forgets a gradient: the updates grow "
                         "without bound), got 1.0; e.g. 0.9.")
    _check_number("optimizer.weight_decay", opt.weight_decay, low=0)
    _check_number("optimizer.warmup_steps", opt.warmup_steps, low=0)
    _check_number("optimizer.step_factor", opt.step_factor, low=0, low_open=True)
    _check_number("optimizer.grad_clip_norm", opt.grad_clip_norm, low=0, what=" (0 = off)")
    if list(opt.step_boundaries) != sorted(opt.step_boundaries):
        raise ValueError(f"config.optimizer.step_boundaries must be increasing, got {tuple(opt.step_boundaries)}; "
                         "e.g. (0.5, 0.75).")
    _check_number("label_smoothing", config.label_smoothing, low=0)
    if config.label_smoothing >= 1.0:
        raise ValueError(f"config.label_smoothing must be in [0, 1), got {config.label_smoothing}.")
    validate_recipe(config)
    p = config.preprocess
    if len(p.mean) != len(p.std) or not p.mean:
        raise ValueError("config.preprocess.mean and .std need one value per channel (or one for all), "
                         f"got {len(p.mean)} means and {len(p.std)} stds.")
    for v in (*p.mean, *p.std):
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"config.preprocess.mean and .std must be finite numbers, got {tuple(p.mean)}, "
                             f"{tuple(p.std)}.")
    if min(p.std) <= 0:
        raise ValueError(f"config.preprocess.std must be > 0 for every channel, got {tuple(p.std)}.")
    for key in ("pad_to", "resize_to", "crop_padding"):
        _check_number(f"preprocess.{key}", p[key], low=0, what=" (0 = off)")
    check_workers(config.get("data_workers", 0), "config.data_workers (0 = threads)")
    if isinstance(p.image_size, bool) or not isinstance(p.image_size, int) or p.image_size < 0:
        raise ValueError(f"config.preprocess.image_size must be an int >= 0 (0 = off), got {p.image_size!r}; "
                         "e.g. --config.preprocess.image_size=224.")
    _check_number("preprocess.pca_jitter", p.pca_jitter, low=0)
    if len(config.synthetic_shape) != 3 or min(config.synthetic_shape) < 1:
        raise ValueError(f"config.synthetic_shape must be (H, W, C) of positive ints, got "
                         f"{tuple(config.synthetic_shape)}; e.g. (28, 28, 1).")
    classes = [int(c) for c in config.classes]
    if len(set(classes)) != len(classes) or min(classes, default=0) < 0:
        raise ValueError(f"config.classes must be distinct class ids >= 0, got {tuple(config.classes)}.")
    for name in SECTIONS:
        section_module(name).validate(config, _check_number, _check_items)


def validate_recipe(config) -> None:
    """The recipe switches (docs/recipes.md): EMA, mixup/CutMix, augmentation, accumulation, one-cycle."""
    if not 0 <= config.ema_decay < 1:
        raise ValueError(f"config.ema_decay must be in [0, 1) (0 = off), got {config.ema_decay}; e.g. 0.999.")
    for key in ("mixup_alpha", "cutmix_alpha"):
        _check_number(key, config[key], low=0, what=" (0 = off; e.g. 0.2 for mixup, 1.0 for CutMix)")
    for key in ("mixup_prob", "mixup_switch_prob"):
        if not 0 <= config[key] <= 1:
            raise ValueError(f"config.{key} is a probability, in [0, 1], got {config[key]}; e.g. "
                             f"{base_config()[key]}.")
    mixing = config.mixup_alpha > 0 or config.cutmix_alpha > 0
    if mixing and config.mixup_prob == 0:
        raise ValueError("config.mixup_prob=0 never mixes a batch, but mixup_alpha/cutmix_alpha are set; set "
                         "--config.mixup_prob=1.0, or the alphas to 0.")
    check_choice("config.augment", config.augment, AUGMENTS)
    if isinstance(config.grad_accum_steps, bool) or config.grad_accum_steps < 1:
        raise ValueError(f"config.grad_accum_steps must be >= 1 (1 = no accumulation), got "
                         f"{config.grad_accum_steps}; e.g. 4.")
    if config.num_steps % config.grad_accum_steps:
        raise ValueError(f"config.grad_accum_steps={config.grad_accum_steps} does not divide "
                         f"num_steps={config.num_steps} (the last update would be cut short); set num_steps to a "
                         f"multiple of it, e.g. {config.num_steps - config.num_steps % config.grad_accum_steps}.")
    opt = config.optimizer
    for key in ("div_factor", "final_div_factor"):
        _check_number(f"optimizer.{key}", opt[key], low=0, low_open=True, what=" (one-cycle's ratios)")
    if not 0 <= opt.warmup_fraction < 1:
        raise ValueError(f"config.optimizer.warmup_fraction must be in [0, 1) (0 = warmup_steps), got "
                         f"{opt.warmup_fraction}; e.g. 0.25.")
    if opt.warmup_fraction and opt.warmup_steps:
        raise ValueError(f"config.optimizer.warmup_fraction={opt.warmup_fraction} and warmup_steps="
                         f"{opt.warmup_steps} both set the warm-up; set --config.optimizer.warmup_steps=0.")


def _check_items(key: str, values, kind, *, low=None, low_open=False, example=None) -> None:
    """Each element of the tuple config.KEY is a `kind` (int: not bool or float; float: any real number),
    finite and in range."""
    for v in values:
        ok = (isinstance(v, int) and not isinstance(v, bool)) if kind is int else (
            isinstance(v, (int, float)) and not isinstance(v, bool))
        if not ok or (kind is float and not math.isfinite(v)) or (
                low is not None and (v <= low if low_open else v < low)):
            what = {int: "ints", float: "finite numbers"}[kind]
            bound = "" if low is None else f" {'>' if low_open else '>='} {low}"
            raise (TypeError if not ok else ValueError)(
                f"config.{key} must hold {what}{bound}, got {tuple(values)!r}; e.g. {example!r}.")


def validate_finetune(ft) -> None:
    """Deprecated: config.finetune is fine-tuning's section (jaxcnn.finetune.config.validate)."""
    warnings.warn("jaxcnn.train.config.validate_finetune moved to jaxcnn.finetune.config.validate; call that "
                  "(the old name goes in the next release).", DeprecationWarning, stacklevel=2)
    section_module("finetune").validate(ml_collections.ConfigDict({"finetune": ft}), _check_number, _check_items)


def __getattr__(name):
    if name == "FINETUNE_SOURCES":
        warnings.warn("jaxcnn.train.config.FINETUNE_SOURCES moved to jaxcnn.finetune.config.FINETUNE_SOURCES.",
                      DeprecationWarning, stacklevel=2)
        return section_module("finetune").FINETUNE_SOURCES
    if name == "OPEN_SECTIONS":
        warnings.warn("jaxcnn.train.config.OPEN_SECTIONS is now open_sections() (the applications add theirs).",
                      DeprecationWarning, stacklevel=2)
        return open_sections()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
