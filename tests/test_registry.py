"""Every registered model, whatever its family: built through the registry,
shapes checked under jax.eval_shape (no weights allocated for the big ones),
and the small ones run forward and backward.

Written over `list_models()` so that a new family needs no edit here: a
classifier's output is checked as (N, num_classes), any other output (dense
maps, detections) by its batch axis.
"""

import dataclasses

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn
from jaxcnn.models import create_model, default_input_shape, list_models, module_fields

ALL = list_models()
BATCH = 2
# Forward and backward for real only when cheap: under ~3M parameters and
# images no larger than 64x64.
SMALL_PARAMS = 3_000_000
SMALL_SIZE = 64
# Deeper nets repeat the same blocks as their shallow siblings (resnet110 is
# resnet20's block 54 times) but cost minutes of XLA compile on a 2-core CPU:
# past this many convolutions their backward pass is traced under eval_shape
# (shapes of every gradient) instead of compiled and run.
MAX_RUN_CONVS = 32


def _key(seed):
    # The 'rbg' generator compiles in a fraction of threefry's time on CPU;
    # initialisation is otherwise the slowest part of these tests.
    return jax.random.key(seed, impl="rbg")


def _x(name, batch=BATCH):
    return jax.ShapeDtypeStruct((batch, *default_input_shape(name)), jnp.float32)


def _init_shapes(model, x, train=False):
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    return jax.eval_shape(lambda x: model.init(rngs, x, train=train), x)


def _leading_dims(out):
    return [leaf.shape[0] for leaf in jax.tree_util.tree_leaves(out)]


def _shapes(tree):
    return jax.tree_util.tree_map(lambda a: (tuple(a.shape), jnp.dtype(a.dtype)), tree)


_SIZE_CACHE = {}


def _n_params(name):
    if name not in _SIZE_CACHE:
        _SIZE_CACHE[name] = jaxcnn.count_params(_init_shapes(create_model(name), _x(name)))
    return _SIZE_CACHE[name]


def _n_convs(name):
    return sum(1 for row in jaxcnn.summary(name).rows if row.layer_type == "Conv")


def _is_small(name):
    h, w, _ = default_input_shape(name)
    return h <= SMALL_SIZE and w <= SMALL_SIZE and _n_params(name) < SMALL_PARAMS


def test_registry_is_populated_and_sorted():
    assert ALL == sorted(ALL)
    for name in ("lenet5", "lenet5_modern", "alexnet", "alexnet_owt", "vgg11", "vgg16_bn", "minivgg",
                 "keras_cifar_cnn", "simple_convnet"):
        assert name in ALL


@pytest.mark.parametrize("name", ALL)
def test_fields_and_signature(name):
    spec = jaxcnn.models.get_spec(name)
    fields = module_fields(spec.module)
    for field in ("num_classes", "conv_mode", "dtype"):
        assert field in fields, f"{name} lacks the common field {field!r}"
    h, w, c = default_input_shape(name)
    assert min(h, w, c) >= 1
    import inspect
    params = inspect.signature(spec.module.__call__).parameters
    assert "train" in params and params["train"].default is False


@pytest.mark.parametrize("name", ALL)
def test_shapes_under_eval_shape(name):
    model = create_model(name)
    x = _x(name)
    variables = _init_shapes(model, x, train=False)
    assert jaxcnn.count_params(variables) > 0
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    dims = _leading_dims(out)
    assert dims and all(d == BATCH for d in dims), f"{name}: output batch dims {dims}"
    if hasattr(out, "ndim") and out.ndim == 2:
        chex.assert_shape(out, (BATCH, model.num_classes))

    # Parameters never depend on `train`.
    variables_train = _init_shapes(model, x, train=True)
    assert _shapes(variables_train["params"]) == _shapes(variables["params"])

    # conv_mode="convolution" is accepted, changes no shape, and reaches every
    # layer that has a conv_mode.
    conv = create_model(name, conv_mode="convolution")
    modes = []

    def record(next_fun, args, kwargs, context):
        if context.module is not conv and hasattr(context.module, "conv_mode"):
            modes.append((type(context.module).__name__, context.module.conv_mode))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        conv_variables = _init_shapes(conv, x)
    assert _shapes(conv_variables["params"]) == _shapes(variables["params"])
    assert modes, f"{name}: no layer with a conv_mode was called"
    assert all(mode == "convolution" for _, mode in modes), f"{name}: {sorted(set(modes))}"

    # The summary traces the same model and agrees with count_params.
    s = jaxcnn.summary(name)
    assert s.trainable_params == jaxcnn.count_params(variables)
    assert s.rows and s.total_macs > 0


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_and_jit_on_small_models(name):
    if not _is_small(name):
        pytest.skip(f"{name} is large: checked under eval_shape only")
    model = create_model(name)
    if _n_convs(name) > MAX_RUN_CONVS:
        _check_backward_shapes(model, name)
        return
    x = jnp.asarray(np.random.default_rng(2).normal(size=(BATCH, *default_input_shape(name))), jnp.float32)
    variables = jax.jit(model.init)(_key(0), x)
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}

    eager = model.apply(variables, x)
    jitted = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
    chex.assert_trees_all_close(eager, jitted, rtol=1e-4, atol=1e-4)
    chex.assert_tree_all_finite(eager)

    def loss(p):
        out, _ = model.apply({"params": p, **rest}, x, train=True, rngs={"dropout": _key(3)},
                             mutable=["batch_stats"])
        return sum(jnp.mean(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(out))

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert np.isfinite(float(value))
    chex.assert_trees_all_equal_shapes(grads, params)
    chex.assert_tree_all_finite(grads)
    assert sum(float(jnp.sum(jnp.abs(g))) for g in jax.tree_util.tree_leaves(grads)) > 0


def _check_backward_shapes(model, name):
    x = jax.ShapeDtypeStruct((BATCH, *default_input_shape(name)), jnp.float32)
    variables = _init_shapes(model, x)
    rest = {k: v for k, v in variables.items() if k != "params"}

    def loss(p, rest, x):
        out, _ = model.apply({"params": p, **rest}, x, train=True, rngs={"dropout": _key(3)},
                             mutable=["batch_stats"])
        return sum(jnp.mean(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(out))

    value, grads = jax.eval_shape(jax.value_and_grad(loss), variables["params"], rest, x)
    assert value.shape == ()
    chex.assert_trees_all_equal_shapes(grads, variables["params"])


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ValueError, match="Did you mean 'vgg16'"):
        create_model("vgg116")
    with pytest.raises(ValueError, match="unknown model"):
        default_input_shape("no_such_net")


def test_unknown_field_lists_the_fields():
    with pytest.raises(ValueError, match="num_classes") as info:
        create_model("lenet5", num_clases=3)
    assert "Did you mean 'num_classes'" in str(info.value)
    assert "conv_mode" in str(info.value)


def test_overrides_reach_the_module():
    model = create_model("keras_cifar_cnn", num_classes=7)
    assert model.num_classes == 7
    assert dataclasses.replace(model, num_classes=10) == create_model("keras_cifar_cnn")


def test_unknown_conv_mode_is_refused():
    with pytest.raises(ValueError, match="cross_correlation"):  # by create_model, before any module is built
        create_model("keras_cifar_cnn", conv_mode="flipped")
