"""im2col lowering, the loop reference, and conv_transpose as the adjoint of cross_correlate."""

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


class Im2colTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_im2col_rows_by_hand(self):
        # x[0, i, j, c] = 10 * (3 * i + j) + c on a 3x3x2 image; 2x2 patches, stride 1.
        x = (10 * jnp.arange(9.0).reshape(1, 3, 3, 1) + jnp.arange(2.0)).reshape(1, 3, 3, 2)
        cols = self.variant(lambda x: ops.im2col(x, 2, 2))(x)
        chex.assert_shape(cols, (1 * 2 * 2, 2 * 2 * 2))  # N*OH*OW rows, kh*kw*C columns
        # Row 0 is the top-left patch, (kh, kw, C) order: pixels (0,0),(0,1),(1,0),(1,1), two channels each.
        np.testing.assert_array_equal(cols[0], [0, 1, 10, 11, 30, 31, 40, 41])
        # Row 3 is the bottom-right patch: pixels (1,1),(1,2),(2,1),(2,2).
        np.testing.assert_array_equal(cols[3], [40, 41, 50, 51, 70, 71, 80, 81])

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        ("valid", {}), ("strided_padded", dict(stride=2, padding=1)), ("same", dict(padding="SAME")),
        ("alexnet_like", dict(stride=(4, 3), padding=((1, 2), (0, 1)))),
    )
    def test_conv_im2col_equals_cross_correlate(self, kwargs):
        x = rand(0, (2, 11, 10, 3))
        w = rand(1, (5, 3, 3, 4))
        got = self.variant(lambda x, w: ops.conv_im2col(x, w, **kwargs))(x, w)
        want = self.variant(lambda x, w: ops.cross_correlate(x, w, **kwargs))(x, w)
        chex.assert_equal_shape([got, want])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, ops.conv_reference(x, w, **kwargs), rtol=1e-5, atol=1e-5)

    def test_im2col_memory_blowup(self):
        # 3x3 stride 1 SAME: every pixel is copied into 9 rows.
        x = jnp.zeros((2, 8, 8, 4))
        assert ops.im2col(x, 3, 3, padding="SAME").size == 9 * x.size


def test_conv_reference_by_hand_grouped():
    # Two groups of one channel: each output sees only its own input channel.
    x = np.zeros((1, 2, 2, 2), np.float32)
    x[0, :, :, 0] = [[1, 2], [3, 4]]
    x[0, :, :, 1] = [[10, 20], [30, 40]]
    w = np.ones((2, 2, 1, 2), np.float32)
    y = ops.conv_reference(x, w, groups=2)
    np.testing.assert_array_equal(y[0, 0, 0], [1 + 2 + 3 + 4, 10 + 20 + 30 + 40])


def test_im2col_gradient_and_bfloat16():
    x = rand(2, (1, 5, 5, 2))
    w = rand(3, (3, 3, 2, 2))
    check_grads(lambda x, w: ops.conv_im2col(x, w, stride=2, padding=1), (x, w), order=1, atol=1e-2, rtol=1e-2)
    y = ops.conv_im2col(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), ops.cross_correlate(x, w), rtol=0.05, atol=0.1)


@pytest.mark.parametrize("args,match", [
    (((4, 4, 1), 3, 3), r"rank 4 \(N, H, W, C\)"),
    (((1, 4, 4, 1), 5, 3), r"kernel height 5 is larger than the padded input.*\(1, 4, 4, 1\)"),
    (((1, 4, 4, 1), 0, 3), r"kernel size must be >= 1"),
])
def test_im2col_refusals(args, match):
    shape, kh, kw = args
    with pytest.raises(ValueError, match=match):
        ops.im2col(jnp.zeros(shape), kh, kw)


CASES = [  # (x spatial, kernel, stride, padding)
    ((7, 8), (3, 3), 1, "VALID"),
    ((8, 9), (3, 2), 2, "VALID"),
    ((9, 9), (3, 3), 3, 1),
    ((8, 10), (3, 3), 2, "SAME"),
    ((7, 7), (3, 3), 2, "SAME"),
    ((8, 9), (2, 3), (2, 1), ((2, 0), (1, 3))),
    ((6, 6), (1, 1), 2, 1),  # padding larger than kernel - 1: negative crop inside
]


class TransposeTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*CASES)
    def test_adjoint_identity(self, hw, k, stride, padding):
        kx, kw_, ky = jax.random.split(jax.random.key(4), 3)
        x = jax.random.normal(kx, (2, *hw, 3))
        w = jax.random.normal(kw_, (*k, 3, 4))
        ax = ops.cross_correlate(x, w, stride=stride, padding=padding)
        y = jax.random.normal(ky, ax.shape)
        aty = self.variant(lambda y, w: ops.conv_transpose(y, w, stride=stride, padding=padding, output_size=hw))(y, w)
        chex.assert_shape(aty, x.shape)
        lhs, rhs = jnp.vdot(ax, y), jnp.vdot(x, aty)
        np.testing.assert_allclose(lhs, rhs, rtol=1e-4, atol=1e-3)
        # and it is what autodiff gives as the input gradient of cross_correlate
        _, vjp = jax.vjp(lambda x: ops.cross_correlate(x, w, stride=stride, padding=padding), x)
        np.testing.assert_allclose(aty, vjp(y)[0], rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_scatter_by_hand(self):
        # Stride 2, 2x2 ones kernel, VALID: each y pixel is pasted onto its own 2x2 block.
        y = jnp.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
        x = self.variant(lambda y, w: ops.conv_transpose(y, w, stride=2))(y, jnp.ones((2, 2, 1, 1)))
        np.testing.assert_array_equal(x[0, :, :, 0], [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])

    def test_output_size_resolves_ambiguity(self):
        # kernel 3, stride 2, VALID: floor((H - 3) / 2) + 1 = 3 for H = 7 and H = 8.
        y = jnp.ones((1, 3, 3, 1))
        w = jnp.ones((3, 3, 1, 1))
        chex.assert_shape(ops.conv_transpose(y, w, stride=2), (1, 7, 7, 1))  # smallest by default
        chex.assert_shape(ops.conv_transpose(y, w, stride=2, output_size=(8, 7)), (1, 8, 7, 1))
        # SAME: ceil(H / 2) = 3 for H in 5..6; default O * S = 6 (Flax/TF).
        chex.assert_shape(ops.conv_transpose(y, w, stride=2, padding="SAME"), (1, 6, 6, 1))
        with pytest.raises(ValueError, match=r"output height 9 is not reachable.*7\.\.8.*output_size"):
            ops.conv_transpose(y, w, stride=2, output_size=(9, 7))
        with pytest.raises(ValueError, match=r"output width 4 is not reachable.*5\.\.6"):
            ops.conv_transpose(y, w, stride=2, padding="SAME", output_size=(6, 4))

    def test_refusals(self):
        with pytest.raises(ValueError, match=r"y has 2 channels.*\(3, 3, 1, 4\).*needs 4 channels"):
            ops.conv_transpose(jnp.ones((1, 3, 3, 2)), jnp.ones((3, 3, 1, 4)))
        with pytest.raises(ValueError, match=r"rank 4"):
            ops.conv_transpose(jnp.ones((3, 3, 4)), jnp.ones((3, 3, 1, 4)))
        with pytest.raises(ValueError, match=r"stride must be >= 1"):
            ops.conv_transpose(jnp.ones((1, 3, 3, 4)), jnp.ones((3, 3, 1, 4)), stride=0)


def test_conv_transpose_gradients_and_bfloat16():
    y = rand(5, (1, 3, 4, 2))
    w = rand(6, (3, 3, 3, 2))
    check_grads(lambda y, w: ops.conv_transpose(y, w, stride=2, padding=1), (y, w), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)
    x16 = ops.conv_transpose(y.astype(jnp.bfloat16), w.astype(jnp.bfloat16), stride=2)
    assert x16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(x16, np.float32), ops.conv_transpose(y, w, stride=2), rtol=0.05, atol=0.1)
