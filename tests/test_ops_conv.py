"""cross_correlate and convolve: values against scipy.signal and by hand, the
flip identity, commutativity, gradients, bfloat16 and every refusal."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from jax.test_util import check_grads
from scipy import signal

from jaxcnn import ops

# The 4x4 input and 3x3 kernel of the seed notes' worked example
# (Saito, "Deep Learning from Scratch", p.230).
X44 = np.array([[1, 2, 3, 0],
                [0, 1, 2, 3],
                [3, 0, 1, 2],
                [2, 3, 0, 1]], np.float32)
K33 = np.array([[2, 0, 1],
                [0, 1, 2],
                [1, 0, 2]], np.float32)


def as_image(a):
    return jnp.asarray(a)[None, :, :, None]


def as_kernel(a):
    return jnp.asarray(a)[:, :, None, None]


def rand(key, shape, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(key), shape, dtype)


class ConvValuesTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_cross_correlation_worked_by_hand(self):
        # Output (0,0): window rows 0-2, cols 0-2 of X44 times K33, element by element:
        #   1*2 + 2*0 + 3*1  +  0*0 + 1*1 + 2*2  +  3*1 + 0*0 + 1*2  = 5 + 5 + 5 = 15
        # (0,1): 2*2+3*0+0*1 + 1*0+2*1+3*2 + 0*1+1*0+2*2 = 4 + 8 + 4 = 16
        # (1,0): 0*2+1*0+2*1 + 3*0+0*1+1*2 + 2*1+3*0+0*2 = 2 + 2 + 2 = 6
        # (1,1): the same window values as (0,0)                         = 15
        y = self.variant(lambda x, w: ops.cross_correlate(x, w))(as_image(X44), as_kernel(K33))
        chex.assert_shape(y, (1, 2, 2, 1))  # 4 - 3 + 1 = 2
        np.testing.assert_array_equal(y[0, :, :, 0], [[15, 16], [6, 15]])

    @chex.variants(with_jit=True, without_jit=True)
    def test_cross_correlation_with_padding_worked_by_hand(self):
        # Zero padding 1 keeps 4x4 ((4 + 2 - 3) + 1). Corners by hand:
        # (0,0): window [[0,0,0],[0,1,2],[0,0,1]] -> 1*1 + 2*2 + 1*2 = 7
        # (0,3): window [[0,0,0],[3,0,0],[2,3,0]] -> 3*0 + 2*1 + 3*0 = 2
        # (3,0): window [[0,3,0],[0,2,3],[0,0,0]] -> 3*0 + 2*1 + 3*2 = 8
        # (3,3): window [[1,2,0],[0,1,0],[0,0,0]] -> 1*2 + 2*0 + 1*1 = 3
        y = self.variant(lambda x, w: ops.cross_correlate(x, w, padding=1))(as_image(X44), as_kernel(K33))
        chex.assert_shape(y, (1, 4, 4, 1))
        got = np.asarray(y[0, :, :, 0])
        assert (got[0, 0], got[0, 3], got[3, 0], got[3, 3]) == (7, 2, 8, 3)
        np.testing.assert_array_equal(got[1:3, 1:3], [[15, 16], [6, 15]])  # interior = unpadded result

    @chex.variants(with_jit=True, without_jit=True)
    def test_true_convolution_worked_by_hand(self):
        # convolve flips the kernel: K33[::-1, ::-1] = [[2,0,1],[2,1,0],[1,0,2]].
        # (0,0): 1*2+2*0+3*1 + 0*2+1*1+2*0 + 3*1+0*0+1*2 = 5 + 1 + 5 = 11
        # (0,1): 2*2+3*0+0*1 + 1*2+2*1+3*0 + 0*1+1*0+2*2 = 4 + 4 + 4 = 12
        # (1,0): 0*2+1*0+2*1 + 3*2+0*1+1*0 + 2*1+3*0+0*2 = 2 + 6 + 2 = 10
        # (1,1): same window as (0,0)                                  = 11
        y = self.variant(lambda x, w: ops.convolve(x, w))(as_image(X44), as_kernel(K33))
        np.testing.assert_array_equal(y[0, :, :, 0], [[11, 12], [10, 11]])

    @chex.variants(with_jit=True, without_jit=True)
    def test_single_channel_matches_scipy_valid(self):
        img = np.asarray(rand(0, (9, 11)))
        ker = np.asarray(rand(1, (4, 3)))
        xc = self.variant(lambda x, w: ops.cross_correlate(x, w))(as_image(img), as_kernel(ker))
        cv = self.variant(lambda x, w: ops.convolve(x, w))(as_image(img), as_kernel(ker))
        chex.assert_shape([xc, cv], (1, 6, 9, 1))  # (9-4+1, 11-3+1)
        np.testing.assert_allclose(xc[0, :, :, 0], signal.correlate2d(img, ker, mode="valid"), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(cv[0, :, :, 0], signal.convolve2d(img, ker, mode="valid"), rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_multichannel_sums_scipy_over_channels(self):
        # A C_in -> C_out convolution is, per output channel, the sum over input channels
        # of single-channel convolutions.
        x = np.asarray(rand(2, (2, 7, 6, 3)))
        w = np.asarray(rand(3, (3, 2, 3, 2)))
        cv = self.variant(lambda x, w: ops.convolve(x, w))(x, w)
        chex.assert_shape(cv, (2, 5, 5, 2))
        want = np.zeros((2, 5, 5, 2))
        for n in range(2):
            for o in range(2):
                want[n, :, :, o] = sum(signal.convolve2d(x[n, :, :, c], w[:, :, c, o], mode="valid") for c in range(3))
        np.testing.assert_allclose(cv, want, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        ("plain", {}),
        ("strided_padded", dict(stride=2, padding=1)),
        ("same", dict(padding="SAME")),
        ("asymmetric", dict(stride=(1, 2), padding=((2, 0), (1, 3)))),
        ("dilated", dict(dilation=2, padding=2)),
        ("grouped", dict(groups=2, padding="SAME")),
    )
    def test_flip_identity_and_loop_reference(self, kwargs):
        x = rand(4, (2, 9, 8, 4))
        groups = kwargs.get("groups", 1)
        w = rand(5, (3, 3, 4 // groups, 6))
        cv = self.variant(lambda x, w: ops.convolve(x, w, **kwargs))(x, w)
        xc_flipped = self.variant(lambda x, w: ops.cross_correlate(x, ops.flip_kernel(w), **kwargs))(x, w)
        np.testing.assert_array_equal(cv, xc_flipped)
        np.testing.assert_allclose(cv, ops.conv_reference(x, w[::-1, ::-1], **kwargs), rtol=1e-5, atol=1e-5)
        xc = self.variant(lambda x, w: ops.cross_correlate(x, w, **kwargs))(x, w)
        np.testing.assert_allclose(xc, ops.conv_reference(x, w, **kwargs), rtol=1e-5, atol=1e-5)
        assert not np.allclose(xc, cv)  # the flip matters for a generic kernel

    @chex.variants(with_jit=True, without_jit=True)
    def test_full_convolution_commutes_cross_correlation_does_not(self):
        f = np.asarray(rand(6, (4, 5)))
        g = np.asarray(rand(7, (3, 2)))

        def full(op, a, b):  # "full" mode: pad by kernel size - 1 on every side
            pad = ((b.shape[0] - 1,) * 2, (b.shape[1] - 1,) * 2)
            return self.variant(lambda x, w: op(x, w, padding=pad))(as_image(a), as_kernel(b))[0, :, :, 0]

        fg, gf = full(ops.convolve, f, g), full(ops.convolve, g, f)
        chex.assert_shape([fg, gf], (6, 6))  # (4 + 3 - 1, 5 + 2 - 1)
        np.testing.assert_allclose(fg, gf, rtol=1e-5, atol=1e-5)  # f * g = g * f
        np.testing.assert_allclose(fg, signal.convolve2d(f, g, mode="full"), rtol=1e-5, atol=1e-5)
        cfg, cgf = full(ops.cross_correlate, f, g), full(ops.cross_correlate, g, f)
        assert not np.allclose(cfg, cgf)  # f (x) g != g (x) f ...
        np.testing.assert_allclose(cfg, cgf[::-1, ::-1], rtol=1e-5, atol=1e-5)  # ... it is its 180-degree rotation
        np.testing.assert_allclose(cfg, signal.correlate2d(f, g, mode="full"), rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_output_shapes(self):
        x = jnp.zeros((2, 13, 10, 6))
        w = jnp.zeros((5, 3, 3, 8))
        for kwargs, hw in [
            (dict(groups=2), (9, 8)),                          # 13-5+1, 10-3+1
            (dict(groups=2, stride=2, padding=2), (7, 6)),     # (13+4-5)//2+1, (10+4-3)//2+1
            (dict(groups=2, padding="SAME", stride=3), (5, 4)),  # ceil(13/3), ceil(10/3)
            (dict(groups=2, dilation=2), (5, 6)),              # 13-(2*4+1)+1, 10-(2*2+1)+1
        ]:
            for op in (ops.cross_correlate, ops.convolve):
                chex.assert_shape(self.variant(lambda x, w: op(x, w, **kwargs))(x, w), (2, *hw, 8))


@pytest.mark.parametrize("op", [ops.cross_correlate, ops.convolve])
def test_gradients(op):
    x = rand(8, (1, 6, 5, 2))
    w = rand(9, (3, 2, 2, 3))
    check_grads(lambda x, w: op(x, w, stride=2, padding=1), (x, w), order=2, modes=("fwd", "rev"), atol=1e-2, rtol=1e-2)
    check_grads(lambda x, w: op(x, w, padding="SAME", dilation=(2, 1)), (x, w), order=1, modes=("rev",),
                atol=1e-2, rtol=1e-2)


def test_gradient_of_convolve_is_flipped_gradient_of_cross_correlate():
    x = rand(10, (2, 7, 7, 3))
    w = rand(11, (3, 3, 3, 4))
    gc = jax.grad(lambda w: jnp.sum(jnp.sin(ops.convolve(x, w))))(w)
    gx = jax.grad(lambda v: jnp.sum(jnp.sin(ops.cross_correlate(x, v))))(w[::-1, ::-1])
    np.testing.assert_allclose(gc, gx[::-1, ::-1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", [ops.cross_correlate, ops.convolve])
def test_bfloat16(op):
    x = rand(12, (2, 8, 8, 3))
    w = rand(13, (3, 3, 3, 4))
    y16 = jax.jit(lambda x, w: op(x, w, stride=2, padding="SAME"))(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
    assert y16.dtype == jnp.bfloat16
    chex.assert_shape(y16, (2, 4, 4, 4))
    np.testing.assert_allclose(np.asarray(y16, np.float32), op(x, w, stride=2, padding="SAME"), rtol=0.05, atol=0.1)
    g = jax.grad(lambda w: jnp.sum(op(x.astype(jnp.bfloat16), w)).astype(jnp.float32))(w.astype(jnp.bfloat16))
    assert g.dtype == jnp.bfloat16 and g.shape == w.shape


@pytest.mark.parametrize("op", [ops.cross_correlate, ops.convolve])
@pytest.mark.parametrize("x_shape,w_shape,kwargs,match", [
    ((8, 8, 3), (3, 3, 3, 4), {}, r"rank 4 \(N, H, W, C\).*\(8, 8, 3\).*x\[None\]"),
    ((1, 8, 8, 3), (3, 3, 3), {}, r"rank 4 \(KH, KW, C_in/groups, C_out\).*\(3, 3, 3\)"),
    ((1, 8, 8, 3), (3, 3, 2, 4), {}, r"x has 3 channels.*\(3, 3, 2, 4\).*make the kernel's third axis 3"),
    ((1, 8, 8, 6), (3, 3, 2, 4), {"groups": 2}, r"C_in/groups=2 with groups=2.*third axis 3"),
    ((1, 8, 8, 3), (3, 3, 1, 4), {"groups": 2}, r"groups=2 must divide the input channels 3.*\(1, 8, 8, 3\).*divisor"),
    ((1, 4, 4, 1), (5, 5, 1, 1), {}, r"kernel height 5.*larger than the padded input.*\(1, 4, 4, 1\).*more padding"),
    ((1, 4, 4, 1), (3, 3, 1, 1), {"dilation": 2}, r"dilated to 5.*larger than the padded input"),
    ((1, 8, 8, 1), (3, 3, 1, 1), {"stride": 0}, r"stride must be >= 1.*positive"),
    ((1, 8, 8, 1), (3, 3, 1, 1), {"stride": (1, -2)}, r"stride must be >= 1"),
    ((1, 8, 8, 1), (3, 3, 1, 1), {"padding": "FULL"}, r"padding must be 'VALID', 'SAME'"),
    ((1, 8, 8, 1), (3, 3, 1, 1), {"padding": -1}, r"padding must be >= 0"),
])
def test_refusals_name_shapes_and_fix(op, x_shape, w_shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        op(jnp.zeros(x_shape), jnp.zeros(w_shape), **kwargs)


def test_five_by_five_kernel_fits_with_padding():
    # The refusal above is about the *padded* input: 4 + 2 + 2 = 8 >= 5 is fine.
    chex.assert_shape(ops.cross_correlate(jnp.zeros((1, 4, 4, 1)), jnp.zeros((5, 5, 1, 1)), padding=2), (1, 4, 4, 1))


def test_normalize_padding_forms():
    assert ops.normalize_padding("same") == "SAME"
    assert ops.normalize_padding(2) == ((2, 2), (2, 2))
    assert ops.normalize_padding((1, 3)) == ((1, 1), (3, 3))
    assert ops.normalize_padding(((0, 1), (2, 3))) == ((0, 1), (2, 3))
