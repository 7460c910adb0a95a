"""Pooling and local response normalisation against NumPy loops; arithmetic of the seed examples."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from jax.test_util import check_grads

from jaxcnn import ops


def rand(key, shape):
    return jax.random.normal(jax.random.key(key), shape)


def pool_loop(x, window, stride, pad, reduce, fill):
    """Plain loop: pad with `fill`, then reduce every window."""
    (kh, kw), (sh, sw), ((t, b), (l, r)) = window, stride, pad
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (t, b), (l, r), (0, 0)), constant_values=fill)
    oh, ow = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            out[:, i, j, :] = reduce(xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :], axis=(1, 2))
    return out


class PoolTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        ("lenet_2x2_s2", (2, 2), None, "VALID", ((0, 0), (0, 0))),
        ("alexnet_overlapping_3x3_s2", (3, 3), (2, 2), "VALID", ((0, 0), (0, 0))),
        ("padded", (3, 3), (2, 2), 1, ((1, 1), (1, 1))),
        ("rectangular", (2, 3), (1, 2), "VALID", ((0, 0), (0, 0))),
    )
    def test_against_numpy_loops(self, window, stride, padding, pads):
        x = rand(0, (2, 9, 11, 3))
        st = window if stride is None else stride
        mx = self.variant(lambda x: ops.max_pool(x, window, stride, padding))(x)
        av = self.variant(lambda x: ops.avg_pool(x, window, stride, padding))(x)
        want_max = pool_loop(x, window, st, pads, np.max, -np.inf)
        chex.assert_shape([mx, av], want_max.shape)
        np.testing.assert_allclose(mx, want_max, rtol=1e-6)
        np.testing.assert_allclose(av, pool_loop(x, window, st, pads, np.mean, 0.0), rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_max_pool_by_hand_and_avg_without_padding_count(self):
        x = jnp.array([[1.0, 5, 2, 0], [3, 4, 8, 1], [0, 2, 1, 1], [7, 1, 3, 9]])[None, :, :, None]
        mx = self.variant(lambda x: ops.max_pool(x, 2))(x)
        np.testing.assert_array_equal(mx[0, :, :, 0], [[5, 8], [7, 9]])
        # 3x3 stride 2 padding 1 on 4x4 -> 2x2; the corner window holds 4 real pixels 1,5,3,4.
        av = self.variant(lambda x: ops.avg_pool(x, 3, 2, 1, count_include_pad=False))(x)
        assert float(av[0, 0, 0, 0]) == pytest.approx((1 + 5 + 3 + 4) / 4)
        av_incl = self.variant(lambda x: ops.avg_pool(x, 3, 2, 1))(x)
        assert float(av_incl[0, 0, 0, 0]) == pytest.approx((1 + 5 + 3 + 4) / 9)

    @chex.variants(with_jit=True, without_jit=True)
    def test_global_avg_pool(self):
        x = rand(1, (2, 5, 4, 3))
        g = self.variant(ops.global_avg_pool)(x)
        chex.assert_shape(g, (2, 3))
        np.testing.assert_allclose(g, np.asarray(x).mean(axis=(1, 2)), rtol=1e-5)
        chex.assert_shape(self.variant(lambda x: ops.global_avg_pool(x, keepdims=True))(x), (2, 1, 1, 3))

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(dict(), dict(size=3, k=1.0, alpha=0.5, beta=0.5), dict(size=4, alpha=0.3))
    def test_lrn_against_numpy_loop(self, **kw):
        x = np.asarray(rand(2, (2, 3, 3, 7))) * 3
        size, k, alpha, beta = kw.get("size", 5), kw.get("k", 2.0), kw.get("alpha", 1e-4), kw.get("beta", 0.75)
        want = np.zeros_like(x, np.float64)
        channels = x.shape[-1]
        for c in range(channels):  # Krizhevsky et al. 2012, eq. in section 3.3
            lo, hi = max(0, c - size // 2), min(channels - 1, c + (size - 1 - size // 2))
            want[..., c] = x[..., c] / (k + alpha * np.sum(x[..., lo:hi + 1] ** 2, axis=-1)) ** beta
        got = self.variant(lambda x: ops.local_response_norm(x, **kw))(x)
        chex.assert_shape(got, x.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_pooling_and_lrn_gradients_and_bfloat16():
    x = rand(3, (1, 6, 6, 2))
    eps = 2.0 ** -8  # bfloat16's relative rounding error (8 significant bits)
    big = float(jnp.abs(x).max())
    # (op, rtol, atol) from eps: a max pool returns one rounded input (eps relative); a mean of rounded inputs,
    # itself rounded, is off by at most about 2 eps of the largest input (no relative bound: it may cancel);
    # LRN rounds its square, sum, power and quotient (4 eps relative)
    cases = ((lambda x: ops.max_pool(x, 3, 2), eps, 0.0), (lambda x: ops.avg_pool(x, 3, 2, 1), 0.0, 2 * eps * big),
             (ops.global_avg_pool, 0.0, 2 * eps * big), (lambda x: ops.local_response_norm(x, alpha=0.3), 4 * eps, 0.0))
    for f, rtol, atol in cases:
        check_grads(f, (x,), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)
        y16 = f(x.astype(jnp.bfloat16))
        assert y16.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(y16, np.float32), f(x), rtol=rtol, atol=atol)


def _max_pool_reference(x, window, stride):
    """lax.reduce_window itself: the gradient JAX defines for max pooling (select_and_scatter)."""
    return jax.lax.reduce_window(x, np.array(-np.inf, x.dtype), jax.lax.max, (1, *window, 1), (1, *stride, 1),
                                 "VALID")


@pytest.mark.parametrize("shape, window, stride", [
    ((2, 8, 8, 3), (2, 2), (2, 2)),     # the common 2x2 stride 2: non-overlapping tiles
    ((2, 15, 13, 4), (2, 2), (2, 2)),   # odd sizes: the last row and column are outside every window
    ((1, 9, 10, 2), (3, 3), (3, 3)),    # 3x3 tiles
    ((1, 7, 9, 2), (2, 3), (2, 3)),     # rectangular tiles
    ((2, 9, 9, 3), (3, 3), (2, 2)),     # overlapping: reduce_window
])
def test_max_pool_values_and_gradients_match_reduce_window_with_ties(shape, window, stride):
    # Rounded values: many windows hold two or more equal maxima. The gradient must reach the same (first,
    # row-major) maximum of each window as reduce_window's, and no other element.
    x = jnp.round(2 * rand(1, shape))
    y = _max_pool_reference(x, window, stride)
    cot = rand(2, y.shape)
    for fn in (lambda v: ops.max_pool(v, window, stride), jax.jit(lambda v: ops.max_pool(v, window, stride))):
        np.testing.assert_array_equal(fn(x), y)
        got = jax.grad(lambda v: jnp.sum(fn(v) * cot))(x)
        want = jax.grad(lambda v: jnp.sum(_max_pool_reference(v, window, stride) * cot))(x)
        np.testing.assert_array_equal(got, want)
    # bfloat16, and a batch of such images under vmap
    xb = x.astype(jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(ops.max_pool(xb, window, stride), np.float32), y)
    np.testing.assert_array_equal(jax.vmap(lambda v: ops.max_pool(v, window, stride))(x[None])[0], y)


def test_max_pool_tiles_gradient_avoids_select_and_scatter_on_cpu(monkeypatch):
    # Without the native kernels (JAXCNN_NATIVE_POOL=0, or no extension), the route that makes 2x2/2 max
    # pooling's gradient fast on XLA:CPU: no select-and-scatter left in the compiled program (XLA:CPU
    # lowers select-and-scatter to a scatter), and no run-time branch on the platform; overlapping
    # windows keep it. (With them, tests/test_ops_native_norm_pool.py.)
    import re

    monkeypatch.setenv("JAXCNN_NATIVE_POOL", "0")

    def ops_in(fn):
        text = jax.jit(jax.grad(lambda v: jnp.sum(fn(v)))).lower(jnp.zeros((2, 8, 8, 3))).compile().as_text()
        return set(re.findall(r"= \S+\[[^\]]*\]\S* ([a-z\-]+)\(", text))

    tiles, overlap = ops_in(lambda v: ops.max_pool(v, 2)), ops_in(lambda v: ops.max_pool(v, 3, 2))
    assert tiles and not any("scatter" in op for op in tiles) and "conditional" not in tiles, tiles
    assert any("scatter" in op for op in overlap), overlap


@pytest.mark.parametrize("call,match", [
    (lambda: ops.max_pool(jnp.zeros((4, 4, 1)), 2), r"rank 4 \(N, H, W, C\).*\(4, 4, 1\)"),
    (lambda: ops.avg_pool(jnp.zeros((1, 4, 4, 1)), 0), r"window must be >= 1"),
    (lambda: ops.max_pool(jnp.zeros((1, 4, 4, 1)), 2, -1), r"stride must be >= 1"),
    (lambda: ops.max_pool(jnp.zeros((1, 2, 4, 1)), 3), r"window height 3 is larger than the padded input height 2.*\(1, 2, 4, 1\)"),
    (lambda: ops.local_response_norm(jnp.zeros((4, 4, 8))), r"rank 4"),
    (lambda: ops.local_response_norm(jnp.zeros((1, 4, 4, 8)), size=0), r"size must be >= 1"),
])
def test_refusals(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- arithmetic -------------------------------------------------------------

def test_lenet_output_sizes():
    # Seed 001 / LeCun et al. 1998: 32 -C1 5x5-> 28 -S2 2x2/2-> 14 -C3 5x5-> 10 -S4-> 5.
    sizes = [32]
    for kernel, stride in [(5, 1), (2, 2), (5, 1), (2, 2)]:
        sizes.append(ops.conv_output_size(sizes[-1], kernel, stride))
    assert sizes == [32, 28, 14, 10, 5]
    # the ops agree, shapes only (jax.eval_shape, no compute)
    def net(x):
        x = ops.avg_pool(ops.cross_correlate(x, jnp.zeros((5, 5, 1, 6))), 2)
        return ops.avg_pool(ops.cross_correlate(x, jnp.zeros((5, 5, 6, 16))), 2)
    assert jax.eval_shape(net, jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32)).shape == (1, 5, 5, 16)


def test_alexnet_output_sizes():
    # Seed 001 (and the paper's sec. 3.5) say 224x224 in and 55x55 out of conv1 (11x11, stride 4, no padding), but
    # (224 - 11) / 4 + 1 = 54.25 floors to 54: the 55 needs a 227 input (Caffe's, the library's `alexnet`) or 2
    # pixels of padding at 224 (torchvision's, `alexnet_owt`): (224 + 4 - 11) / 4 + 1 = 55.25 -> 55.
    assert ops.conv_output_size(224, 11, 4) == 54
    assert ops.conv_output_size(224, 11, 4, 2) == 55
    # Krizhevsky et al. 2012 with the 227 input: (227-11)/4+1 = 55, (55-3)/2+1 = 27,
    # conv2 5x5 pad 2 keeps 27, (27-3)/2+1 = 13, conv3-5 3x3 pad 1 keep 13, (13-3)/2+1 = 6.
    h = ops.conv_output_size(227, 11, 4)
    assert h == 55
    h = ops.conv_output_size(h, 3, 2)
    assert h == 27
    h = ops.conv_output_size(ops.conv_output_size(h, 5, 1, 2), 3, 2)
    assert h == 13
    h = ops.conv_output_size(ops.conv_output_size(h, 3, 1, 1), 3, 2)
    assert h == 6
    def conv1_pool1(x):
        return ops.max_pool(ops.cross_correlate(x, jnp.zeros((11, 11, 3, 96)), stride=4), 3, 2)
    assert jax.eval_shape(conv1_pool1, jax.ShapeDtypeStruct((1, 227, 227, 3), jnp.float32)).shape == (1, 27, 27, 96)


def test_conv_output_size_padding_forms():
    assert ops.conv_output_size(14, 3, 2, "SAME") == 7       # ceil(14 / 2)
    assert ops.conv_output_size(14, 3, 2, (1, 0)) == 7       # (14 + 1 - 3) // 2 + 1 = 6 + 1
    assert ops.conv_output_size(14, 4, 2, (1, 0)) == 6       # (14 + 1 - 4) // 2 + 1 = 5 + 1
    assert ops.conv_output_size(13, 3, 1, 2, dilation=2) == 13  # 13 + 4 - 5 + 1
    with pytest.raises(ValueError, match=r"larger than the padded input 4\+0\+0=4; use a larger input, more padding"):
        ops.conv_output_size(4, 5)
    with pytest.raises(ValueError, match="groups=4 must divide in_channels=6; use a divisor of 6"):
        ops.conv_macs(7, 3, 6, 8, groups=4)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        ops.conv_output_size(8, 3, 0)


def test_receptive_field_of_stacks():
    # VGG (Simonyan & Zisserman 2015, sec. 2.3): two 3x3 see 5x5, three see 7x7.
    assert ops.receptive_field([(3, 1)] * 2) == 5
    assert ops.receptive_field([(3, 1)] * 3) == 7
    # AlexNet conv1 (11, stride 4) + pool1 (3, stride 2): 11 + (3 - 1) * 4 = 19
    assert ops.receptive_field([(11, 4), (3, 2)]) == 19
    # a 3x3 with dilation 2 sees 5
    assert ops.receptive_field([(3, 1, 2)]) == 5


def test_receptive_field_matches_gradient_support():
    # Independent check: the input pixels the centre output depends on (non-zero gradient).
    layers = [(3, 1), (2, 2), (3, 1)]
    def stack(x):
        for k, s in layers:
            x = ops.cross_correlate(x, jnp.ones((k, k, 1, 1)), stride=s)
        return x
    x = jnp.ones((1, 16, 16, 1))
    out = stack(x)
    g = jax.grad(lambda x: stack(x)[0, out.shape[1] // 2, out.shape[2] // 2, 0])(x)
    rows = np.nonzero(np.asarray(g[0, :, :, 0]).any(axis=1))[0]
    assert rows.max() - rows.min() + 1 == ops.receptive_field(layers) == 1 + 2 + 1 * 1 + 2 * 2


def test_each_output_sees_the_window_of_gerons_formula():
    # Seed 000 (Geron, ch. 14): the output at row i, column j of a conv with an fh x fw kernel and strides sh, sw
    # (no padding) is connected to rows i*sh .. i*sh + fh - 1 and columns j*sw .. j*sw + fw - 1 of its input.
    # Checked by the gradient's support, off the centre and with every size different (the notes swap i and j).
    fh, fw, sh, sw = 3, 2, 2, 3
    x = jnp.ones((1, 11, 13, 1))
    conv = lambda x: ops.cross_correlate(x, jnp.ones((fh, fw, 1, 1)), stride=(sh, sw))  # noqa: E731
    assert conv(x).shape == (1, (11 - fh) // sh + 1, (13 - fw) // sw + 1, 1) == (1, 5, 4, 1)
    for i, j in [(1, 3), (4, 0), (2, 2)]:
        g = np.asarray(jax.grad(lambda x: conv(x)[0, i, j, 0])(x))[0, :, :, 0]
        rows, cols = np.nonzero(g.any(axis=1))[0], np.nonzero(g.any(axis=0))[0]
        assert (rows.min(), rows.max()) == (i * sh, i * sh + fh - 1)
        assert (cols.min(), cols.max()) == (j * sw, j * sw + fw - 1)


def test_conv_macs_of_googlenet_example():
    # Seed 001: 14x14x480 -> 48 maps of 5x5: (14*14*48) * (5*5*480) = 112,896,000 ~ 112.9M
    assert ops.conv_macs(14, 5, 480, 48) == 14 * 14 * 48 * 5 * 5 * 480 == 112_896_000
    # with a 1x1 reduction to 16 first: (14*14*16)*(1*1*480) + (14*14*48)*(5*5*16) = 5,268,480 ~ 5.3M
    reduced = ops.conv_macs(14, 1, 480, 16) + ops.conv_macs(14, 5, 16, 48)
    assert reduced == 1_505_280 + 3_763_200 == 5_268_480
    assert round(reduced / 1e6, 1) == 5.3 and round(112_896_000 / 1e6, 1) == 112.9
    # AlexNet conv2 with its two towers (groups=2): 27*27*256 * 5*5*48
    assert ops.conv_macs(27, 5, 96, 256, groups=2) == 27 * 27 * 256 * 5 * 5 * 48
