import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import ops
from jaxcnn.ops import region


def _ref_spp(x, levels, mode):
    """torch-style adaptive bins (bins="adaptive")."""
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
    y = ops.spatial_pyramid_pool(x, (1, 2, 4), mode, bins="adaptive")
    assert y.shape == (2, 3 * (1 + 4 + 16))
    np.testing.assert_allclose(y, _ref_spp(x, (1, 2, 4), mode), rtol=1e-5, atol=1e-6)


def test_spp_fixed_length_any_size():
    for hw in [(6, 6), (17, 9)]:
        assert ops.spatial_pyramid_pool(jnp.ones((1, *hw, 5)), (1, 2, 3, 6)).shape == (1, 5 * 50)
    with pytest.raises(ValueError, match="mode"):
        ops.spatial_pyramid_pool(jnp.ones((1, 4, 4, 1)), mode="median")


def _ref_roi(feat, boxes, ph, pw, scale):
    """torchvision's roi_pool_forward_kernel_impl (torchvision/csrc/ops/cpu/roi_pool_kernel.cpp) in NumPy, with
    its float32 arithmetic: roi_start = round(x1 * scale) (C round: halves away from zero), roi_w =
    max(roi_end - roi_start + 1, 1), bin_size = roi_w / pw (float32), start = floor(j * bin_size) + roi_start,
    end = ceil((j + 1) * bin_size) + roi_start, both clipped to [0, W]; an empty bin gives 0."""
    f32 = np.float32
    n, h, w, c = feat.shape
    out = np.zeros((len(boxes), ph, pw, c), np.float32)
    cround = lambda v: int(np.sign(v) * np.floor(np.abs(v) + f32(0.5)))
    for r, (b, x1, y1, x2, y2) in enumerate(boxes):
        sw, sh, ew, eh = (cround(f32(v) * f32(scale)) for v in (x1, y1, x2, y2))
        rh, rw = max(eh - sh + 1, 1), max(ew - sw + 1, 1)
        bh, bw = f32(rh) / f32(ph), f32(rw) / f32(pw)
        for i in range(ph):
            hs = min(max(int(np.floor(f32(i) * bh)) + sh, 0), h)
            he = min(max(int(np.ceil(f32(i + 1) * bh)) + sh, 0), h)
            for j in range(pw):
                ws = min(max(int(np.floor(f32(j) * bw)) + sw, 0), w)
                we = min(max(int(np.ceil(f32(j + 1) * bw)) + sw, 0), w)
                if he <= hs or we <= ws:
                    continue
                out[r, i, j] = feat[int(b), hs:he, ws:we].max(axis=(0, 1))
    return out


def _torchvision():
    try:
        import torch
        import torchvision
        return torch, torchvision
    except Exception:  # not installed, or built for another torch
        return None


def _all_sizes_boxes(h, w, sizes_h, sizes_w, offsets=(0, 3)):
    return np.array([[k % 2, o, o, o + bw - 1, o + bh - 1] for k, (bh, bw, o) in
                     enumerate((bh, bw, o) for bh in sizes_h for bw in sizes_w for o in offsets)], np.float32)


@pytest.mark.parametrize("output_size", [(7, 7), (3, 4), (6, 5), (21, 2), (1, 1)])
@pytest.mark.parametrize("jitted", [False, True])
def test_roi_pool_equals_torchvision_every_roi_size(output_size, jitted):
    # Every RoI height 1..40 against a few widths (and every width against a few heights), at two offsets, on
    # a 40x40 map at scale 1: the float32 bin arithmetic that XLA's reciprocal rewrite used to break (e.g. a
    # 21-cell RoI in 7 bins: 21 * (1/7) > 3, so bin 1 reached cell 6) is exercised for every size.
    feat = np.asarray(jax.random.normal(jax.random.key(3), (2, 40, 40, 2)))
    boxes = np.concatenate([_all_sizes_boxes(40, 40, range(1, 41), (1, 5, 7, 21, 37)),
                            _all_sizes_boxes(40, 40, (2, 14, 33), range(1, 41))])
    fn = jax.jit(ops.roi_pool, static_argnums=(2, 3)) if jitted else ops.roi_pool
    got = np.asarray(fn(feat, boxes, output_size, 1.0))
    want = _ref_roi(feat, boxes, *output_size, 1.0)
    bad = np.flatnonzero(np.abs(got - want).reshape(len(boxes), -1).max(1) > 0)
    assert bad.size == 0, f"{bad.size} RoIs differ, first {boxes[bad[0]]}"


@pytest.mark.parametrize("jitted", [False, True])
def test_roi_pool_equals_torchvision_fractional_boxes(jitted):
    # Random real-valued boxes (negative, past the map, halves that round away from zero) at scale 1/16.
    rng = np.random.default_rng(0)
    feat = np.asarray(jax.random.normal(jax.random.key(4), (3, 14, 11, 3)))
    xy = rng.uniform(-40, 260, (400, 4)).astype(np.float32)
    xy[:50] = np.round(xy[:50] / 8) * 8 + 8  # x*s lands on halves: C's round
    boxes = np.concatenate([rng.integers(0, 3, (400, 1)).astype(np.float32),
                            np.minimum(xy[:, :2], xy[:, 2:]), np.maximum(xy[:, :2], xy[:, 2:])], 1)
    fn = jax.jit(ops.roi_pool, static_argnums=(2, 3)) if jitted else ops.roi_pool
    for size in [(7, 7), (5, 3)]:
        np.testing.assert_array_equal(fn(feat, boxes, size, 1 / 16), _ref_roi(feat, boxes, *size, 1 / 16))


def test_roi_pool_against_torchvision_itself():
    tv = _torchvision()
    if tv is None:
        pytest.skip("torchvision does not import beside this torch; the NumPy port of its kernel is the reference")
    torch, torchvision = tv
    feat = np.asarray(jax.random.normal(jax.random.key(5), (2, 30, 30, 2)))
    boxes = _all_sizes_boxes(30, 30, range(1, 31), (1, 7, 21))
    want = torchvision.ops.roi_pool(torch.from_numpy(feat).permute(0, 3, 1, 2), torch.from_numpy(boxes),
                                    (7, 7), 1.0).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(jax.jit(ops.roi_pool, static_argnums=(2, 3))(feat, boxes, (7, 7), 1.0), want)


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


def test_spp_he_windows_by_arithmetic():
    # He et al. 2014, section 2.3: a 13x13 conv5 and a 3-level pyramid {3x3, 2x2, 1x1}: window ceil(a/n),
    # stride floor(a/n): [pool3x3: 5/4, pool2x2: 7/6, pool1x1: 13/13].
    assert [(b - a) for a, b in region._bin_edges(13, 3)] == [5, 5, 5]
    assert [a for a, _ in region._bin_edges(13, 3)] == [0, 4, 8]
    assert region._bin_edges(13, 2) == [(0, 7), (6, 13)]
    assert region._bin_edges(13, 1) == [(0, 13)]
    assert region._bin_edges(13, 6) == [(0, 3), (2, 5), (4, 7), (6, 9), (8, 11), (10, 13)]
    # the paper's arithmetic can leave the last cells out (a=10, n=4: windows 3, stride 2) ...
    assert region._bin_edges(10, 4) == [(0, 3), (2, 5), (4, 7), (6, 9)]
    # ... where adaptive bins tile the axis
    assert region._bin_edges(10, 4, "adaptive") == [(0, 3), (2, 5), (5, 8), (7, 10)]
    x = jnp.arange(10.0).reshape(1, 1, 10, 1) * jnp.ones((1, 10, 1, 1))
    np.testing.assert_array_equal(ops.spatial_pyramid_pool(x, (4,))[0, :4], [2, 4, 6, 8])
    np.testing.assert_array_equal(ops.spatial_pyramid_pool(x, (4,), bins="adaptive")[0, :4], [2, 4, 7, 9])
    with pytest.raises(ValueError, match="bins"):
        ops.spatial_pyramid_pool(x, (4,), bins="torch")


def test_roi_spp_equals_spp_of_the_cropped_window():
    # A window pooled inside the whole map equals the pyramid of the map cropped to that window.
    feat = jax.random.normal(jax.random.key(6), (2, 12, 11, 3))
    boxes = np.array([[0, 0, 0, 10, 11], [1, 16, 8, 55, 40], [1, 8, 8, 8, 8], [0, 24, 32, 87, 95]], np.float32)
    scale = 1 / 8
    for bins in ("he", "adaptive"):
        got = jax.jit(ops.roi_spatial_pyramid_pool, static_argnums=(2, 3, 4, 5))(feat, boxes, (1, 2, 4), scale,
                                                                                   bins, "round")
        for r, (b, x1, y1, x2, y2) in enumerate(boxes):
            c0, r0, c1, r1 = (int(np.floor(v * scale + 0.5)) for v in (x1, y1, x2, y2))
            crop = feat[int(b):int(b) + 1, r0:min(r1 + 1, 12), c0:min(c1 + 1, 11)]
            if crop.shape[1] == r1 - r0 + 1 and crop.shape[2] == c1 - c0 + 1:  # windows inside the map
                np.testing.assert_allclose(got[r], ops.spatial_pyramid_pool(crop, (1, 2, 4), bins=bins)[0])
        assert got.shape == (4, 3 * 21)


def test_he_corner_mapping_worked_by_hand():
    # He et al. 2014, appendix: a window's left/top corner x maps to cell floor(x/S) + 1, its right/bottom to
    # ceil(x/S) - 1 (S = 1 / spatial_scale), for nets whose cell j (0-based) has its receptive-field centre at
    # pixel S*j (0-based): the first and last cells whose centres lie strictly inside the window. Here, after
    # two 2x2/2 poolings (S = 4), cell j covers pixels 4j .. 4j + 3, centre 4j + 1.5: the formula on x - 1.5.
    # A 16x16 image's 4x4 map; cell (r, c) holds 10 r + c, so the level-1 max names the bottom-right cell and
    # the max of the negated map the top-left one.
    feat = (10 * jnp.arange(4.0)[:, None] + jnp.arange(4.0)[None, :]).reshape(1, 4, 4, 1)

    def cells(box, **kw):
        b = np.array([[0, *box]], np.float32)
        hi = int(ops.roi_spatial_pyramid_pool(feat, b, (1,), 0.25, **kw)[0, 0])
        lo = -int(ops.roi_spatial_pyramid_pool(-feat, b, (1,), 0.25, **kw)[0, 0])
        return (lo // 10, lo % 10), (hi // 10, hi % 10)  # ((top row, left col), (bottom row, right col))

    # x from 2 to 9: centres 1.5, 5.5, 9.5 -> only 5.5 is inside; floor(0.5/4) + 1 = 1, ceil(7.5/4) - 1 = 1.
    assert cells((2, 2, 9, 9)) == ((1, 1), (1, 1))
    # the whole image, 0 to 15: floor(-1.5/4) + 1 = 0, ceil(13.5/4) - 1 = 3: every cell.
    assert cells((0, 0, 15, 15)) == ((0, 0), (3, 3))
    # x 5..14, y 0..9: columns floor(3.5/4) + 1 = 1 to ceil(12.5/4) - 1 = 3; rows 0 to 1.
    assert cells((5, 0, 14, 9)) == ((0, 1), (1, 3))
    # 6..7 holds no centre (floor(4.5/4) + 1 = 2 > ceil(5.5/4) - 1 = 1): the cell nearest its middle,
    # round((6.5 - 1.5) / 4) = 1.
    assert cells((6, 6, 7, 7)) == ((1, 1), (1, 1))
    # The paper's own nets (centre of cell j at S*j, corner_offset=0): x = 0 -> floor(0) + 1 = 1 (the centre
    # on the corner is not strictly inside), 15 -> ceil(3.75) - 1 = 3; and Fast R-CNN's rounding keeps 0.
    assert cells((0, 0, 15, 15), corner_offset=0.0) == ((1, 1), (3, 3))
    assert cells((2, 2, 9, 9), corners="round") == ((1, 1), (2, 2))  # round(0.5) = 1, round(2.25) = 2
    with pytest.raises(ValueError, match="corners"):
        ops.roi_spatial_pyramid_pool(feat, np.zeros((1, 5), np.float32), (1,), 0.25, corners="floor")
