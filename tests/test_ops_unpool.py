import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import ops


def _ref_argmax(x, k, s):
    n, h, w, c = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    vals = np.zeros((n, oh, ow, c), x.dtype)
    idx = np.zeros((n, oh, ow, c), np.int32)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    win = x[b, i * s:i * s + k, j * s:j * s + k, ch]
                    r, q = np.unravel_index(np.argmax(win), win.shape)
                    vals[b, i, j, ch] = win[r, q]
                    idx[b, i, j, ch] = (i * s + r) * w + (j * s + q)
    return vals, idx


@pytest.mark.parametrize("k,s,hw", [(2, 2, (6, 8)), (3, 2, (7, 7)), (2, 2, (5, 7))])
def test_argmax_matches_loop(k, s, hw):
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, *hw, 3)))
    pooled, idx = ops.max_pool_with_argmax(x, k, s)
    rv, ri = _ref_argmax(x, k, s)
    np.testing.assert_allclose(pooled, rv)
    np.testing.assert_array_equal(idx, ri)
    np.testing.assert_allclose(pooled, ops.max_pool(x, k, s))


def test_same_padding_never_picks_pad():
    x = -jnp.abs(jax.random.normal(jax.random.key(1), (1, 5, 5, 2))) - 1.0
    pooled, idx = ops.max_pool_with_argmax(x, 2, 2, padding="SAME")
    assert pooled.shape == (1, 3, 3, 2)
    np.testing.assert_allclose(pooled, ops.max_pool(x, 2, 2, padding="SAME"))
    assert int(idx.min()) >= 0 and int(idx.max()) < 25
    # each index is row * 5 + col of the unpadded input (as _ref_argmax), and points at the pooled maximum:
    # every input is below -1 and SAME's padding counts as -inf, so an index into padding could not match
    flat = np.asarray(x).reshape(1, 25, 2)
    picked = np.take_along_axis(flat, np.asarray(idx).reshape(1, 9, 2), axis=1).reshape(1, 3, 3, 2)
    np.testing.assert_array_equal(picked, pooled)
    # the last row and column of windows hold one input row/column and padding: they pick inputs 20-24 / 4,9,..
    assert set(np.asarray(idx)[0, 2, :, :].ravel()) <= set(range(20, 25))
    assert set(np.asarray(idx)[0, :, 2, :].ravel()) <= {4, 9, 14, 19, 24}


def test_unpool_round_trip():
    x = jax.random.normal(jax.random.key(2), (2, 6, 4, 3))
    pooled, idx = ops.max_pool_with_argmax(x, 2)
    up = ops.max_unpool(pooled, idx, x.shape)
    assert up.shape == x.shape
    # each 2x2 window keeps exactly its maximum, in place; the rest are zero
    nonzero = (up != 0).reshape(2, 3, 2, 2, 2, 3).sum(axis=(2, 4))
    np.testing.assert_array_equal(nonzero, np.ones((2, 3, 2, 3)))
    mask = up != 0
    np.testing.assert_allclose(np.asarray(up)[mask], np.asarray(x)[mask])
    # round trip again: pooling the unpooled map recovers values and indices
    p2, i2 = ops.max_pool_with_argmax(jnp.where(mask, up, -jnp.inf), 2)
    np.testing.assert_allclose(p2, pooled)
    np.testing.assert_array_equal(i2, idx)


def test_unpool_hand_case_and_odd_size():
    y = jnp.array([[[[5.0]]]])
    idx = jnp.array([[[[4]]]], jnp.int32)  # row 1, col 1 of a 3x3 plane
    up = ops.max_unpool(y, idx, (3, 3))
    expect = np.zeros((1, 3, 3, 1)); expect[0, 1, 1, 0] = 5.0
    np.testing.assert_array_equal(up, expect)


def test_gradients():
    x = jax.random.normal(jax.random.key(3), (1, 4, 4, 2))
    g = jax.grad(lambda x: ops.max_pool_with_argmax(x, 2)[0].sum())(x)
    _, idx = ops.max_pool_with_argmax(x, 2)
    # gradient 1 at each window's argmax, 0 elsewhere
    expect = np.zeros((1, 2, 16))
    for ch in range(2):
        expect[0, ch, np.asarray(idx[0, ..., ch]).ravel()] = 1.0
    np.testing.assert_allclose(np.asarray(g).transpose(0, 3, 1, 2).reshape(1, 2, 16), expect)
    y = jax.random.normal(jax.random.key(4), (1, 2, 2, 2))
    w = jax.random.normal(jax.random.key(5), (1, 4, 4, 2))
    gy = jax.grad(lambda y: (ops.max_unpool(y, idx, (4, 4)) * w).sum())(y)
    # d/dy of sum(w * unpool(y)) = w gathered at the indices
    wf = np.asarray(w).transpose(0, 3, 1, 2).reshape(1, 2, 16)
    want = np.take_along_axis(wf, np.asarray(idx).transpose(0, 3, 1, 2).reshape(1, 2, 4), axis=2)
    np.testing.assert_allclose(np.asarray(gy).transpose(0, 3, 1, 2).reshape(1, 2, 4), want, rtol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="rank 4"):
        ops.max_pool_with_argmax(jnp.zeros((4, 4, 1)), 2)
    with pytest.raises(ValueError, match="shape of y"):
        ops.max_unpool(jnp.zeros((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 2), jnp.int32), (4, 4))
