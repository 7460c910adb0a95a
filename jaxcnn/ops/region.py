"""Pooling over regions: the spatial pyramid of SPP-net (He et al. 2014) and
the RoI max pooling of Fast R-CNN (Girshick 2015), and SPP-net's pyramid over
candidate windows of one feature map.

Images and feature maps are NHWC.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxcnn._validation import as_float, as_int, as_pair, check_array, check_choice
from jaxcnn.ops.conv import check_image


SPP_BINS = ("he", "adaptive")


def _bin_edges(size: int, level: int, bins: str = "he"):
    """The [start, end) of each of `level` bins along an axis of `size` cells.

    "he": He et al. 2014 (section 2.3): window ceil(size/level), stride floor(size/level), so bin i spans
      [i*floor(a/n), i*floor(a/n) + ceil(a/n)). As in the paper the bins may miss the last cells (a=10, n=4:
      windows 3, stride 2 cover 0..8) and, where size < level, repeat the first cell.
    "adaptive": bin i spans [floor(i*size/level), ceil((i+1)*size/level)) (torch's adaptive_max_pool2d): the
      bins tile the whole axis, overlapping where level does not divide size.
    """
    check_choice("bins", bins, SPP_BINS)
    if bins == "he":
        win, stride = -(-size // level), size // level
        return [(i * stride, i * stride + win) for i in range(level)]
    return [(math.floor(i * size / level), math.ceil((i + 1) * size / level)) for i in range(level)]


def spatial_pyramid_pool(x, levels=(1, 2, 4), mode="max", bins="he"):
    """Pool any-size feature maps to a fixed-length vector.

    Args:
      x: feature maps, NHWC, of any static H, W >= 1.
      levels: pyramid levels; level n cuts the map into n x n bins.
      mode: "max" (SPP-net) or "avg".
      bins: "he" (default: SPP-net's own arithmetic, window ceil(a/n) and stride floor(a/n) for an axis of a
        cells, which the paper implements as an ordinary pooling layer per level) or "adaptive" (bins that
        tile the axis, floor(i*a/n) to ceil((i+1)*a/n), as torch's adaptive pooling). See `_bin_edges`.

    Returns:
      (N, C * sum(l*l)): for each level in order, its (l, l, C) grid flattened in
      (row, col, channel) order, concatenated.
    """
    check_choice("mode", mode, ("max", "avg"))
    check_image(x, kind="real" if mode == "max" else "float")
    if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__") or not len(tuple(levels)):
        raise TypeError(f"levels must be a sequence of positive ints like (1, 2, 4), got {levels!r}")
    levels = tuple(as_int(level, "spatial_pyramid_pool level", minimum=1, example=2) for level in levels)
    reduce = jnp.max if mode == "max" else jnp.mean
    n, h, w, c = x.shape
    outs = []
    for level in levels:
        rows = []
        for (r0, r1) in _bin_edges(h, level, bins):
            rows.append(jnp.stack([reduce(x[:, r0:r1, c0:c1, :], axis=(1, 2))
                                   for (c0, c1) in _bin_edges(w, level, bins)], axis=1))
        outs.append(jnp.stack(rows, axis=1).reshape(n, level * level * c))
    return jnp.concatenate(outs, axis=1)


def _round_half_away(v):
    """C's round(): halves away from zero."""
    return jnp.sign(v) * jnp.floor(jnp.abs(v) + 0.5)


SPP_CORNERS = ("he", "round")


def _he_corners(lo, hi, scale, offset, limit):
    """He et al. 2014 (appendix): the left/top corner x to cell floor((x - o) / S) + 1, the right/bottom to
    ceil((x - o) / S) - 1, S = 1 / scale. In 0-based pixels with cell j's receptive-field centre at S j + o,
    these are the first and last cells whose centres lie strictly inside the window; the paper's nets
    (padding floor(p/2)) have o = 0, and its "proper offset" for other paddings is o. A window too small to
    hold a centre takes the one cell nearest its middle. Clipped to the map."""
    a = jnp.floor((lo - offset) * scale) + 1
    b = jnp.ceil((hi - offset) * scale) - 1
    mid = _round_half_away(((lo + hi) / 2 - offset) * scale)
    a, b = jnp.where(b < a, mid, a), jnp.where(b < a, mid, b)
    return jnp.clip(a, 0, limit - 1), jnp.clip(b, 0, limit - 1)


def _feature_boxes(features, boxes, spatial_scale, corners: str = "round", offset=None):
    """(batch index, x1, y1, x2, y2 as feature cells, corners inclusive) of (R, 5) image-pixel boxes.
    corners "round": round(x * scale) (Fast R-CNN's); "he": `_he_corners` with cell 0's receptive-field
    centre at `offset` pixels (None: (S - 1) / 2, the centre of a trunk of 2x2/2 poolings and padded 3x3
    convolutions)."""
    check_choice("corners", corners, SPP_CORNERS)
    check_image(features, "features")
    check_array(boxes, "boxes", kind="real")
    spatial_scale = as_float(spatial_scale, "spatial_scale", low=0, low_open=True, example=1 / 16)
    if getattr(boxes, "ndim", None) != 2 or boxes.shape[1] != 5:
        raise ValueError(f"boxes must be (R, 5) rows [batch_index, x1, y1, x2, y2], got shape "
                         f"{getattr(boxes, 'shape', None)}")
    boxes = jnp.asarray(boxes, jnp.float32)
    scale = jnp.float32(spatial_scale)
    if corners == "round":
        x1, y1, x2, y2 = (_round_half_away(boxes[:, k] * scale) for k in (1, 2, 3, 4))
    else:
        o = (1 / spatial_scale - 1) / 2 if offset is None else as_float(offset, "corner_offset", example=0.0)
        h, w = features.shape[1:3]
        x1, x2 = _he_corners(boxes[:, 1], boxes[:, 3], scale, jnp.float32(o), w)
        y1, y2 = _he_corners(boxes[:, 2], boxes[:, 4], scale, jnp.float32(o), h)
    return boxes[:, 0].astype(jnp.int32), x1, y1, x2, y2


def _pool_bins(features, bidx, hlo, hhi, wlo, whi):
    """Max of features[bidx] over rows [hlo, hhi) x cols [wlo, whi) per bin ((R, PH) and (R, PW) float edges,
    already clipped to the map); an empty bin gives 0. -> (R, PH, PW, C)."""
    n, h, w, c = features.shape
    hh = jnp.arange(h, dtype=jnp.float32)
    ww = jnp.arange(w, dtype=jnp.float32)
    mask_h = (hh[None, None] >= hlo[..., None]) & (hh[None, None] < hhi[..., None])  # (R, PH, H)
    mask_w = (ww[None, None] >= wlo[..., None]) & (ww[None, None] < whi[..., None])  # (R, PW, W)
    neg = jnp.array(-jnp.inf, features.dtype)
    feat = features[bidx]                                                     # (R, H, W, C)
    colmax = jnp.max(jnp.where(mask_w[:, None, :, :, None], feat[:, :, None], neg), axis=3)  # (R, H, PW, C)
    out = jnp.max(jnp.where(mask_h[:, :, :, None, None], colmax[:, None], neg), axis=2)      # (R, PH, PW, C)
    empty = (~jnp.any(mask_h, -1))[:, :, None] | (~jnp.any(mask_w, -1))[:, None, :]
    return jnp.where(empty[..., None], jnp.zeros((), features.dtype), out)


def roi_spatial_pyramid_pool(features, boxes, levels=(6, 3, 2, 1), spatial_scale=1 / 16, bins="he",
                             corners="he", corner_offset=None):
    """SPP-net's pooling of candidate windows (He et al. 2014, section 4): each window of the one feature map
    of its image is pooled by the spatial pyramid.

    Args:
      features: NHWC (N, H, W, C). boxes: (R, 5) rows [batch_index, x1, y1, x2, y2] in image pixels (0-based,
        corners inclusive). levels: the pyramid ({6, 3, 2, 1}, 50 bins: the paper's detector). bins: as
        `spatial_pyramid_pool`, with the window's size a (in cells) in place of the map's: "he" bins are
        [start + i*floor(a/n), start + i*floor(a/n) + ceil(a/n)), clipped to the map.
      corners: how a window's corners map to feature cells: "he" (He et al.'s appendix: left/top
        floor(x/S) + 1, right/bottom ceil(x/S) - 1 on x less the receptive-field offset `corner_offset`,
        default (S - 1) / 2, this library's trunks'; see `_he_corners`) or "round" (round(x * spatial_scale),
        as `roi_pool`).

    Returns:
      (R, C * sum(n*n)) in `spatial_pyramid_pool`'s order. jit-able (traced boxes, static levels).
    """
    bidx, x1, y1, x2, y2 = _feature_boxes(features, boxes, spatial_scale, corners,
                                          corner_offset)  # checks features and boxes first
    check_choice("bins", bins, SPP_BINS)
    if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__") or not len(tuple(levels)):
        raise TypeError(f"levels must be a sequence of positive ints like (1, 2, 4), got {levels!r}")
    levels = tuple(as_int(level, "roi_spatial_pyramid_pool level", minimum=1, example=2) for level in levels)
    n, h, w, c = features.shape
    roi_h = jnp.maximum(y2 - y1 + 1, 1.0).astype(jnp.int32)
    roi_w = jnp.maximum(x2 - x1 + 1, 1.0).astype(jnp.int32)

    def edges(start, size, level, limit):
        i = jnp.arange(level, dtype=jnp.int32)[None]
        if bins == "he":
            win, stride = -(-size // level), size // level
            lo = i * stride[:, None]
            hi = lo + win[:, None]
        else:
            lo = (i * size[:, None]) // level
            hi = -((-(i + 1) * size[:, None]) // level)
        lo = lo.astype(jnp.float32) + start[:, None]
        hi = hi.astype(jnp.float32) + start[:, None]
        return jnp.clip(lo, 0, limit), jnp.clip(hi, 0, limit)

    outs = []
    for level in levels:
        hlo, hhi = edges(y1, roi_h, level, h)
        wlo, whi = edges(x1, roi_w, level, w)
        outs.append(_pool_bins(features, bidx, hlo, hhi, wlo, whi).reshape(-1, level * level * c))
    return jnp.concatenate(outs, axis=1)


def roi_pool(features, boxes, output_size=(7, 7), spatial_scale=1 / 16):
    """Fast R-CNN's RoI max pooling.

    Args:
      features: shared feature maps, NHWC (N, H, W, C).
      boxes: (R, 5) rows [batch_index, x1, y1, x2, y2] in input-image pixel
        coordinates (x along width, y along height; corners inclusive, as in
        Fast R-CNN's Caffe layer).
      output_size: static (PH, PW) grid of each RoI.
      spatial_scale: feature-map pixels per image pixel (1/16 for VGG16 conv5).

    Returns:
      (R, PH, PW, C), equal to torchvision.ops.roi_pool (its CPU kernel,
      roi_pool_forward_kernel_impl) for every RoI, jitted or not: the box is
      scaled and rounded to feature cells (start = round(x1*s), end =
      round(x2*s), C's round), its size is a = max(end - start + 1, 1), the
      bin size b = a / PH in float32, bin i spans rows [floor(i*b),
      ceil((i+1)*b)) + start clipped to [0, H], and an empty bin gives 0.
      jit-able: the boxes may be traced, the output size is static.
    """
    bidx, x1, y1, x2, y2 = _feature_boxes(features, boxes, spatial_scale)  # checks features and boxes first
    ph, pw = as_pair(output_size, "roi_pool output_size")
    n, h, w, c = features.shape
    roi_h = jnp.maximum(y2 - y1 + 1, 1.0)
    roi_w = jnp.maximum(x2 - x1 + 1, 1.0)

    def edges(start, size, bins, limit):
        # torchvision's float32 arithmetic exactly: bin = size / bins (IEEE division), then floor(i * bin) and
        # ceil((i + 1) * bin). XLA rewrites a division by a constant into a multiplication by its reciprocal,
        # which rounds differently (21 * (1/7) > 3 in float32, so a bin reached one cell past the RoI); the
        # optimization barrier hides the constant, so the division stays a division, jitted or not.
        i = jnp.arange(bins, dtype=jnp.float32)
        bin_size = size / jax.lax.optimization_barrier(jnp.full(size.shape, bins, jnp.float32))
        lo = jnp.floor(i[None] * bin_size[:, None]) + start[:, None]
        hi = jnp.ceil((i[None] + 1) * bin_size[:, None]) + start[:, None]
        return jnp.clip(lo, 0, limit), jnp.clip(hi, 0, limit)  # (R, bins)

    hlo, hhi = edges(y1, roi_h, ph, h)
    wlo, whi = edges(x1, roi_w, pw, w)
    return _pool_bins(features, bidx, hlo, hhi, wlo, whi)
