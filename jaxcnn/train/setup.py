"""Building one run from a config: model, data, preprocessing, task, optimizer,
parallel strategy and the initial state. No I/O but reading the data.

    setup = build(config)                       # everything the engine needs
    setup = build(config, model=m, init_state=f, first_step=300, phase="full")   # fine-tuning's 2nd phase

The data is held in memory (ArrayDatasets, batches gathered by the loop) for
small fixed-size sets, and otherwise read through the input pipeline
(jaxcnn.data.sources.Split, batches from jaxcnn.data.train_batches): when a
split does not fit in memory, or holds images of varying sizes, or
config.preprocess.image_size > 0 (see `open_streams`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn._extras import require
from jaxcnn import runtime
from jaxcnn.data import augment, datasets, registry
from jaxcnn.data.identity import of_config
from jaxcnn.data.integrity import readable
from jaxcnn.data.sources import Split, open_split, overlap
from jaxcnn.data.sharding import process_slice
from jaxcnn.models import family_of, get_spec, module_fields
from jaxcnn.models import registry as model_registry
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.config import validate_config
from jaxcnn.train.optim import make_optimizer
from jaxcnn.train.parallel import PMAP_AXIS, Strategy, make_strategy
from jaxcnn.train.state import TrainState, create_train_state, with_ema
from jaxcnn.train.tasks import get_task


@dataclasses.dataclass
class Setup:
    """One run of the engine: steps first_step+1 .. config.num_steps of `phase` (metrics carry the phase
    unless it is "train"). `init_state()` gives the host TrainState at first_step; `tx`/`schedule` count the
    phase's own steps from 0."""

    config: object
    model: object
    task: object
    train_data: datasets.ArrayDataset | Split  # a Split: the engine streams it through jaxcnn.data.train_batches
    eval_data: datasets.ArrayDataset | Split
    preprocess: Callable
    input_shape: tuple
    strategy: Strategy
    tx: object
    schedule: Callable
    init_state: Callable[[], TrainState]
    first_step: int = 0
    phase: str = "train"
    test_data: Optional[datasets.ArrayDataset | Split] = None  # config.test_split, scored once at the end
    # config.init_from resolved ("{seed}" replaced): the run a fresh start takes its shared variables from (the
    # engine reads it only when the workdir has no checkpoint yet; resuming and evaluating never do)
    init_from: str = ""

    @property
    def streamed(self) -> bool:
        """Whether the engine reads the data through the input pipeline (jaxcnn.data.train_batches)."""
        return isinstance(self.train_data, Split)

    @property
    def model_fields(self) -> dict:
        return {f: getattr(self.model, f) for f in module_fields(type(self.model))}


def build_model(config, num_classes: int):
    """The registry model of config.model, with num_classes, dtype and (under pmap) bn_axis_name set. Its
    fields are checked where every model's are, in the registry (a message names the config key)."""
    name = config.model.name
    fields = set(module_fields(get_spec(name).module))
    overrides = {k: v for k, v in config.model.items() if k != "name"}
    if "num_classes" in fields:
        overrides.setdefault("num_classes", num_classes)
    if config.mixed_precision and "dtype" in fields:
        overrides["dtype"] = jnp.bfloat16
    if config.parallel == "pmap" and "bn_axis_name" in fields:
        overrides["bn_axis_name"] = PMAP_AXIS
    return model_registry._create(name, overrides, where="config.model.")


def make_preprocess_fn(config, channels: int, *, flip: Optional[bool] = None):
    """The on-device preprocessing of config.preprocess and config.augment for images of `channels` channels.
    flip=False leaves the flip to the input pipeline (it flips the random-resized crops when
    preprocess.image_size is set, and then crops no further on the device)."""
    p = config.preprocess
    aug = config.get("augment", "none")
    crop = p.crop_padding
    if aug != "none" and not crop and not p.image_size:
        crop = augment.FLIP_CROP_PADDING
    if flip is None:
        flip = p.flip or aug != "none"
    mean, std = tuple(p.mean), tuple(p.std)
    if p.to_rgb:
        channels = 3
    if len(mean) == 1:
        mean, std = mean * channels, std * channels
    if len(mean) != channels:
        raise ValueError(f"config.preprocess.mean has {len(mean)} values for images of {channels} channels; "
                         "give one per channel.")
    return augment.make_preprocess(mean=mean, std=std, pad_to=p.pad_to or None, resize_to=p.resize_to or None,
                                   crop_padding=crop, flip=flip, pca_jitter=p.pca_jitter, to_rgb=p.to_rgb,
                                   trivial=aug == "trivial")


def class_subset(dataset, classes, per_class: Optional[int] = None, seed: int = 0):
    """The examples of `classes` only, relabelled 0..len(classes)-1 in the order given; with `per_class`,
    that many examples of each (drawn with `seed`). Returns a jaxcnn.data.ArrayDataset."""
    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct class ids, got {classes}.")
    bad = [c for c in classes if not 0 <= c < dataset.num_classes]
    if bad:
        raise ValueError(f"classes {bad} are not in the dataset's 0..{dataset.num_classes - 1}; "
                         f"pick from those.")
    rng = np.random.default_rng(seed)
    picks = []
    for c in classes:
        idx = np.flatnonzero(dataset.labels == c)
        if per_class is not None:
            if per_class > len(idx):
                raise ValueError(f"class {c} has {len(idx)} examples, fewer than the {per_class} per class "
                                 "asked; lower config.train_examples_per_class.")
            idx = np.sort(rng.choice(idx, per_class, replace=False))
        picks.append(idx)
    idx = np.sort(np.concatenate(picks))
    remap = np.full(dataset.num_classes, -1, np.int32)
    remap[classes] = np.arange(len(classes), dtype=np.int32)
    return datasets.ArrayDataset(dataset.images[idx], remap[dataset.labels[idx]], len(classes))


def check_learnable(data, what: str) -> None:
    """Refuse a training split from which nothing can be learned: labels outside 0..num_classes-1, a single
    class, or images that are all the same."""
    if isinstance(data.labels, dict):  # detection targets: the task checks its own
        return
    labels = np.asarray(data.labels)
    if len(data) == 0:
        raise ValueError(f"{what} holds no examples; check config.classes, config.train_examples_per_class and "
                         "the dataset.")
    if labels.size and (labels.min() < 0 or labels.max() >= data.num_classes):
        raise ValueError(f"{what} has labels outside 0..{data.num_classes - 1} (found {int(labels.min())}.."
                         f"{int(labels.max())}); fix the labels or the dataset's class count.")
    if labels.ndim == 1 and len(np.unique(labels)) < 2:
        raise ValueError(f"{what} holds a single class ({int(labels[0])}); a classifier learns nothing from it. "
                         "Check config.classes and the dataset.")
    images = np.asarray(data.images[:1024])
    if len(data) > 1 and np.all(images == images[:1]):
        raise ValueError(f"{what}: the images are all identical (the first {len(images)} checked); the data "
                         "was not read correctly. Rebuild the dataset.")


def load_data(config):
    """(train, eval) splits of config.dataset, with config.classes / train_examples_per_class / eval_examples
    applied, checked for NaN/Inf pixels, labels outside the classes and data nothing can be learned from."""
    if config.data_dir and not os.path.isdir(os.path.expanduser(config.data_dir)):
        raise ValueError(f"config.data_dir {config.data_dir!r} is not a directory; pass the TFDS data dir that "
                         "holds the prepared dataset, or leave it empty for $TFDS_DATA_DIR or ~/tensorflow_datasets.")
    _quiet_tfds(config)
    kw = _kwargs(config)
    train = datasets.load(config.dataset, config.train_split, **kw)
    test = datasets.load(config.dataset, config.eval_split, **kw)
    per_class = config.train_examples_per_class or None
    if config.classes:
        train = class_subset(train, config.classes, per_class, seed=config.seed)
        test = class_subset(test, config.classes)
    elif per_class:
        train = class_subset(train, range(train.num_classes), per_class, seed=config.seed)
    if config.eval_examples:  # labels may be a dict of arrays (detection boxes and classes): take() slices each
        head = test.take(slice(0, config.eval_examples))
        test = datasets.ArrayDataset(head["image"], head["label"], test.num_classes)
    if len(test) == 0:
        raise ValueError(f"{config.dataset} split {config.eval_split!r} holds no examples"
                         f"{' of classes ' + str(tuple(config.classes)) if config.classes else ''}; nothing could be "
                         "evaluated. Choose another --config.eval_split or --config.classes.")
    datasets.check_finite(train, f"{config.dataset} split {config.train_split!r}")
    datasets.check_finite(test, f"{config.dataset} split {config.eval_split!r}")
    check_learnable(train, f"{config.dataset} split {config.train_split!r}")
    return train, test


def _kwargs(config) -> dict:
    return dict(data_dir_path=config.data_dir or None, synthetic_shape=tuple(config.synthetic_shape),
                synthetic_size=config.synthetic_size, num_classes=config.num_classes, seed=config.seed)


@readable  # a damaged file is one line naming the dataset and how to rebuild it
def _open(name: str, split: str, *, data_dir_path=None, **kw) -> Split:
    return open_split(name, split, data_dir=data_dir_path, **kw)


def open_streams(config):
    """(train, eval) Splits of config.dataset when the engine reads them through the input pipeline, else
    None (the in-memory path of load_data). The pipeline is used when preprocess.image_size > 0, or when a
    split is not held in memory by jaxcnn.data.open_split (more than IN_MEMORY_MAX_BYTES, not uint8, or
    images of varying sizes). Generated sets and the detection/segmentation canvases stay in memory."""
    size = config.preprocess.image_size
    generated = config.dataset in registry.names()  # drawn in code, or held whole (the canvases)
    if size and config.task != "classification":
        raise ValueError(f"config.preprocess.image_size crops and resizes images but not the targets of task "
                         f"{config.task!r}; set --config.preprocess.image_size=0 (use resize_to instead).")
    if generated and not size:
        return None
    if config.data_dir and not os.path.isdir(os.path.expanduser(config.data_dir)):
        return None  # load_data names the problem
    _quiet_tfds(config)
    # Under image_size every split streams: the pipeline decodes and resizes each batch, so a split held in
    # memory would only add its whole decoded size to the peak (and keep it for the run).
    stream = {"in_memory": False} if size else {}
    train, test = (_open(config.dataset, s, **_kwargs(config), **stream)
                   for s in (config.train_split, config.eval_split))
    if not size and train.in_memory and test.in_memory:
        return None
    for split in (train, test):
        if not size and split.image_shape is None:
            raise ValueError(f"{config.dataset} split {split.split!r} holds images of varying sizes; set "
                             "--config.preprocess.image_size=S (e.g. 224) to crop and resize them.")
    if config.classes or config.train_examples_per_class:
        raise ValueError(f"config.classes and config.train_examples_per_class select examples in memory, but "
                         f"{config.dataset} is read through the input pipeline "
                         f"({'preprocess.image_size is set' if size else 'it does not fit in memory'}); prepare "
                         "a dataset of those examples, or leave both unset.")
    if len(test) == 0:
        raise ValueError(f"{config.dataset} split {config.eval_split!r} holds no examples; choose another "
                         "--config.eval_split.")
    return train, test


def check_scoring_splits(config) -> None:
    """Refuse (one line) an eval_split or test_split that shares examples with train_split, unless
    config.allow_split_overlap says it is meant: a score on examples the model trained on is not a test."""
    if config.get("allow_split_overlap", False):
        return
    sizes = {}

    def sizes_of():
        if not sizes:
            sizes.update(of_config(config)["splits"])
        return sizes

    for key in ("eval_split", "test_split"):
        scored = config.get(key, "")
        if not scored:
            continue
        shared = overlap(config.dataset, config.train_split, scored, sizes_of)
        if shared:
            raise ValueError(f"config.{key}={scored!r} shares {shared} examples with config.train_split="
                             f"{config.train_split!r}: a score on trained examples is not a test. Choose a disjoint "
                             f"split (e.g. train_split='train[:90%]', {key}='train[90%:]'), or set "
                             "--config.allow_split_overlap=True if it is meant.")


def _quiet_tfds(config) -> None:
    if config.dataset not in ("synthetic", "synthetic_shapes") and not (config.progress and sys.stderr.isatty()):
        require("tensorflow_datasets")
        import tensorflow_datasets as tfds

        tfds.disable_progress_bar()  # preparing a dataset draws bars on stderr: only for a live terminal


def load_test(config, streamed: bool):
    """config.test_split of config.dataset (None when unset): a Split if `streamed`, else in memory with
    config.classes applied."""
    if not config.test_split:
        return None
    if streamed:
        return _open(config.dataset, config.test_split, **_kwargs(config),
                     **({"in_memory": False} if config.preprocess.image_size else {}))
    test = datasets.load(config.dataset, config.test_split, **_kwargs(config))
    if config.classes:
        test = class_subset(test, config.classes)
    if len(test) == 0:
        raise ValueError(f"{config.dataset} split {config.test_split!r} holds no examples; choose another "
                         "--config.test_split.")
    datasets.check_finite(test, f"{config.dataset} split {config.test_split!r}")
    return test


def _as_split(data, split: str) -> Split:
    """An in-memory ArrayDataset as a Split, for the input pipeline (preprocess.image_size on given data)."""
    if isinstance(data, Split):
        return data
    return Split("given", split, num_classes=data.num_classes, class_names=[str(i) for i in range(data.num_classes)],
                 image_shape=tuple(data.images.shape[1:]), length=len(data), encoded=False, arrays=data)


def input_shape(config, data, preprocess=None) -> tuple:
    """The (H, W, C) the model sees: `data`'s images (an ArrayDataset, or a Split as the input pipeline
    gives it) after config.preprocess (traced, not computed)."""
    if isinstance(data, Split):
        size = config.preprocess.image_size
        stored = (size, size, data.channels) if size else data.image_shape
        preprocess = preprocess or make_preprocess_fn(config, data.channels)
        sample = jax.ShapeDtypeStruct((1,) + tuple(stored), np.uint8)
    else:
        preprocess = preprocess or make_preprocess_fn(config, data.images.shape[-1])
        sample = jax.ShapeDtypeStruct((1,) + data.images.shape[1:], data.images.dtype)
    return tuple(jax.eval_shape(lambda x: preprocess(x, None, False), sample).shape[1:])


def _check_classes(model, data, config) -> None:
    """A classifier narrower than the labels would silently learn nothing from the labels it cannot hold."""
    n = getattr(model, "num_classes", None)
    if isinstance(data, Split):  # its labels are not read ahead: its classes may all appear
        top = data.num_classes - 1
    else:
        top = int(np.max(data.labels)) if len(data) and np.ndim(data.labels) == 1 else None
    if n is not None and top is not None and top >= n:
        raise ValueError(f"model {config.model.name!r} has num_classes={n} but {config.dataset} has labels up to "
                         f"{top} ({data.num_classes} classes); set --config.model.num_classes={data.num_classes} "
                         "or choose classes with --config.classes.")


def _check_model_builds(model, shape, config) -> None:
    """Trace the model's initialisation on the input it will see (no arrays are computed), so that an input it
    cannot take (a wrong size, or fields that fit no input of this size) is refused here, before a workdir
    is touched, and not when the loop starts with the workdir's config.json already written."""
    x = jax.ShapeDtypeStruct((1,) + tuple(shape), jnp.float32)
    jax.eval_shape(lambda k: model.init({"params": k, "dropout": k}, jnp.zeros(x.shape, x.dtype), train=False),
                   jax.random.key(0))


def build(config, *, model=None, train_data=None, eval_data=None, test_data=None, optimizer=None,
          init_state: Optional[Callable[[], TrainState]] = None, first_step: int = 0, phase: str = "train",
          strategy: Optional[Strategy] = None) -> Setup:
    """Everything one engine run needs, from `config` (validated first); any part may be given instead.

    optimizer: (tx, schedule) counting the phase's own steps; default from config.optimizer over
      num_steps - first_step steps.
    strategy: the Strategy of an earlier Setup whose config differs from this one's at most in `seed`, passed
      with that Setup's `model` and (tx, schedule): its compiled steps are then this run's, with nothing
      compiled again (`reusable_parts` gives the three; jaxcnn.ablation's runs of one arm share them).
    init_state: () -> the host TrainState at first_step; default: `model` freshly initialised from
      config.seed.
    test_data: config.test_split's data, scored once at the end; read here only when the training and
      evaluation data are (callers that pass those read only what they need: pass it too).
    """
    validate_config(config)
    runtime.configure()  # XLA:CPU flags, where JAX has not started yet (scripts have done it already)
    check_scoring_splits(config)
    loads = train_data is None or eval_data is None
    if loads:
        train_data, eval_data = open_streams(config) or load_data(config)
    elif config.preprocess.image_size:
        train_data, eval_data = _as_split(train_data, config.train_split), _as_split(eval_data, config.eval_split)
    streamed = isinstance(train_data, Split)
    if streamed and not isinstance(eval_data, Split):
        eval_data = _as_split(eval_data, config.eval_split)
    if loads:  # a test split that names the eval split is that split, not a second copy of it
        same = config.test_split == config.eval_split and not config.eval_examples
        test_data = eval_data if same else load_test(config, streamed)
    elif test_data is not None and streamed:
        test_data = _as_split(test_data, config.test_split)
    if model is None:
        model = build_model(config, train_data.num_classes)
    _check_classes(model, train_data, config)
    channels = train_data.channels if streamed else train_data.images.shape[-1]
    # With image_size the pipeline flips its crops; otherwise the flip stays on the device, as in memory.
    preprocess = make_preprocess_fn(config, channels, flip=False if config.preprocess.image_size else None)
    shape = input_shape(config, train_data, preprocess)
    _check_model_builds(model, shape, config)
    family = family_of(model)
    task = get_task(config.task, config=config, aux_weight=float(family.aux_weight(model)),
                    num_classes=getattr(model, "num_classes", train_data.num_classes))
    mix = recipe_mix(config)
    if (mix or config.augment != "none") and not getattr(task, "image_labels", False):
        raise ValueError(f"config.task={config.task!r} has labels that an image augmentation would have to move "
                         "too; set --config.augment=none, --config.mixup_alpha=0 and --config.cutmix_alpha=0.")
    steps = config.num_steps - first_step
    if steps <= 0:
        raise ValueError(f"config.num_steps={config.num_steps} leaves no steps after step {first_step}; raise it.")
    tx, schedule = optimizer if optimizer is not None else make_optimizer(config.optimizer, steps,
                                                                           config.grad_accum_steps)
    # Models scheduled over training (NASNet's drop path) see the fraction of this run's steps done.
    progress_fn = (lambda s: (s - first_step) / steps) if family.takes_progress(model) else None
    if strategy is None:
        strategy = make_strategy(config.parallel, preprocess=preprocess, task=task,
                                 learning_rate_fn=lambda s: schedule(s - first_step), progress_fn=progress_fn,
                                 ema_decay=config.ema_decay, mix=mix)
    elif strategy.name != config.parallel or model is None or optimizer is None:
        raise ValueError(f"build(strategy=...) reuses the compiled steps of an earlier Setup: pass that Setup's "
                         f"model and optimizer=(tx, schedule) with it, and a config with its parallel mode "
                         f"(config.parallel={config.parallel!r}, the strategy's {strategy.name!r}); "
                         f"reusable_parts(setup) gives all three.")
    strategy.check_batch(config.batch_size, "batch_size")
    strategy.check_batch(config.eval_batch_size, "eval_batch_size")
    process_slice(config.batch_size, jax.process_index(), jax.process_count())
    if config.batch_size > len(train_data):
        raise ValueError(f"config.batch_size={config.batch_size} is larger than the training split "
                         f"({len(train_data)} examples); lower it.")

    if init_state is None:
        def init_state():
            init_key = jax.random.split(jax.random.key(config.seed))[0]
            state = create_train_state(model, tx, init_key, shape)
            return state.replace_arrays(jax.tree_util.tree_map(np.asarray, state.arrays()))

    if config.ema_decay:  # the EMA starts at the first step's weights (a given state may carry one already)
        given_init = init_state

        def init_state():
            state = given_init()
            return state if state.ema is not None else with_ema(state)

    return Setup(config, model, task, train_data, eval_data, preprocess, shape, strategy, tx, schedule,
                 init_state, first_step, phase, test_data, config.init_from.replace("{seed}", str(config.seed)))


def reusable_parts(setup: Setup) -> dict:
    """The keyword arguments of `build` that give another run of `setup.config` at another seed this run's
    compiled steps: its model, (tx, schedule) and strategy. Only for a config that differs from
    `setup.config` in `seed` alone, and only for a Setup of the default optimizer and first step (the
    strategy's learning rate and progress are this Setup's)."""
    return {"model": setup.model, "optimizer": (setup.tx, setup.schedule), "strategy": setup.strategy}


def check_init_from(path: str) -> str:
    """The checkpoint folder of config.init_from's run, or a one-line ValueError naming the fix."""
    return _checkpoint_directory(path)


def _checkpoint_directory(path: str) -> str:
    directory = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.isdir(os.path.join(directory, "checkpoints")):
        directory = os.path.join(directory, "checkpoints")
    if not os.path.isdir(directory):
        raise ValueError(f"config.init_from={path!r} has no checkpoints; pass the --workdir of a finished "
                         "training run (or \"\" to start afresh).")
    return directory


def init_from_workdir(state: TrainState, path: str) -> TrainState:
    """`state` with every params / batch_stats array that the latest checkpoint of the run in `path` holds at
    the same path taken from it (the optimizer state stays fresh). A shared path of another shape, or no
    shared path at all, is refused: the runs are of different networks."""
    from flax import traverse_util

    directory = _checkpoint_directory(path)
    ckpt = Checkpointer(directory)
    try:
        step = ckpt.latest_step()
        if step is None:
            raise ValueError(f"config.init_from={path!r}: no checkpoint in {directory}; train that run first.")
        saved = ckpt.restore_variables(step)
    finally:
        ckpt.close()
    taken, out = 0, {}
    for collection in ("params", "batch_stats"):
        ours = traverse_util.flatten_dict(dict(getattr(state, collection) or {}))
        theirs = traverse_util.flatten_dict(dict(saved.get(collection) or {}))
        for key, value in theirs.items():
            if key in ours and tuple(ours[key].shape) != tuple(value.shape):
                raise ValueError(f"config.init_from: {collection}/{'/'.join(key)} is {tuple(value.shape)} in "
                                 f"{directory} (step {step}) but {tuple(ours[key].shape)} here; start from a run "
                                 "of the same network (num_classes and widths included).")
        shared = {k: np.asarray(theirs[k], ours[k].dtype) for k in ours if k in theirs}
        taken += len(shared)
        out[collection] = traverse_util.unflatten_dict({**ours, **shared}) if ours else getattr(state, collection)
    if not taken:
        raise ValueError(f"config.init_from: the run in {directory} shares no variable with this model; pass a "
                         "run of the coarser network (FCN-16s starts from FCN-32s).")
    state = state.replace(**out)
    # the EMA starts at the first step's weights: the ones taken, not the random ones they replaced
    return with_ema(state) if state.ema is not None else state


def recipe_mix(config) -> Optional[dict]:
    """jaxcnn.data.augment.mix_batch's settings from config.mixup_alpha / cutmix_alpha / mixup_prob /
    mixup_switch_prob; None when both alphas are 0."""
    if not (config.mixup_alpha > 0 or config.cutmix_alpha > 0):
        return None
    return dict(mixup_alpha=float(config.mixup_alpha), cutmix_alpha=float(config.cutmix_alpha),
                prob=float(config.mixup_prob), switch_prob=float(config.mixup_switch_prob))


def train_key(config) -> np.ndarray:
    """The key every step folds its step number into (raw key data: the same on every host)."""
    return np.asarray(jax.random.key_data(jax.random.split(jax.random.key(config.seed))[1]))
