"""A catalogue of bad inputs: each is refused at the boundary with a one-line
ValueError/TypeError (or, from scripts/train.py, one line on stderr and exit
status 2) that names the fix — never a traceback from deep inside JAX.

Cases already covered elsewhere (tests/test_train_loop.py: nan_policy, the
unknown-model path through train_and_evaluate, the unwritable-workdir path
through train_and_evaluate, ...) are not repeated with the same values here.
"""

import io
import importlib.util
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn
from jaxcnn import ops
from jaxcnn.data import datasets, sharding
from jaxcnn.train import setup as train_setup
from jaxcnn.train import workdir as workdir_module
from jaxcnn.train import train_and_evaluate, validate_config
from jaxcnn.train.checkpoint import Checkpointer, CheckpointError
from jaxcnn.train.config import check_key
from jaxcnn.train.parallel import make_strategy

sys.path.insert(0, os.path.dirname(__file__))
from test_train_loop import tiny_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "train.py")
DEFAULT_CONFIG = os.path.join(ROOT, "experiments", "configs", "default.py")


def _z(*shape):
    return jnp.zeros(shape, jnp.float32)


def _init_shape(name, shape, **fields):
    """Initialise a registry model abstractly (no weights allocated)."""
    model = jaxcnn.create_model(name, **fields)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape)))


def _set(config, key, value):
    """Set a config value bypassing ConfigDict's own type check, as a hand-written dict would."""
    *path, last = key.split(".")
    target = config
    for p in path:
        target = target[p]
    target._fields[last] = value
    return config


def _bad_config(key, value):
    return lambda tmp: validate_config(_set(tiny_config(), key, value))


def _save_ckpt(tmp, arrays):
    ck = Checkpointer(str(tmp / "ck"))
    ck.save(1, arrays, {"window": []})
    ck.close()
    return Checkpointer(str(tmp / "ck"))


def _corrupt_checkpoint(tmp):
    ck = _save_ckpt(tmp, {"w": np.arange(6, dtype=np.float32)})
    for root, _, files in os.walk(tmp / "ck" / "1"):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"\x00garbage\xff" * 3)
    ck.restore({"w": np.zeros(6, np.float32)})


def _other_architecture_tree(tmp):
    _save_ckpt(tmp, {"w": np.ones(6, np.float32)}).restore({"w": np.zeros(6, np.float32),
                                                              "b": np.zeros(2, np.float32)})


def _other_architecture_shape(tmp):
    _save_ckpt(tmp, {"w": np.ones(6, np.float32)}).restore({"w": np.zeros(8, np.float32)})


def _nan_loader(bad_value):
    def case(tmp):
        images = np.random.default_rng(0).random((16, 12, 12, 1)).astype(np.float32)
        images[5, 3, 4, 0] = bad_value
        good = datasets.ArrayDataset(images, np.zeros(16, np.int32), 10)
        orig = datasets.load
        datasets.load = lambda *a, **k: good
        try:
            train_setup.load_data(tiny_config(dataset="mnist"))
        finally:
            datasets.load = orig
    return case


def _unwritable_workdir(tmp):
    blocker = tmp / "a_file"
    blocker.write_text("not a directory")  # a path under a regular file cannot be created, even by root
    workdir_module.check_writable(str(blocker / "run"))


def _preprocess_mean_per_channel(tmp):
    c = tiny_config()
    c.preprocess.mean, c.preprocess.std = (0.1, 0.2), (0.3, 0.3)
    train_setup.make_preprocess_fn(c, 3)


CASES = [
    # --- registry and models ---
    ("unknown_model_name", lambda t: jaxcnn.create_model("resnet2O"), ValueError,
     r"unknown model 'resnet2O'\. Did you mean .*'resnet20'"),
    ("unknown_model_in_summary", lambda t: jaxcnn.summary("alexnett"), ValueError, r"Did you mean 'alexnet'"),
    ("unknown_model_field", lambda t: jaxcnn.create_model("resnet20", widht=3), ValueError,
     r"has no field 'widht'\. Did you mean 'base_width'"),
    ("image_of_wrong_rank", lambda t: _init_shape("resnet20", (32, 32, 3)), ValueError,
     r"rank 4 \(N, H, W, C\).*add a batch axis with x\[None\]"),
    ("wrong_channels_googlenet_grey", lambda t: _init_shape("googlenet", (1, 224, 224, 1)), ValueError,
     r"expects 3 input channel\(s\), got 1.*Convert the images"),
    ("too_small_alexnet_28x28", lambda t: _init_shape("alexnet", (1, 28, 28, 3)), ValueError,
     r"expects images of 227x227, got 28x28.*Resize or pad"),
    ("unknown_conv_mode", lambda t: _init_shape("resnet20", (1, 32, 32, 3), conv_mode="conv"), ValueError,
     r"unknown conv_mode 'conv'; allowed: 'cross_correlation', 'convolution'"),
    ("unknown_kernel_plan", lambda t: _init_shape("vgg11", (1, 224, 224, 3), kernel_plan="5x5"), ValueError,
     r"unknown kernel_plan '5x5'; allowed: '3x3', 'large'"),
    ("unknown_block", lambda t: _init_shape("resnet20", (1, 32, 32, 3), block="bottle"), ValueError,
     r"unknown block 'bottle'.*Did you mean 'bottleneck'"),
    ("count_params_of_non_arrays", lambda t: jaxcnn.count_params({"w": 3}), TypeError,
     r"count_params expects a pytree of arrays"),
    # --- ops ---
    ("groups_not_dividing", lambda t: ops.cross_correlate(_z(1, 8, 8, 3), _z(3, 3, 1, 4), groups=2), ValueError,
     r"groups=2 must divide the input channels 3.*choose a divisor of 3"),
    ("kernel_larger_than_padded_input", lambda t: ops.cross_correlate(_z(1, 4, 4, 1), _z(5, 5, 1, 1)), ValueError,
     r"larger than the padded input.*use a larger input, more padding or a smaller kernel"),
    ("non_positive_stride", lambda t: ops.cross_correlate(_z(1, 8, 8, 1), _z(3, 3, 1, 1), stride=0), ValueError,
     r"stride must be >= 1, got 0; pass a positive stride"),
    ("conv_transpose_unreachable_output_size",
     lambda t: ops.conv_transpose(_z(1, 4, 4, 1), _z(3, 3, 1, 1), stride=2, output_size=(20, 20)), ValueError,
     r"output height 20 is not reachable.*pass an output_size height in 9\.\.10"),
    ("kernel_not_hwio", lambda t: ops.cross_correlate(_z(1, 8, 8, 1), _z(3, 3, 1)), ValueError,
     r"kernel must have rank 4 \(KH, KW, C_in/groups, C_out\) in HWIO"),
    ("kernel_channels_mismatch", lambda t: ops.cross_correlate(_z(1, 8, 8, 2), _z(3, 3, 3, 1)), ValueError,
     r"x has 2 channels.*make the kernel's third axis 2"),
    ("unknown_padding_string", lambda t: ops.cross_correlate(_z(1, 8, 8, 1), _z(3, 3, 1, 1), padding="same_"),
     ValueError, r"padding must be 'VALID', 'SAME', an int or"),
    ("pool_window_zero", lambda t: ops.max_pool(_z(1, 4, 4, 1), 0), ValueError,
     r"max_pool window must be >= 1, got 0; pass a positive"),
    ("unknown_pyramid_pool_mode", lambda t: ops.spatial_pyramid_pool(_z(1, 8, 8, 3), mode="mean"), ValueError,
     r"allowed: 'max', 'avg'"),
    # --- training configuration ---
    ("unknown_nested_config_key", lambda t: check_key("optimizer.learnig_rate"), ValueError,
     r"unknown config key 'optimizer.learnig_rate'\. Did you mean 'optimizer.learning_rate'"),
    ("wrong_value_type_bool", _bad_config("progress", "yes"), TypeError,
     r"config.progress must be a bool \(like True\), got 'yes'"),
    ("wrong_value_type_float", _bad_config("optimizer.learning_rate", "fast"), TypeError,
     r"config.optimizer.learning_rate must be a float"),
    ("zero_steps", _bad_config("num_steps", 0), ValueError, r"config.num_steps must be positive, got 0"),
    ("zero_batch_size", _bad_config("batch_size", 0), ValueError, r"config.batch_size must be positive, got 0"),
    ("zero_eval_batch_size", _bad_config("eval_batch_size", 0), ValueError, r"eval_batch_size must be positive"),
    ("negative_checkpoint_every", _bad_config("checkpoint_every", -1), ValueError,
     r"checkpoint_every must be >= 0 \(0 = only at the end\)"),
    ("non_positive_learning_rate", _bad_config("optimizer.learning_rate", 0.0), ValueError,
     r"learning_rate must be positive"),
    ("label_smoothing_out_of_range", _bad_config("label_smoothing", 1.0), ValueError, r"must be in \[0, 1\)"),
    ("unknown_parallel_close_name", _bad_config("parallel", "pmapp"), ValueError, r"Did you mean 'pmap'"),
    ("unknown_parallel_in_library", lambda t: make_strategy("dp", preprocess=None), ValueError,
     r"unknown parallel 'dp'; allowed: 'none', 'pmap', 'mesh'"),
    ("unknown_schedule", _bad_config("optimizer.schedule", "cosin"), ValueError, r"Did you mean 'cosine'"),
    ("preprocess_mean_per_channel", _preprocess_mean_per_channel, ValueError, r"give one per channel"),
    # --- data and devices ---
    ("global_batch_not_divisible_pmap", lambda t: make_strategy("pmap", preprocess=None).check_batch(12),
     ValueError, r"batch_size 12 is not divisible by the 8 devices; use a multiple of 8"),
    ("batch_larger_than_dataset", lambda t: sharding.batch_indices(0, 0, 10, 16), ValueError,
     r"batch_size 16 is larger than the dataset \(10 examples\); lower it"),
    ("unknown_dataset", lambda t: datasets.load("fashon_mnist", "train", data_dir_path=str(t)), ValueError,
     r"unknown dataset 'fashon_mnist'.*Did you mean 'fashion_mnist'"),
    ("dataset_name_not_str", lambda t: datasets.load(3, "train"), TypeError, r"dataset name must be a str"),
    ("synthetic_shape_not_hwc", lambda t: datasets.synthetic((28, 28)), ValueError,
     r"synthetic shape must be \(H, W, C\) of positive ints.*e\.g\. \(28, 28, 1\)"),
    ("nan_in_input_images", _nan_loader(np.nan), ValueError,
     r"1 image\(s\) with NaN/Inf pixels \(first: example 5\); clean or drop them"),
    ("inf_in_input_images", _nan_loader(np.inf), ValueError, r"NaN/Inf pixels \(first: example 5\)"),
    ("unwritable_workdir", _unwritable_workdir, ValueError, r"is not writable .*pass a --workdir you can write to"),
    # --- checkpoints ---
    ("corrupt_checkpoint", _corrupt_checkpoint, CheckpointError,
     r"cannot restore checkpoint .*corrupt or from a different.*Delete it \(rm -r"),
    ("checkpoint_of_other_architecture", _other_architecture_tree, CheckpointError,
     r"holds a different model or optimizer state \(only in the checkpoint: -; only in the model: b\); "
     r"use a new --workdir"),
    ("checkpoint_array_of_other_shape", _other_architecture_shape, CheckpointError,
     r"array of shape \(6,\) at w where the model has \(8,\); use a new --workdir"),
]


@pytest.mark.parametrize("case, call, error, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line(case, call, error, match, tmp_path):
    with pytest.raises(error) as info:
        call(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg.strip(), f"{case}: message is not one line: {msg!r}"
    import re

    assert re.search(match, msg), f"{case}: {msg!r} does not match {match!r}"


def test_catalogue_has_at_least_25_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 25


def _train_script_module():
    spec = importlib.util.spec_from_file_location("jaxcnn_train_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_script_unknown_override_in_process(monkeypatch):
    """scripts/train.py refuses a misspelt --config.KEY before training starts: one line, exit 2."""
    script = _train_script_module()
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with pytest.raises(SystemExit) as info:
        script.main(["--config", DEFAULT_CONFIG, "--workdir", "/tmp/x", "--config.optimizer.learnig_rate=0.1"])
    lines = err.getvalue().strip().splitlines()
    assert info.value.code == 2 and len(lines) == 1
    assert lines[0].startswith("error: unknown config key") and "Did you mean 'optimizer.learning_rate'" in lines[0]


def _run_script(args, env=None):
    r = subprocess.run([sys.executable, SCRIPT, "--config", DEFAULT_CONFIG] + args, capture_output=True, text=True,
                       timeout=180, env={**os.environ, **(env or {})})
    lines = [l for l in r.stderr.strip().splitlines() if l.strip() and not l.startswith(("I1", "W1"))]
    return r, lines


SMALL = ["--config.num_steps=2", "--config.batch_size=8", "--config.eval_batch_size=48", "--config.progress=False",
         "--config.parallel=none"]


def test_script_dataset_not_installed_names_the_apt_package(tmp_path):
    empty = tmp_path / "no_fashion_mnist"
    empty.mkdir()
    r, lines = _run_script(["--workdir", str(tmp_path / "w")] + SMALL,
                           env={"JAXCNN_FASHION_MNIST_DIR": str(empty), "TFDS_DATA_DIR": str(tmp_path / "tfds")})
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "apt-get install dataset-fashion-mnist" in lines[0], r.stderr


def test_script_checkpoint_of_another_architecture_exits_2(tmp_path):
    wd = str(tmp_path / "w")
    train_and_evaluate(tiny_config(num_steps=2, eval_every=0), wd)  # a fashion_cnn_tiny checkpoint at step 2
    r, lines = _run_script(["--workdir", wd, "--config.dataset=synthetic", "--config.synthetic_shape=(12,12,1)",
                            "--config.synthetic_size=96", "--config.model.name=fashion_cnn_small",
                            "--config.num_steps=4"] + SMALL[1:])
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "use a new --workdir" in lines[0], r.stderr
