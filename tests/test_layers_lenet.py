"""The LeNet-5 layers (LeCun, Bottou, Bengio and Haffner 1998, section II.B)
and the pooling layers, checked against values worked by hand and the paper's
Table I."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal

import jaxcnn
from jaxcnn import ops
from jaxcnn.layers import (
    LENET_C3_TABLE,
    AvgPool,
    EuclideanRBF,
    MaxPool,
    PartialConv,
    ScaledTanh,
    Subsampling,
    rbf_prototypes,
    scaled_tanh,
)

KEY = jax.random.key(0, impl="rbg")


def _normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)

# Table I of the paper, transcribed: row = S2 map 0..5, column = C3 map 0..15.
TABLE_I = """
X . . . X X X . . X X X X . X X
X X . . . X X X . . X X X X . X
X X X . . . X X X . . X . X X X
. X X X . . X X X X . . X . X X
. . X X X . . X X X X . X X . X
. . . X X X . . X X X X . X X X
"""


def test_c3_table_is_table_one():
    rows = [line.split() for line in TABLE_I.strip().splitlines()]
    from_paper = [tuple(i for i in range(6) if rows[i][j] == "X") for j in range(16)]
    assert [tuple(sorted(t)) for t in LENET_C3_TABLE] == from_paper
    # Maps 0-5 see 3 consecutive maps, 6-11 four consecutive, 12-14 four non-consecutive, 15 all six.
    assert [len(t) for t in LENET_C3_TABLE] == [3] * 6 + [4] * 9 + [6]


def test_scaled_tanh():
    x = jnp.array([-3.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(scaled_tanh(x), 1.7159 * np.tanh(2.0 * np.asarray(x) / 3.0), rtol=1e-6)
    # Chosen so that f(1) = 1 and f(-1) = -1 (appendix A), to 4 decimals.
    np.testing.assert_allclose(scaled_tanh(jnp.array([1.0, -1.0])), [1.0, -1.0], atol=2e-4)
    np.testing.assert_allclose(ScaledTanh().apply({}, x), scaled_tanh(x))


def test_subsampling_sums_windows_times_coefficient_plus_bias():
    layer = Subsampling()
    x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
    variables = layer.init(KEY, x)
    assert jaxcnn.count_params(variables) == 2 * 3  # one coefficient and one bias per map
    coef = jnp.array([2.0, -1.0, 0.5])
    bias = jnp.array([1.0, 0.0, -3.0])
    y = layer.apply({"params": {"coefficient": coef, "bias": bias}}, x)
    assert y.shape == (2, 2, 2, 3)
    xn = np.asarray(x)
    for i in range(2):
        for j in range(2):
            window_sum = xn[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2, :].sum(axis=(1, 2))
            np.testing.assert_allclose(y[:, i, j, :], window_sum * np.asarray(coef) + np.asarray(bias), rtol=1e-6)


def test_c3_has_1516_parameters():
    # Table I: 6 maps x (3*25 + 1) + 9 maps x (4*25 + 1) + 1 map x (6*25 + 1) = 456 + 909 + 151 = 1,516.
    variables = PartialConv().init(KEY, jnp.zeros((1, 14, 14, 6)))
    assert jaxcnn.count_params(variables) == 6 * (3 * 25 + 1) + 9 * (4 * 25 + 1) + (6 * 25 + 1) == 1516


# C3's stored kernels, runs of equal fan-in: maps 0-5 in kernel_0, 6-14 in kernel_1, 15 in kernel_2.
C3_KERNEL_OF_MAP = [("kernel_0", j) for j in range(6)] + [("kernel_1", j) for j in range(9)] + [("kernel_2", 0)]


def _c3_map_reference(x, params, out_map, mode):
    """Output map out_map of C3 worked one input map at a time with scipy (x: (H, W, 6) numpy)."""
    name, col = C3_KERNEL_OF_MAP[out_map]
    return float(params["bias"][out_map]) + sum(
        mode(x[:, :, c], np.asarray(params[name])[:, :, k, col], mode="valid")
        for k, c in enumerate(LENET_C3_TABLE[out_map]))


@pytest.mark.parametrize("conv_mode", ["cross_correlation", "convolution"])
def test_c3_values_match_a_per_map_reference(conv_mode):
    layer = PartialConv(conv_mode=conv_mode)
    x = _normal(1, (1, 9, 9, 6))
    variables = layer.init(KEY, x)
    variables = jax.tree_util.tree_map(lambda a: a + 0.1, variables)  # nonzero biases
    y = np.asarray(layer.apply(variables, x))
    assert y.shape == (1, 5, 5, 16)
    mode = signal.correlate2d if conv_mode == "cross_correlation" else signal.convolve2d
    for out_map in range(16):
        expected = _c3_map_reference(np.asarray(x)[0], variables["params"], out_map, mode)
        np.testing.assert_allclose(y[0, :, :, out_map], expected, rtol=1e-4, atol=1e-4)


def test_c3_keeps_wider_params_wide():
    # Params given in float64 (a float64 reference step) are scattered into a float64 dense kernel: the output is
    # float64 and matches float64 arithmetic, not float32 rounding of the kernels (and no lossy-scatter warning).
    layer = PartialConv()
    with jax.enable_x64(True):
        x = np.asarray(_normal(3, (1, 9, 9, 6)), np.float64)
        variables = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64) + 1e-9,
                                           layer.init(KEY, jnp.zeros((1, 9, 9, 6), jnp.float32)))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = layer.apply(variables, x)
        assert y.dtype == jnp.float64
        # the 1e-9 added to every weight survives only in float64 (float32's spacing near these weights is about 1e-8)
        expected = _c3_map_reference(x[0], variables["params"], 0, signal.correlate2d)
        np.testing.assert_allclose(np.asarray(y[0, :, :, 0]), expected, rtol=1e-12, atol=1e-12)


def test_c3_maps_ignore_unconnected_inputs():
    layer = PartialConv()
    x = jnp.ones((1, 5, 5, 6))
    variables = layer.init(KEY, x)
    for out_map, inputs in enumerate(LENET_C3_TABLE):
        grad = jax.grad(lambda x: layer.apply(variables, x)[0, 0, 0, out_map])(x)
        touched = {c for c in range(6) if float(jnp.abs(grad[..., c]).sum()) > 0}
        assert touched == set(inputs)


def test_rbf_prototypes_are_fixed_constants_outside_params():
    layer = EuclideanRBF(10)
    x = _normal(2, (3, 84))
    v1 = layer.init(KEY, x)
    v2 = layer.init(jax.random.key(7, impl="rbg"), x)
    assert "params" not in v1 or jaxcnn.count_params(v1) == 0
    proto = np.asarray(v1["constants"]["prototypes"])
    assert proto.shape == (84, 10)
    assert set(np.unique(proto)) == {-1.0, 1.0}
    np.testing.assert_array_equal(proto, np.asarray(v2["constants"]["prototypes"]))  # key-independent
    np.testing.assert_array_equal(proto, rbf_prototypes(10, 84))
    # Distinct codes, every pair far apart.
    dist = [(proto[:, i] != proto[:, j]).sum() for i in range(10) for j in range(i + 1, 10)]
    assert min(dist) >= 30


def test_rbf_output_is_squared_euclidean_distance():
    layer = EuclideanRBF(10)
    x = _normal(3, (2, 84))
    variables = layer.init(KEY, x)
    proto = np.asarray(variables["constants"]["prototypes"])
    y = np.asarray(layer.apply(variables, x))
    xn = np.asarray(x)
    expected = np.array([[np.sum((xn[n] - proto[:, i]) ** 2) for i in range(10)] for n in range(2)])
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    # A state equal to a prototype has zero penalty for that class.
    y0 = layer.apply(variables, jnp.asarray(proto[:, 4][None]))
    assert float(y0[0, 4]) == 0.0 and int(jnp.argmin(y0[0])) == 4


@pytest.mark.parametrize("window, strides", [(2, None), (3, 2)])
def test_pool_layers_match_ops(window, strides):
    x = _normal(4, (2, 7, 7, 3))
    np.testing.assert_array_equal(MaxPool(window, strides).apply({}, x), ops.max_pool(x, window, strides))
    np.testing.assert_array_equal(AvgPool(window, strides).apply({}, x), ops.avg_pool(x, window, strides))


def test_pooling_lrn_and_subsampling_differentiate_under_jit():
    # reduce_window must stay in its differentiable form inside jit.
    from jaxcnn.layers import LRN
    x = _normal(5, (1, 4, 4, 6))
    for layer in (MaxPool(2), AvgPool(3, 1, padding=1, count_include_pad=False), LRN(), Subsampling()):
        variables = layer.init(KEY, x)
        grad = jax.jit(jax.grad(lambda x: jnp.sum(layer.apply(variables, x) ** 2)))(x)
        assert grad.shape == x.shape and bool(jnp.all(jnp.isfinite(grad)))
