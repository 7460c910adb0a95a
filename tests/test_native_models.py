"""A whole train step of each model family, forward and backward, gives the same
loss and gradients with the native CPU kernels (convolutions, BatchNorm,
pooling) as with XLA's.

Small variants keep compilation short: narrow AlexNet with its two towers
(groups=2), DenseNet-BC with one layer per block, GoogLeNet's stem and an
Inception module, a NASNet-A reduction cell (depthwise separable
convolutions, strided); the full GoogLeNet and ResNet-50 train steps are only
traced. Variables are random values of the shapes `init` gives
(compiling `init` would cost more than the steps). Last, a program with the
native kernels comes back bit for bit from JAX's persistent compilation cache.
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxcnn
from jaxcnn.models.googlenet import Inception
from jaxcnn.models.nasnet import ReductionCell
from jaxcnn.ops import native

pytestmark = pytest.mark.skipif(native.status() != "enabled", reason=f"native convolutions {native.status()}")


class GoogLeNetStemAndInception(nn.Module):
    """GoogLeNet's 7x7/2 stem, overlapping 3x3/2 max pool and one Inception module."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(jaxcnn.layers.Conv(8, 7, strides=2, padding=3)(x))
        x = jaxcnn.ops.max_pool(x, 3, 2, padding="SAME")
        x = Inception((4, 3, 5, 2, 3, 2))(x)
        return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


class NASNetCell(nn.Module):
    """A NASNet-A reduction cell on a small stem: depthwise separable 3x3, 5x5
    and 7x7 convolutions, strided and not, and 1x1 projections."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = jaxcnn.layers.Conv(12, 3, padding=1, use_bias=False)(x)
        h = ReductionCell(filters=6)(x, x, train)
        return nn.Dense(10)(jnp.mean(h, axis=(1, 2)))


# Dropout is off where a family has it: the float64 reference draws its masks from float64 uniforms (other
# masks than float32's), and dropout runs no native kernel.
CASES = {
    "lenet5": (lambda: jaxcnn.create_model("lenet5"), (32, 32, 1)),
    "alexnet": (lambda: jaxcnn.create_model("alexnet", widths=(8, 16, 16, 16, 8), fc_features=(32, 32),
                                            image_size=67, num_classes=10, dropout_rate=0.0), (67, 67, 3)),
    # widths 8 and 32: its first 2x2 max pool takes the reshape/argmax route, its second the native kernel
    "minivgg": (lambda: jaxcnn.create_model("minivgg", widths=(8, 32), fc_features=(32,), dropout_rate=0.0),
                (32, 32, 3)),
    "resnet20": (lambda: jaxcnn.create_model("resnet20"), (32, 32, 3)),
    # The ImageNet stem: 7x7/2 convolution, BatchNorm and the overlapping 3x3/2 max pool.
    "resnet20_stem": (lambda: jaxcnn.create_model("resnet20", stem="imagenet"), (32, 32, 3)),
    "fashion_cnn": (lambda: jaxcnn.create_model("fashion_cnn", dropout=0.0), (28, 28, 1)),
    "densenet": (lambda: jaxcnn.create_model("densenet_bc_100_12", block_sizes=(1, 1, 1), num_classes=10),
                 (32, 32, 3)),
    "googlenet": (GoogLeNetStemAndInception, (32, 32, 3)),
    "nasnet": (NASNetCell, (16, 16, 3)),
}


# Families whose step pools on the native kernels: an overlapping or padded window, or a non-overlapping max pool
# over 32 maps or more (DenseNet-BC's 2x2 average transitions take reduce_window: jaxcnn.ops.pooling).
POOLING = ("alexnet", "fashion_cnn", "googlenet", "minivgg", "nasnet", "resnet20_stem")


def random_variables(model, x):
    """He-normal kernels, unit scales and variances, small random everything else."""
    shapes = jax.eval_shape(lambda k, x: model.init(k, x, train=False), jax.random.key(0), x)
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = getattr(path[-1], "key", "")
        if name in ("scale", "var"):
            return jnp.ones(leaf.shape, leaf.dtype)
        std = np.sqrt(2.0 / np.prod(leaf.shape[:-1])) if name == "kernel" else 0.1
        return jnp.asarray(rng.standard_normal(leaf.shape) * std, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def train_step(model):
    """Loss and gradients of a training-mode forward pass (BatchNorm on batch statistics)."""

    def loss_fn(params, rest, x, y, key):
        out, _ = model.apply({"params": params, **rest}, x, train=True, mutable=["batch_stats"],
                             rngs={"dropout": key})
        logits = out[0] if isinstance(out, tuple) else out
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return jax.value_and_grad(loss_fn)


def run(model, variables, x, y, native_on: bool):
    """The step traced and run with every native kernel on or off (the switches are read at trace
    time); with the number of custom calls of each kind in the program."""
    old = {name: os.environ.get(name) for name in native.SWITCHES.values()}
    os.environ.update({name: "1" if native_on else "0" for name in native.SWITCHES.values()})
    try:
        params = variables["params"]
        rest = {k: v for k, v in variables.items() if k != "params"}
        step = jax.jit(train_step(model))
        text = step.lower(params, rest, x, y, jax.random.key(2)).as_text()
        counts = {kind: text.count(f"custom_call @jaxcnn_{kind}")
                  for kind in ("conv", "bn", "bn_grad_stats", "max_pool", "avg_pool", "dense")}
        return step(params, rest, x, y, jax.random.key(2)), counts
    finally:
        for name, value in old.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_step_matches_xla(name, monkeypatch):
    # ReLU's kink makes the gradient a step function of each pre-activation's sign: float32 rounding that moves
    # one pre-activation across zero in one step and not the other changes the gradient by a jump, whatever the
    # kernels (ResNet-20 at batch 2: XLA's float32 step 2e-3 off the float64 step, relative to the largest
    # gradient; at batch 32 the native step 1.9e-3 off; with GELU in ReLU's place both within 3e-6, and every case
    # here within 6e-6). A smooth activation keeps both steps on one branch; the kernels under test are the same.
    monkeypatch.setattr(nn, "relu", jax.nn.gelu)
    make, shape = CASES[name]
    model = make()
    x = jax.random.normal(jax.random.key(1), (2, *shape))
    y = jnp.array([1, 3])
    variables = random_variables(model, x)
    (loss, grads), calls = run(model, variables, x, y, native_on=True)
    # The reference is XLA's step in float64 (native kernels off): the true gradients up to float64 rounding.
    with jax.enable_x64(True):
        wide = lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a  # noqa: E731
        (ref_loss, ref_grads), ref_calls = run(model, jax.tree.map(wide, variables), wide(x), y, native_on=False)
        ref_loss, ref_grads = np.asarray(ref_loss), jax.tree.map(np.asarray, ref_grads)
    assert ref_loss.dtype == np.float64 and all(g.dtype == np.float64 for g in jax.tree.leaves(ref_grads))
    assert calls["conv"] > 0 and not any(ref_calls.values())
    has_bn = "batch_stats" in variables
    # every BatchNorm of a family reduces natively (its gradient sums are BatchNorm's alone: a convolution's
    # bias gradient takes the statistics kernel only)
    assert (calls["bn_grad_stats"] > 0) == has_bn, calls
    if name in POOLING:
        assert calls["max_pool"] + calls["avg_pool"] > 0, calls
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    # Relative to the largest gradient entry of the whole model: the bias of a
    # convolution that BatchNorm follows has a gradient of rounding noise only.
    scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(ref_grads))
    errors = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a, np.float64) - b))) / scale, grads, ref_grads)
    worst = max(jax.tree.leaves(errors))
    assert worst < 3e-5, jax.tree_util.tree_flatten_with_path(errors)


@pytest.mark.parametrize("name, shape", [("googlenet", (224, 224, 3)), ("resnet50", (224, 224, 3))])
def test_large_models_trace_with_the_native_path(name, shape):
    model = jaxcnn.create_model(name)
    x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
    variables = jax.eval_shape(lambda k, x: model.init(k, x, train=False), jax.random.key(0), x)
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}
    y = jax.ShapeDtypeStruct((2,), jnp.int32)
    jaxpr = jax.make_jaxpr(train_step(model))(params, rest, x, y, jax.random.key(2))
    loss, *grads = jaxpr.out_avals
    assert loss.shape == () and [g.shape for g in grads] == [p.shape for p in jax.tree.leaves(params)]
    assert "jaxcnn_conv_bwd_weights" in str(jaxpr)


_CACHED_STEP = r"""
import sys
import jaxcnn.runtime
jaxcnn.runtime.configure()
import jax, jax.numpy as jnp, numpy as np, optax
from jax import monitoring
import jaxcnn
events = []
monitoring.register_event_listener(lambda name, **kw: events.append(name))
model = jaxcnn.create_model("resnet20", num_classes=10)
x = jax.random.normal(jax.random.key(1), (4, 16, 16, 3))
y = jnp.arange(4) % 10
v = model.init(jax.random.key(0), x, train=False)
def loss(p):
    out, _ = model.apply({"params": p, "batch_stats": v["batch_stats"]}, x, train=True, mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
step = jax.jit(jax.value_and_grad(loss))
assert "jaxcnn_conv" in step.lower(v["params"]).as_text()  # the native kernels are in the program
value, grads = step(v["params"])
np.save(sys.argv[1], np.concatenate([np.ravel(np.asarray(g)) for g in jax.tree.leaves(grads)] + [np.ravel(value)]))
print("cache", sum(e.endswith("cache_hits") for e in events), sum(e.endswith("cache_misses") for e in events))
"""


def test_a_persistent_compilation_cache_gives_the_native_step_back_bit_for_bit(tmp_path):
    """docs/experiments.md advises JAX_COMPILATION_CACHE_DIR for long queues: a program with jaxcnn's native
    custom calls, loaded from the cache by a fresh process, computes what the uncached compile computes."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}

    def step(out, cache):
        # every program is cached, however fast it compiled (JAX's default skips those under 1 s)
        e = env if cache is None else {**env, "JAX_COMPILATION_CACHE_DIR": str(cache),
                                       "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
        done = subprocess.run([sys.executable, "-c", _CACHED_STEP, str(out)], env=e, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        hits, misses = (int(n) for n in done.stdout.split("cache")[-1].split())
        return hits, misses, np.load(out)

    cache = tmp_path / "xla"
    _, _, plain = step(tmp_path / "plain.npy", None)
    _, misses_first, first = step(tmp_path / "first.npy", cache)
    hits_warm, misses_warm, warm = step(tmp_path / "warm.npy", cache)
    assert misses_first > 0 and hits_warm > 0 and misses_warm == 0  # the third process compiled nothing
    np.testing.assert_array_equal(first, plain)
    np.testing.assert_array_equal(warm, plain)
