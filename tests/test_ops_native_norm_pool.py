"""jaxcnn.ops.native's BatchNorm reductions and pooling kernels: the same values
and gradients as Flax's BatchNorm and lax.reduce_window, at odd shapes, under
jit, vmap, grad, pmap and a Mesh, on the CPU only, with their off switches."""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxcnn import ops
from jaxcnn.layers import BatchNorm
from jaxcnn.ops import native, pooling
from jaxcnn.ops.pooling import _window_args

pytestmark = pytest.mark.skipif(native.status() != "enabled", reason=f"native kernels {native.status()}")

# Odd shapes: N=1, C=1, H=W=1, channel counts that are not multiples of 8, and a dense (N, C) input.
BN_SHAPES = [(1, 2, 2, 1), (4, 1, 1, 3), (2, 3, 3, 1), (1, 5, 4, 3), (4, 7, 7, 13), (8, 8, 8, 64), (3, 1, 1, 130), (32, 10)]


def rand(shape, seed, scale=1.0, offset=0.0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32) * scale + offset)


def close(a, b, rtol):
    """Error relative to the largest entry of the reference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    err = np.abs(a - b).max() / max(np.abs(b).max(), 1e-6)
    assert err <= rtol, f"max error {err:.2e} of the largest entry (rtol {rtol:.0e})"


def calls(f, *args, prefix="jaxcnn_"):
    return jax.jit(lambda *a: f(*a)).lower(*args).as_text().count(f"custom_call @{prefix}")  # traced afresh


def with_switch(name, value):
    """Runs the wrapped function with the environment switch `name` set to `value` (read at trace time)."""
    def wrap(f):
        @functools.wraps(f)
        def run(*a, **k):
            old = os.environ.get(name)
            os.environ[name] = value
            try:
                return f(*a, **k)
            finally:
                os.environ.pop(name) if old is None else os.environ.__setitem__(name, old)
        return run
    return wrap


# ---------------------------------------------------------------- BatchNorm

def bn_step(module, params, stats, x, g):
    """Training-mode loss sum(y * g), its gradients, and the updated running statistics."""
    def loss(p, x):
        y, upd = module.apply({"params": p, "batch_stats": stats}, x, use_running_average=False,
                              mutable=["batch_stats"])
        return jnp.sum(y * g), (y, upd["batch_stats"])
    (_, (y, new_stats)), (dp, dx) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(params, x)
    return y, dx, dp, new_stats


def bn_inputs(shape, seed=0, offset=0.0):
    c = shape[-1]
    params = {"scale": rand((c,), seed + 1), "bias": rand((c,), seed + 2)}
    stats = {"mean": rand((c,), seed + 3, 0.1, offset), "var": jnp.ones((c,))}
    return params, stats, rand(shape, seed, 2.0, offset), rand(shape, seed + 4)


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_matches_flax_forward_and_both_gradients(shape):
    params, stats, x, g = bn_inputs(shape)
    ours = bn_step(BatchNorm(momentum=0.9), params, stats, x, g)
    flax = bn_step(nn.BatchNorm(momentum=0.9), params, stats, x, g)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(flax)):
        close(a, b, 2e-5)
    assert calls(lambda x: bn_step(BatchNorm(), params, stats, x, g)[1], x, prefix="jaxcnn_bn") == 2


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 1, 5)], ids=str)
def test_batch_norm_of_one_value_per_channel_has_no_input_gradient(shape):
    # M = 1: the output is the bias whatever x is, so dx = 0 (x - mean = 0, var = 0). Its terms are
    # of the size of scale / sqrt(epsilon) * g (about 300 here) and cancel to float32 rounding of that.
    params, stats, x, g = bn_inputs(shape)
    y, dx, dp, _ = bn_step(BatchNorm(), params, stats, x, g)
    np.testing.assert_allclose(y[0, 0, 0], params["bias"], atol=1e-6)
    size = float(jnp.max(jnp.abs(params["scale"] * g))) / np.sqrt(1e-5)
    np.testing.assert_allclose(dx, 0.0, atol=1e-6 * size)


def test_batch_norm_statistics_hold_their_precision_far_from_zero():
    # Channels with mean 1000 and spread 1: E[x^2] - E[x]^2 in float32 cancels (Flax's fast variance
    # loses digits); the native sums, shifted by the running mean, keep them. Reference in float64.
    shape = (64, 6, 6, 5)
    params, stats, x, g = bn_inputs(shape, offset=1000.0)
    _, _, _, new_stats = bn_step(BatchNorm(momentum=0.0), params, stats, x, g)
    x64 = np.asarray(x, np.float64).reshape(-1, shape[-1])
    np.testing.assert_allclose(new_stats["var"], x64.var(axis=0), rtol=1e-4)
    np.testing.assert_allclose(new_stats["mean"], x64.mean(axis=0), rtol=1e-6)


def test_batch_norm_eval_mode_and_variables_are_flaxs():
    params, stats, x, _ = bn_inputs((4, 5, 5, 3))
    v_ours = BatchNorm().init(jax.random.key(0), x, use_running_average=False)
    v_flax = nn.BatchNorm().init(jax.random.key(0), x, use_running_average=False)
    assert jax.tree.structure(v_ours) == jax.tree.structure(v_flax)
    assert jax.tree.map(jnp.shape, v_ours) == jax.tree.map(jnp.shape, v_flax)
    variables = {"params": params, "batch_stats": stats}
    close(BatchNorm().apply(variables, x, use_running_average=True),
          nn.BatchNorm().apply(variables, x, use_running_average=True), 1e-6)


def test_batch_norm_in_bfloat16_is_flaxs_computation():
    params, stats, x, g = bn_inputs((4, 5, 5, 3))
    xb = x.astype(jnp.bfloat16)
    ours = BatchNorm(dtype=jnp.bfloat16).apply({"params": params, "batch_stats": stats}, xb,
                                               use_running_average=False, mutable=["batch_stats"])
    flax = nn.BatchNorm(dtype=jnp.bfloat16).apply({"params": params, "batch_stats": stats}, xb,
                                                  use_running_average=False, mutable=["batch_stats"])
    assert ours[0].dtype == flax[0].dtype == jnp.bfloat16
    close(ours[0].astype(jnp.float32), flax[0].astype(jnp.float32), 1e-2)
    assert calls(lambda x: BatchNorm(dtype=jnp.bfloat16).apply({"params": params, "batch_stats": stats}, x,
                                                               use_running_average=False, mutable=["batch_stats"]),
                 xb, prefix="jaxcnn_bn") == 0


def test_batch_norm_under_vmap_matches_a_loop():
    scale, bias = rand((6,), 1), rand((6,), 2)
    xs = rand((3, 4, 5, 5, 6), 0)
    f = lambda x: ops.batch_norm(x, scale, bias)[0]  # noqa: E731
    g = jax.grad(lambda x: jnp.sum(jnp.sin(f(x))))
    vmapped_y, vmapped_dx = jax.vmap(f)(xs), jax.vmap(g)(xs)
    for i in range(3):
        close(vmapped_y[i], f(xs[i]), 1e-5)
        close(vmapped_dx[i], g(xs[i]), 1e-5)


def sync_reference(x, g, scale, bias):
    """The whole batch on one device with Flax's computation: what synchronised BatchNorm must give."""
    def loss(x, scale, bias):
        y, mean, var = ops.normalization._batch_norm_xla(x, scale, bias, None, epsilon=1e-5, axis_name=None,
                                                         axis_index_groups=None, dtype=jnp.float32)
        return jnp.sum(y * g), (mean, var)
    return jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(x, scale, bias)


def test_synchronised_batch_norm_under_pmap_is_the_whole_batchs():
    n = jax.device_count()
    x, g = rand((2 * n, 4, 4, 5), 0), rand((2 * n, 4, 4, 5), 1)
    scale, bias = rand((5,), 2), rand((5,), 3)
    (dx, dscale, dbias), (mean, var) = sync_reference(x, g, scale, bias)

    def per_device(x, g):
        def loss(x, scale, bias):
            y, m, v = ops.batch_norm(x, scale, bias, axis_name="d")
            return jnp.sum(y * g), (m, v)
        grads, stats = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(x, scale, bias)
        return grads, stats, lax.psum(grads[1:], "d")

    split = lambda a: a.reshape(n, 2, *a.shape[1:])  # noqa: E731
    (pdx, _, _), (pmean, pvar), (pscale, pbias) = jax.pmap(per_device, axis_name="d")(split(x), split(g))
    close(pdx.reshape(x.shape), dx, 1e-5)
    close(pmean[0], mean, 1e-5)
    close(pvar[3], var, 1e-5)
    close(pscale[0], dscale, 1e-5)  # each device's share of the parameter gradients adds up to the whole's
    close(pbias[0], dbias, 1e-5)


def test_batch_norm_over_a_mesh_reduces_each_devices_slice():
    n = jax.device_count()
    x, g = rand((2 * n, 4, 4, 5), 0), rand((2 * n, 4, 4, 5), 1)
    scale, bias = rand((5,), 2), rand((5,), 3)
    (dx, dscale, dbias), _ = sync_reference(x, g, scale, bias)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    xs, gs = (jax.device_put(a, NamedSharding(mesh, P("data"))) for a in (x, g))
    f = jax.jit(jax.grad(lambda x, scale, bias, g: jnp.sum(ops.batch_norm(x, scale, bias)[0] * g), argnums=(0, 1, 2)))
    got = f(xs, scale, bias, gs)
    for a, b in zip(got, (dx, dscale, dbias)):
        close(a, b, 1e-5)
    compiled = f.lower(xs, scale, bias, gs).compile().as_text()
    assert compiled.count('custom_call_target="jaxcnn_bn') == 2
    assert "all-gather" not in compiled
    assert "f32[2,4,4,5]" in compiled  # each device reduces its own 2 images


def test_batch_norm_switch_and_other_platforms():
    x, scale, bias = rand((2, 4, 4, 3), 0), jnp.ones((3,)), jnp.zeros((3,))
    f = lambda x: ops.batch_norm(x, scale, bias)[0]  # noqa: E731
    assert calls(f, x, prefix="jaxcnn_bn") == 1
    assert with_switch("JAXCNN_NATIVE_BN", "0")(calls)(f, x, prefix="jaxcnn_bn") == 0
    with pytest.raises(ValueError, match="JAXCNN_NATIVE_BN='yes'"):
        with_switch("JAXCNN_NATIVE_BN", "yes")(calls)(f, x)
    for platform in ("cuda", "tpu"):
        text = jax.export.export(jax.jit(jax.grad(lambda x: jnp.sum(f(x) ** 2))), platforms=[platform])(x).mlir_module()
        assert "jaxcnn_" not in text


# ---------------------------------------------------------------- pooling

# (shape, window, stride, padding): overlapping and not, padded, strides other than the window,
# a single pixel, and channel counts that are not multiples of 8.
POOLS = [((2, 9, 9, 5), 3, 2, "VALID"), ((1, 8, 8, 1), 3, 1, "SAME"), ((3, 7, 6, 9), (3, 2), (2, 1), 1),
         ((2, 4, 4, 3), 2, None, "VALID"), ((1, 1, 1, 1), 1, 1, "VALID"), ((2, 5, 5, 4), 3, 2, ((2, 0), (0, 3))),
         ((2, 13, 13, 17), 3, 2, "SAME"), ((2, 6, 6, 33), 2, 2, "VALID")]


def native_max_route(shape, window, stride, padding) -> bool:
    """Whether ops.max_pool runs the native kernel: all but unpadded non-overlapping windows over fewer than
    NATIVE_MAX_TILES_MIN_CHANNELS maps (the reshape/argmax route)."""
    dims, strides, pads = _window_args(jnp.zeros(shape), window, stride, padding, "max_pool")
    tiles = dims == strides and all(p == (0, 0) for p in pads)
    return not (tiles and shape[-1] < pooling.NATIVE_MAX_TILES_MIN_CHANNELS)


def reduce_window_max(x, window, stride, padding):
    dims, strides, pads = _window_args(x, window, stride, padding, "max_pool")
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, dims, strides, pads)


def xla_pool(op):
    """ops.max_pool / avg_pool with the native pooling off (reduce_window; tiles for max pools)."""
    return with_switch("JAXCNN_NATIVE_POOL", "0")(op)


def ties(shape, seed):
    """Small integers: most windows hold their maximum more than once."""
    return jnp.asarray(np.random.default_rng(seed).integers(-2, 3, shape).astype(np.float32))


@pytest.mark.parametrize("shape, window, stride, padding", POOLS, ids=str)
def test_max_pool_matches_reduce_window_ties_included(shape, window, stride, padding):
    x = ties(shape, 0)
    ref = reduce_window_max(x, window, stride, padding)
    g = rand(ref.shape, 1)
    pool = lambda x: ops.max_pool(x, window, stride, padding)  # noqa: E731
    np.testing.assert_array_equal(jax.jit(pool)(x), ref)
    # The gradient goes to each window's first maximum in row-major order, as reduce_window's does.
    got = jax.grad(lambda x: jnp.sum(pool(x) * g))(x)
    want = jax.grad(lambda x: jnp.sum(reduce_window_max(x, window, stride, padding) * g))(x)
    np.testing.assert_allclose(got, want, atol=1e-6)
    native_calls = 2 if native_max_route(shape, window, stride, padding) else 0
    assert calls(jax.grad(lambda x: jnp.sum(pool(x) * g)), x, prefix="jaxcnn_max_pool") == native_calls
    # Forward mode, where no value is tied (reduce_window's own forward-mode rule breaks ties in no fixed order).
    xc, t = rand(shape, 2), rand(shape, 3)
    np.testing.assert_allclose(jax.jvp(pool, (xc,), (t,))[1],
                               jax.jvp(lambda x: reduce_window_max(x, window, stride, padding), (xc,), (t,))[1],
                               atol=1e-6)


@pytest.mark.parametrize("shape, window, stride, padding", POOLS, ids=str)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_reduce_window(shape, window, stride, padding, count_include_pad):
    x = rand(shape, 0)
    pool = lambda x: ops.avg_pool(x, window, stride, padding, count_include_pad)  # noqa: E731
    ref = xla_pool(pool)(x)
    g = rand(ref.shape, 1)
    close(jax.jit(pool)(x), ref, 1e-6)
    close(jax.grad(lambda x: jnp.sum(pool(x) * g))(x), xla_pool(jax.grad(lambda x: jnp.sum(pool(x) * g)))(x), 1e-6)


def test_pools_route_as_the_measured_thresholds_say():
    # The routing only (which route is faster was measured by python -m benchmarks.pooling; the figures are at
    # jaxcnn.ops.pooling.NATIVE_MAX_TILES_MIN_CHANNELS): non-overlapping 2x2/2 max, the reshape/argmax route
    # below 32 maps, the native kernel from 32 on; average, reduce_window unless the windows overlap
    small, wide = rand((2, 8, 8, 6), 0), rand((2, 8, 8, 32), 1)
    assert calls(lambda x: ops.max_pool(x, 2, 2), small, prefix="jaxcnn_") == 0
    assert calls(lambda x: ops.max_pool(x, 2, 2), wide, prefix="jaxcnn_") == 1
    assert calls(lambda x: ops.max_pool(x, 3, 2), small, prefix="jaxcnn_") == 1  # overlapping: no tiles
    assert calls(lambda x: ops.max_pool(x, 2, 2, "SAME"), rand((2, 7, 7, 6), 2), prefix="jaxcnn_") == 1  # padded
    for x in (small, wide):
        assert calls(lambda x: ops.avg_pool(x, 2, 2), x, prefix="jaxcnn_") == 0
        assert calls(lambda x: ops.avg_pool(x, 3, 2), x, prefix="jaxcnn_") == 1
        assert calls(lambda x: ops.avg_pool(x, (1, 2), (1, 1)), x, prefix="jaxcnn_") == 1  # overlapping along W


@pytest.mark.parametrize("shape", [(2, 8, 8, 6), (3, 6, 10, 1), (1, 4, 4, 17)], ids=str)
def test_native_kernels_on_the_windows_routed_elsewhere(shape):
    # The kernels stay correct where ops routes around them (non-overlapping windows, few maps).
    native._load()
    window = pooling._native_window((1, 2, 2, 1), (1, 2, 2, 1), ((0, 0),) * 4)
    x, xa = ties(shape, 0), rand(shape, 1)
    ref = reduce_window_max(x, 2, 2, "VALID")
    g = rand(ref.shape, 2)
    np.testing.assert_array_equal(jax.jit(lambda v: pooling.native_pool().max_pool(v, window))(x), ref)
    got = jax.grad(lambda v: jnp.sum(pooling.native_pool().max_pool(v, window) * g))(x)
    want = jax.grad(lambda v: jnp.sum(reduce_window_max(v, 2, 2, "VALID") * g))(x)
    np.testing.assert_allclose(got, want, atol=1e-6)
    avg = lambda v: pooling.native_pool().avg_pool(v, window)  # noqa: E731
    close(avg(xa), ops.avg_pool(xa, 2, 2), 1e-6)
    close(jax.grad(lambda v: jnp.sum(avg(v) * g))(xa), jax.grad(lambda v: jnp.sum(ops.avg_pool(v, 2, 2) * g))(xa),
          1e-6)


def test_nan_is_the_maximum_and_takes_the_gradient():
    x = jnp.array([[1.0, np.nan], [np.nan, 5.0]]).reshape(1, 2, 2, 1)
    y, vjp = jax.vjp(lambda x: ops.max_pool(x, 2, 2), x)
    assert np.isnan(y).all()
    np.testing.assert_array_equal(vjp(jnp.ones_like(y))[0].ravel(), [0, 1, 0, 0])  # the first NaN


def test_pooling_grad_of_grad_vmap_pmap_and_mesh():
    n = jax.device_count()
    x, g = rand((2 * n, 9, 9, 3), 0), rand((2 * n, 4, 4, 3), 1)
    pool = lambda x: ops.max_pool(x, 3, 2) + ops.avg_pool(x, 3, 2)  # noqa: E731
    ref_pool = xla_pool(pool)
    loss = lambda x: jnp.sum(jnp.sin(pool(x)) * g)  # noqa: E731
    want = xla_pool(jax.grad(loss))(x)
    close(jax.grad(loss)(x), want, 1e-5)
    # Second order: the Hessian-vector product through both pools.
    hvp = lambda f, x: jax.jvp(jax.grad(f), (x,), (jnp.cos(x),))[1]  # noqa: E731
    xc = rand(x.shape, 5)
    close(hvp(loss, xc), xla_pool(lambda x: hvp(loss, x))(xc), 1e-5)
    close(jax.vmap(pool)(x.reshape(2, n, 9, 9, 3)).reshape(2 * n, 4, 4, 3), ref_pool(x), 1e-6)
    per_device = jax.pmap(jax.grad(loss_on := (lambda x, g: jnp.sum(jnp.sin(pool(x)) * g))))(
        x.reshape(n, 2, 9, 9, 3), g.reshape(n, 2, 4, 4, 3))
    close(per_device.reshape(x.shape), want, 1e-5)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    xs, gs = (jax.device_put(a, NamedSharding(mesh, P("data"))) for a in (x, g))
    f = jax.jit(jax.grad(loss_on))
    close(f(xs, gs), want, 1e-5)
    compiled = f.lower(xs, gs).compile().as_text()
    assert "all-gather" not in compiled and "f32[2,9,9,3]" in compiled


def test_pooling_switch_dtypes_and_other_platforms():
    x = rand((2, 9, 9, 3), 0)
    f = lambda x: ops.max_pool(x, 3, 2) + ops.avg_pool(x, 3, 2)  # noqa: E731
    assert calls(f, x, prefix="jaxcnn_") == 2
    assert with_switch("JAXCNN_NATIVE_POOL", "0")(calls)(f, x, prefix="jaxcnn_") == 0
    assert calls(f, x.astype(jnp.bfloat16), prefix="jaxcnn_") == 0  # bfloat16 keeps reduce_window
    for platform in ("cuda", "tpu"):
        text = jax.export.export(jax.jit(jax.grad(lambda x: jnp.sum(f(x)))), platforms=[platform])(x).mlir_module()
        assert "jaxcnn_" not in text and "reduce_window" in text
