"""jaxcnn.ops.linear's dense product, whose input gradient dy w^T is oneDNN's
on the CPU: the same values and derivatives (both gradients, second order,
forward mode) as lax.dot_general, at odd shapes, under jit, vmap, grad, pmap
and a Mesh, on the CPU only, with its off switch; jaxcnn.layers.Dense, the
Flax layer on top, with Flax's variables; and add_bias, whose bias gradient is
BatchNorm's native sum, against y + b the same ways."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxcnn.layers import Dense
from jaxcnn.ops import linear, native
from test_ops_native_norm_pool import calls, close, rand, with_switch

pytestmark = pytest.mark.skipif(native.status("dense") != "enabled", reason=f"native kernels {native.status('dense')}")

# (x shape, kernel shape): N=1, K=1, M=1, sizes that are not multiples of 8, leading axes, a wide layer.
SHAPES = [((1, 1), (1, 1)), ((1, 7), (7, 3)), ((5, 1), (1, 9)), ((3, 13), (13, 1)), ((2, 3, 17), (17, 10)),
          ((32, 300), (300, 130)), ((4, 2048), (2048, 64))]


def reference(x, w):
    return jax.lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())))


def loss(dense):
    return lambda x, w, g: jnp.sum(jnp.sin(dense(x, w)) * g)


@pytest.mark.parametrize("xs, ws", SHAPES, ids=str)
def test_dense_matches_dot_general_forward_and_both_gradients(xs, ws):
    x, w = rand(xs, 0), rand(ws, 1)
    g = rand(xs[:-1] + ws[1:], 2)
    close(jax.jit(linear.dense)(x, w), reference(x, w), 1e-6)
    ours = jax.jit(jax.grad(loss(linear.dense), argnums=(0, 1)))(x, w, g)
    theirs = jax.jit(jax.grad(loss(reference), argnums=(0, 1)))(x, w, g)
    for a, b in zip(ours, theirs):
        close(a, b, 1e-5)
    # the input gradient is the custom call; the forward product and the kernel gradient are XLA's dots
    assert calls(jax.grad(loss(linear.dense)), x, w, g, prefix="jaxcnn_dense_input_grad") == 1


def test_second_order_and_forward_mode_match():
    x, w, g = rand((3, 5), 0), rand((5, 4), 1), rand((3, 4), 2)
    for argnums in (0, 1):
        close(jax.hessian(loss(linear.dense), argnums)(x, w, g), jax.hessian(loss(reference), argnums)(x, w, g), 1e-5)
    tangents = (rand((3, 5), 3), rand((5, 4), 4))
    ours = jax.jvp(lambda x, w: linear.dense(x, w), (x, w), tangents)
    theirs = jax.jvp(reference, (x, w), tangents)
    for a, b in zip(ours, theirs):
        close(a, b, 1e-6)
    # the gradient's own gradient keeps the native input gradient (reverse of reverse)
    hvp = jax.jit(jax.grad(lambda x: jnp.sum(jax.grad(loss(linear.dense))(x, w, g) ** 2)))
    close(hvp(x), jax.grad(lambda x: jnp.sum(jax.grad(loss(reference))(x, w, g) ** 2))(x), 1e-5)


def test_vmap_over_inputs_and_over_kernels_match_a_loop():
    xb, w, g = rand((3, 4, 6), 0), rand((6, 5), 1), rand((4, 5), 2)
    grad_x = jax.grad(loss(linear.dense))
    got = jax.jit(jax.vmap(grad_x, (0, None, None)))(xb, w, g)
    for i in range(3):
        close(got[i], jax.grad(loss(reference))(xb[i], w, g), 1e-5)
    wb = rand((3, 6, 5), 3)
    got = jax.vmap(grad_x, (None, 0, None))(xb[0], wb, g)  # a batched kernel runs XLA's products, vmapped
    for i in range(3):
        close(got[i], jax.grad(loss(reference))(xb[0], wb[i], g), 1e-5)


def test_pmap_and_mesh_match_the_whole_batch():
    n = jax.device_count()
    x, w, g = rand((2 * n, 9), 0), rand((9, 7), 1), rand((2 * n, 7), 2)
    dx, dw = jax.grad(loss(reference), argnums=(0, 1))(x, w, g)
    split = lambda a: a.reshape(n, 2, *a.shape[1:])  # noqa: E731
    pdx, pdw = jax.pmap(jax.grad(loss(linear.dense), argnums=(0, 1)), in_axes=(0, None, 0))(split(x), w, split(g))
    close(pdx.reshape(dx.shape), dx, 1e-5)
    close(pdw.sum(0), dw, 1e-5)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    xs, gs = (jax.device_put(a, NamedSharding(mesh, P("data"))) for a in (x, g))
    f = jax.jit(jax.grad(loss(linear.dense), argnums=(0, 1)))
    got = f(xs, w, gs)
    close(got[0], dx, 1e-5)
    close(got[1], dw, 1e-5)
    compiled = f.lower(xs, w, gs).compile().as_text()
    assert compiled.count('custom_call_target="jaxcnn_dense_input_grad"') == 1
    assert "all-gather" not in compiled
    assert "f32[2,7]" in compiled  # each device multiplies its own 2 rows


def test_switch_dtypes_and_other_platforms():
    x, w, g = rand((4, 6), 0), rand((6, 3), 1), rand((4, 3), 2)
    f = jax.grad(loss(linear.dense))
    assert calls(f, x, w, g, prefix="jaxcnn_dense") == 1
    assert with_switch("JAXCNN_NATIVE_DENSE", "0")(calls)(f, x, w, g, prefix="jaxcnn_dense") == 0
    with pytest.raises(ValueError, match="JAXCNN_NATIVE_DENSE='yes'"):
        with_switch("JAXCNN_NATIVE_DENSE", "yes")(calls)(f, x, w, g)
    # bfloat16 stays XLA's (oneDNN's bfloat16 product is not what this kernel computes)
    xb, wb, gb = (a.astype(jnp.bfloat16) for a in (x, w, g))
    assert calls(f, xb, wb, gb, prefix="jaxcnn_dense") == 0
    for platform in ("cuda", "tpu"):
        text = jax.export.export(jax.jit(f), platforms=[platform])(x, w, g).mlir_module()
        assert "jaxcnn_" not in text
    with pytest.raises(ValueError, match="same K"):
        linear.dense(x, rand((5, 3), 3))


def test_dot_general_passes_other_contractions_to_lax():
    a, b = rand((2, 3, 4), 0), rand((2, 4, 5), 1)
    batched = (((2,), (1,)), ((0,), (0,)))
    np.testing.assert_array_equal(linear.dot_general(a, b, batched), jax.lax.dot_general(a, b, batched))
    f = lambda a, b: linear.dot_general(a, b, batched)  # noqa: E731
    assert calls(jax.grad(lambda a: jnp.sum(f(a, b))), a, prefix="jaxcnn_dense") == 0


def test_dense_layer_has_flaxs_variables_and_values_and_the_native_gradient():
    x = rand((6, 11), 0)
    ours, theirs = Dense(5), nn.Dense(5)
    v = ours.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, theirs.init(jax.random.key(0), x))
    np.testing.assert_array_equal(v["params"]["kernel"], theirs.init(jax.random.key(0), x)["params"]["kernel"])
    close(ours.apply(v, x), theirs.apply(v, x), 1e-6)
    gx = lambda m: jax.grad(lambda x: jnp.sum(jnp.tanh(m.apply(v, x))))(x)  # noqa: E731
    close(gx(ours), gx(theirs), 1e-5)
    assert isinstance(ours, nn.Dense)
    assert calls(lambda x: jax.grad(lambda x: jnp.sum(ours.apply(v, x)))(x), x, prefix="jaxcnn_dense") == 1


# ---------------------------------------------------------------- add_bias

BIAS_SHAPES = [(1, 1, 1, 1), (4, 5, 5, 7), (2, 3, 3, 130), (32, 10), (7,), (3, 1, 1, 13)]


def bias_loss(add):
    return lambda y, b, g: jnp.sum(jnp.sin(add(y, b)) * g)


@pytest.mark.parametrize("shape", BIAS_SHAPES, ids=str)
def test_add_bias_matches_the_sum_forward_and_both_gradients(shape):
    y, b, g = rand(shape, 0, 2.0, 1.0), rand(shape[-1:], 1), rand(shape, 2)
    close(jax.jit(linear.add_bias)(y, b), y + b, 1e-6)
    ours = jax.jit(jax.grad(bias_loss(linear.add_bias), argnums=(0, 1)))(y, b, g)
    theirs = jax.jit(jax.grad(bias_loss(jnp.add), argnums=(0, 1)))(y, b, g)
    for a, c in zip(ours, theirs):
        close(a, c, 1e-5)
    assert calls(jax.grad(bias_loss(linear.add_bias), argnums=1), y, b, g, prefix="jaxcnn_bn_stats") == 1


def test_add_bias_second_order_forward_mode_and_vmap():
    y, b, g = rand((3, 4, 4, 5), 0), rand((5,), 1), rand((3, 4, 4, 5), 2)
    ours, theirs = bias_loss(linear.add_bias), bias_loss(jnp.add)
    close(jax.hessian(ours, 1)(y, b, g), jax.hessian(theirs, 1)(y, b, g), 1e-5)
    tangents = (rand(y.shape, 3), rand(b.shape, 4))
    for a, c in zip(jax.jvp(linear.add_bias, (y, b), tangents), jax.jvp(jnp.add, (y, b), tangents)):
        close(a, c, 1e-6)
    yb, bb = jnp.stack([y, 2 * y, y - 1]), jnp.stack([b, b + 1, 3 * b])
    for axes in ((0, None, None), (None, 0, None), (0, 0, None)):
        got = jax.jit(jax.vmap(jax.grad(ours, argnums=(0, 1)), axes))(yb if axes[0] == 0 else y,
                                                                       bb if axes[1] == 0 else b, g)
        want = jax.vmap(jax.grad(theirs, argnums=(0, 1)), axes)(yb if axes[0] == 0 else y, bb if axes[1] == 0 else b, g)
        for a, c in zip(got, want):
            close(a, c, 1e-5)


def test_add_bias_over_pmap_and_a_mesh_is_the_whole_batchs():
    n = jax.device_count()
    y, b, g = rand((2 * n, 3, 3, 6), 0), rand((6,), 1), rand((2 * n, 3, 3, 6), 2)
    db = jax.grad(bias_loss(jnp.add), argnums=1)(y, b, g)
    split = lambda a: a.reshape(n, 2, *a.shape[1:])  # noqa: E731
    pdb = jax.pmap(jax.grad(bias_loss(linear.add_bias), argnums=1), in_axes=(0, None, 0))(split(y), b, split(g))
    close(pdb.sum(0), db, 1e-5)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    ys, gs = (jax.device_put(a, NamedSharding(mesh, P("data"))) for a in (y, g))
    f = jax.jit(jax.grad(bias_loss(linear.add_bias), argnums=1))
    close(f(ys, b, gs), db, 1e-5)
    compiled = f.lower(ys, b, gs).compile().as_text()
    assert 'custom_call_target="jaxcnn_bn_stats"' in compiled and "all-gather" not in compiled


def test_add_bias_switch_dtypes_platforms_and_the_conv_layer():
    y, b, g = rand((2, 4, 4, 3), 0), rand((3,), 1), rand((2, 4, 4, 3), 2)
    f = jax.grad(bias_loss(linear.add_bias), argnums=1)
    assert calls(f, y, b, g, prefix="jaxcnn_bn_stats") == 1
    assert with_switch("JAXCNN_NATIVE_BIAS", "0")(calls)(f, y, b, g, prefix="jaxcnn_bn_stats") == 0
    assert calls(f, *(a.astype(jnp.bfloat16) for a in (y, b, g)), prefix="jaxcnn_bn_stats") == 0
    for platform in ("cuda", "tpu"):
        text = jax.export.export(jax.jit(f), platforms=[platform])(y, b, g).mlir_module()
        assert "jaxcnn_" not in text
    with pytest.raises(ValueError, match="same C"):
        linear.add_bias(y, rand((4,), 3))
    from jaxcnn.layers import Conv
    conv = Conv(4, 3, padding="SAME")
    v = conv.init(jax.random.key(0), y)
    loss = lambda p: jnp.sum(conv.apply({"params": p}, y) ** 2)  # noqa: E731
    assert calls(jax.grad(loss), v["params"], prefix="jaxcnn_bn_stats") == 1
    want = with_switch("JAXCNN_NATIVE_BIAS", "0")(lambda: jax.grad(loss)(v["params"]))()
    close(jax.grad(loss)(v["params"])["bias"], want["bias"], 1e-5)
