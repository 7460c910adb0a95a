"""jaxcnn.ops.native: the oneDNN convolutions equal XLA's to float rounding, in
every direction and under every transformation, and are taken on the CPU only."""

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxcnn import ops
from jaxcnn._validation import as_pair
from jaxcnn.ops import native
from jaxcnn.ops.conv import DIMENSION_NUMBERS, explicit_padding

pytestmark = pytest.mark.skipif(native.status() != "enabled", reason=f"native convolutions {native.status()}")

RTOL = 2e-5  # relative to the largest entry: float32 sums in another order


def close(a, b, rtol=RTOL):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    scale = max(np.abs(b).max(), 1e-6)
    err = np.abs(a - b).max() / scale
    assert err <= rtol, f"max error {err:.2e} of the largest entry (rtol {rtol:.0e})"


def xla_conv(x, w, stride, padding, dilation, groups):
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    pads = explicit_padding(padding, x.shape[1:3], w.shape[:2], stride, dilation)
    return lax.conv_general_dilated(x, w, stride, pads, rhs_dilation=dilation,
                                    dimension_numbers=DIMENSION_NUMBERS, feature_group_count=groups)


def custom_calls(f, *args):
    return jax.jit(f).lower(*args).as_text().count("custom_call @jaxcnn_conv")


def random(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


# Every combination of stride, padding, dilation and groups on odd sizes:
# 9x7 images of 6 channels, a 3x2 kernel; groups 1, 2 and depthwise (6, with
# two outputs per channel).
STRIDES = [1, 2, (2, 1)]
PADDINGS = ["VALID", "SAME", ((1, 2), (0, 1))]
DILATIONS = [1, (1, 2)]
GROUPS = [1, 2, 6]
GRID = list(itertools.product(STRIDES, PADDINGS, DILATIONS, GROUPS))


def _grid_outputs(conv, x, w_of_groups, dys):
    """y, dx, dw of sum(y * dy) for every grid case, from one jitted function."""
    out = []
    for (stride, padding, dilation, groups), dy in zip(GRID, dys):
        w = w_of_groups[groups]
        f = lambda x, w: conv(x, w, stride, padding, dilation, groups)  # noqa: E731
        y, vjp = jax.vjp(f, x, w)
        out.append((y, *vjp(dy)))
    return out


def test_every_direction_matches_xla_on_the_grid():
    x = random((2, 9, 7, 6), 0)
    w_of_groups = {g: random((3, 2, 6 // g, 12 if g == 6 else 4), g) for g in GROUPS}
    shapes = [jax.eval_shape(lambda x, w: xla_conv(x, w, *case[:3], case[3]), x, w_of_groups[case[3]])
              for case in GRID]
    dys = [random(s.shape, 100 + i) for i, s in enumerate(shapes)]

    def native_conv(x, w, stride, padding, dilation, groups):
        return ops.cross_correlate(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)

    got = jax.jit(lambda x, ws, dys: _grid_outputs(native_conv, x, ws, dys))(x, w_of_groups, dys)
    want = jax.jit(lambda x, ws, dys: _grid_outputs(xla_conv, x, ws, dys))(x, w_of_groups, dys)
    for case, g, r in zip(GRID, got, want):
        for name, a, b in zip(("y", "dx", "dw"), g, r):
            try:
                close(a, b)
            except AssertionError as e:
                raise AssertionError(f"{name} of stride, padding, dilation, groups = {case}: {e}") from None


def test_the_cpu_program_has_custom_calls_and_no_convolution():
    x, w = random((2, 9, 7, 6), 0), random((3, 3, 3, 4), 1)
    f = lambda x, w: jnp.sum(ops.cross_correlate(x, w, stride=2, padding="SAME", groups=2) ** 2)  # noqa: E731
    text = jax.jit(jax.grad(f, argnums=(0, 1))).lower(x, w).as_text()
    for target in native.CONV_TARGETS:
        assert f"custom_call @{target}(" in text
    assert "stablehlo.convolution" not in text


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_other_platforms_keep_xlas_convolution(platform):
    x, w = random((2, 9, 7, 6), 0), random((3, 3, 6, 4), 1)
    f = jax.grad(lambda x, w: jnp.sum(ops.cross_correlate(x, w, padding=1) ** 2), argnums=(0, 1))
    exported = jax.export.export(jax.jit(f), platforms=[platform])(x, w)
    text = exported.mlir_module()
    assert "jaxcnn_conv" not in text
    assert text.count("stablehlo.convolution") == 3


def test_the_switch_turns_the_native_path_off(monkeypatch):
    x, w = random((1, 8, 8, 3), 0), random((3, 3, 3, 4), 1)
    # The switch is read when a function is traced: each check traces a new one.
    assert custom_calls(lambda x, w: ops.cross_correlate(x, w, padding=1), x, w) == 1
    monkeypatch.setenv(native.SWITCH, "0")
    assert native.status() == "disabled by JAXCNN_NATIVE_CONV=0"
    assert custom_calls(lambda x, w: ops.cross_correlate(x, w, padding=1), x, w) == 0


def test_a_missing_extension_falls_back_and_says_so_once(monkeypatch, tmp_path):
    monkeypatch.setattr(native, "LIBRARY", tmp_path / "absent.so")
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setattr(native, "_warned", False)
    assert native.status().startswith("unavailable: extension not built")
    x, w = random((1, 8, 8, 3), 0), random((3, 3, 3, 4), 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y1 = ops.cross_correlate(x, w)
        y2 = ops.cross_correlate(x, w, padding=1)
        assert custom_calls(lambda x, w: ops.cross_correlate(x, w), x, w) == 0
    said = [str(c.message) for c in caught if "native CPU kernels" in str(c.message)]
    assert len(said) == 1 and "\n" not in said[0]
    close(y1, xla_conv(x, w, 1, "VALID", 1, 1))
    close(y2, xla_conv(x, w, 1, 1, 1, 1))


def test_grad_of_grad():
    x, w = random((2, 7, 6, 4), 0), random((3, 3, 2, 6), 1)

    def loss(conv):
        def inner(x, w):
            return jnp.sum(jnp.sin(conv(x, w, (2, 1), ((1, 0), (1, 1)), (1, 2), 2)))
        # A function of both first derivatives, differentiated again.
        return lambda x, w: sum(jnp.sum(g ** 2) for g in jax.grad(inner, argnums=(0, 1))(x, w))

    def native_conv(x, w, stride, padding, dilation, groups):
        return ops.cross_correlate(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)

    got = jax.jit(jax.grad(loss(native_conv), argnums=(0, 1)))(x, w)
    want = jax.jit(jax.grad(loss(xla_conv), argnums=(0, 1)))(x, w)
    assert custom_calls(jax.grad(loss(native_conv), argnums=(0, 1)), x, w) > 0
    for a, b in zip(got, want):
        close(a, b, 1e-4)


def test_forward_mode():
    x, w = random((2, 7, 6, 4), 0), random((3, 3, 2, 6), 1)
    dx, dw = random(x.shape, 2), random(w.shape, 3)

    def native_conv(x, w):
        return ops.cross_correlate(x, w, stride=2, padding="SAME", groups=2)

    f = lambda conv: lambda x, w: jax.jvp(conv, (x, w), (dx, dw))  # noqa: E731
    got = jax.jit(f(native_conv))(x, w)
    want = f(lambda x, w: xla_conv(x, w, 2, "SAME", 1, 2))(x, w)
    assert custom_calls(f(native_conv), x, w) == 3  # F(x, w), F(dx, w), F(x, dw)
    for a, b in zip(got, want):
        close(a, b)
    # Forward over reverse: a Hessian-vector product.
    hvp = lambda conv: lambda x: jax.jvp(jax.grad(lambda x: jnp.sum(jnp.sin(conv(x, w)))), (x,), (dx,))[1]  # noqa: E731
    close(jax.jit(hvp(native_conv))(x), hvp(lambda x, w: xla_conv(x, w, 2, "SAME", 1, 2))(x), 1e-4)


def test_vmap_over_images_folds_into_the_batch_and_over_kernels_falls_back():
    x, w = random((3, 2, 8, 8, 4), 0), random((3, 3, 3, 4, 5), 1)
    conv = lambda x, w: ops.cross_correlate(x, w, stride=2, padding="SAME")  # noqa: E731
    ref = lambda x, w: xla_conv(x, w, 2, "SAME", 1, 1)  # noqa: E731
    over_x = jax.vmap(conv, in_axes=(0, None))
    close(jax.jit(over_x)(x, w[0]), jax.vmap(ref, in_axes=(0, None))(x, w[0]))
    assert custom_calls(over_x, x, w[0]) == 1
    close(jax.jit(jax.vmap(conv))(x, w), jax.vmap(ref)(x, w))
    # Per-example gradients: vmap of grad.
    loss = lambda conv: lambda w, x: jnp.sum(conv(x[None], w) ** 2)  # noqa: E731
    per_example = jax.jit(jax.vmap(jax.grad(loss(conv)), in_axes=(None, 0)))(w[0], x[0])
    close(per_example, jax.vmap(jax.grad(loss(ref)), in_axes=(None, 0))(w[0], x[0]))


def test_convolve_and_conv_transpose_take_the_native_path():
    x, w = random((2, 9, 8, 3), 0), random((4, 3, 3, 5), 1)
    conv = lambda x, w: ops.convolve(x, w, stride=2, padding=((1, 2), (2, 0)))  # noqa: E731
    assert custom_calls(conv, x, w) == 1
    close(jax.jit(conv)(x, w), xla_conv(x, w[::-1, ::-1], 2, ((1, 2), (2, 0)), 1, 1))
    y = random((2, 5, 4, 5), 2)
    for padding, size in (("SAME", None), (1, (10, 8)), (((0, 2), (1, 1)), None)):
        t = lambda y, w: ops.conv_transpose(y, w, stride=2, padding=padding, output_size=size)  # noqa: E731
        assert custom_calls(t, y, w) == 1
        got = jax.jit(jax.value_and_grad(lambda y, w: jnp.sum(t(y, w) ** 3), argnums=(0, 1)))(y, w)
        with pytest.MonkeyPatch.context() as m:
            m.setenv(native.SWITCH, "0")
            want = jax.jit(jax.value_and_grad(lambda y, w: jnp.sum(t(y, w) ** 3), argnums=(0, 1)))(y, w)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            close(a, b, 1e-4)


def test_donated_inputs():
    x, w = random((4, 8, 8, 3), 0), random((3, 3, 3, 3), 1)
    want = xla_conv(x, w, 1, "SAME", 1, 1)
    f = jax.jit(lambda x, w: ops.cross_correlate(x, w, padding="SAME"), donate_argnums=(0,))
    close(f(jnp.array(x), w), want)


def test_bfloat16_is_native_only_where_the_cpu_has_fast_kernels():
    x, w = random((2, 8, 8, 16), 0).astype(jnp.bfloat16), random((3, 3, 16, 16), 1).astype(jnp.bfloat16)
    conv = lambda x, w: ops.cross_correlate(x, w, padding=1)  # noqa: E731
    assert custom_calls(conv, x, w) == (1 if native.supports(jnp.bfloat16) else 0)
    close(jax.jit(conv)(x, w).astype(jnp.float32), xla_conv(x, w, 1, 1, 1, 1).astype(jnp.float32), 2e-2)
    # float64 and float16 are never native.
    assert custom_calls(conv, x.astype(jnp.float16), w.astype(jnp.float16)) == 0


def test_data_parallel_pmap_and_mesh():
    n = jax.device_count()
    x, w = random((2 * n, 8, 8, 3), 0), random((3, 3, 3, 4), 1)

    def loss(conv):
        return lambda w, x: jnp.sum(jnp.tanh(conv(x, w, 1, "SAME", 1, 1)))

    def native_conv(x, w, stride, padding, dilation, groups):
        return ops.cross_correlate(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)

    want = jax.grad(loss(xla_conv))(w, x)
    per_device = jax.pmap(lambda w, x: lax.psum(jax.grad(loss(native_conv))(w, x), "d"), axis_name="d",
                          in_axes=(None, 0))(w, x.reshape(n, 2, 8, 8, 3))
    close(per_device[0], want)
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    xs = jax.device_put(x, NamedSharding(mesh, P("data")))
    f = jax.jit(jax.grad(loss(native_conv)), out_shardings=NamedSharding(mesh, P()))
    close(f(w, xs), want)
    # Each device convolves its own slice of the batch (2 images): nothing gathers them.
    compiled = f.lower(w, xs).compile().as_text()
    assert compiled.count('custom_call_target="jaxcnn_conv') == 2
    assert "all-gather" not in compiled
    assert "f32[2,8,8,3]{3,2,1,0}, f32[3,3,3,4]" in compiled
