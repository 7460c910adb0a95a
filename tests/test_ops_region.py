import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import ops


def _ref_spp(x, levels, mode):
    n, h, w, c = x.shape
    red = np.max if mode == "max" else np.mean
    out = []
    for b in range(n):
        v = []
        for l in levels:
            for i in range(l):
                for j in range(l):
                    r0, r1 = math.floor(i * h / l), math.ceil((i + 1) * h / l)
                    c0, c1 = math.floor(j * w / l), math.ceil((j + 1) * w / l)
                    v.extend(red(x[b, r0:r1, c0:c1, :], axis=(0, 1)))
        out.append(v)
    return np.array(out, np.float32)


@pytest.mark.parametrize("hw", [(13, 13), (10, 7), (3, 5)])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_spp_matches_loop(hw, mode):
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, *hw, 3)))
    y = ops.spatial_pyramid_pool(x, (1, 2, 4), mode)
    assert y.shape == (2, 3 * (1 + 4 + 16))
    np.testing.assert_allclose(y, _ref_spp(x, (1, 2, 4), mode), rtol=1e-5, atol=1e-6)


def test_spp_fixed_length_any_size():
    for hw in [(6, 6), (17, 9)]:
        assert ops.spatial_pyramid_pool(jnp.ones((1, *hw, 5)), (1, 2, 3, 6)).shape == (1, 5 * 50)
    with pytest.raises(ValueError, match="mode"):
        ops.spatial_pyramid_pool(jnp.ones((1, 4, 4, 1)), mode="median")


def _ref_roi(feat, boxes, ph, pw, scale):
    n, h, w, c = feat.shape
    out = np.zeros((len(boxes), ph, pw, c), np.float32)
    for r, (b, x1, y1, x2, y2) in enumerate(boxes):
        rnd = lambda v: int(math.floor(v * scale + 0.5))
        sw, sh, ew, eh = rnd(x1), rnd(y1), rnd(x2), rnd(y2)
        rh, rw = max(eh - sh + 1, 1), max(ew - sw + 1, 1)
        bh, bw = rh / ph, rw / pw
        for i in range(ph):
            for j in range(pw):
                hs = min(max(math.floor(i * bh) + sh, 0), h); he = min(max(math.ceil((i + 1) * bh) + sh, 0), h)
                ws = min(max(math.floor(j * bw) + sw, 0), w); we = min(max(math.ceil((j + 1) * bw) + sw, 0), w)
                if he <= hs or we <= ws:
                    continue
                out[r, i, j] = feat[int(b), hs:he, ws:we].max(axis=(0, 1))
    return out


def test_roi_pool_matches_loop():
    feat = np.asarray(jax.random.normal(jax.random.key(1), (2, 12, 10, 4)))
    boxes = np.array([[0, 0, 0, 159, 191],      # the whole 160x192 image
                      [1, 16, 32, 80, 70],
                      [1, 3, 5, 9, 7],          # smaller than a cell
                      [0, 100, 150, 400, 400],  # runs off the map
                      [0, 500, 500, 600, 600]], np.float32)  # entirely outside: zeros
    y = jax.jit(ops.roi_pool, static_argnames=("output_size", "spatial_scale"))(
        feat, boxes, output_size=(3, 4), spatial_scale=1 / 16)
    assert y.shape == (5, 3, 4, 4)
    np.testing.assert_allclose(y, _ref_roi(feat, boxes, 3, 4, 1 / 16), rtol=1e-6)
    np.testing.assert_array_equal(y[4], 0)


def test_roi_pool_hand_case():
    # a 4x4 map 0..15, one box covering it at scale 1, pooled to 2x2: maxima of quadrants
    feat = jnp.arange(16.0).reshape(1, 4, 4, 1)
    y = ops.roi_pool(feat, jnp.array([[0, 0, 0, 3, 3]]), (2, 2), 1.0)
    np.testing.assert_array_equal(y[0, :, :, 0], [[5, 7], [13, 15]])
    with pytest.raises(ValueError, match=r"\(R, 5\)"):
        ops.roi_pool(feat, jnp.zeros((1, 4)), (2, 2), 1.0)
