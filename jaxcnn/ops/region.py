"""Pooling over regions: the spatial pyramid of SPP-net (He et al. 2014) and
the RoI max pooling of Fast R-CNN (Girshick 2015).

Images and feature maps are NHWC.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from jaxcnn._validation import as_float, as_int, as_pair, check_array, check_choice
from jaxcnn.ops.conv import check_image


def _bin_edges(size: int, level: int):
    """SPP-net's bins: bin i spans [floor(i*size/l), ceil((i+1)*size/l))."""
    return [(math.floor(i * size / level), math.ceil((i + 1) * size / level)) for i in range(level)]


def spatial_pyramid_pool(x, levels=(1, 2, 4), mode="max"):
    """Pool any-size feature maps to a fixed-length vector.

    Args:
      x: feature maps, NHWC, of any static H, W >= 1 (when a side is smaller
        than a level, SPP-net's floor/ceil edges make bins overlap).
      levels: pyramid levels; level l cuts the map into l x l bins whose edges
        along an axis of size S are floor(i*S/l) and ceil((i+1)*S/l).
      mode: "max" (SPP-net) or "avg".

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
        for (r0, r1) in _bin_edges(h, level):
            rows.append(jnp.stack([reduce(x[:, r0:r1, c0:c1, :], axis=(1, 2))
                                   for (c0, c1) in _bin_edges(w, level)], axis=1))
        outs.append(jnp.stack(rows, axis=1).reshape(n, level * level * c))
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
      (R, PH, PW, C). As in the reference layer: the box is scaled and rounded
      to feature cells (start = round(x1*s), end = round(x2*s)), its size is
      max(end - start + 1, 1), bin (i, j) spans rows
      [floor(i*h/PH), ceil((i+1)*h/PH)) + start clipped to the map, and an empty
      bin gives 0. jit-able: the boxes may be traced, the output size is static.
    """
    check_image(features, "features")
    check_array(boxes, "boxes", kind="real")
    spatial_scale = as_float(spatial_scale, "roi_pool spatial_scale", low=0, low_open=True, example=1 / 16)
    if getattr(boxes, "ndim", None) != 2 or boxes.shape[1] != 5:
        raise ValueError(f"boxes must be (R, 5) rows [batch_index, x1, y1, x2, y2], got shape "
                         f"{getattr(boxes, 'shape', None)}")
    ph, pw = as_pair(output_size, "roi_pool output_size")
    n, h, w, c = features.shape
    boxes = jnp.asarray(boxes, jnp.float32)
    bidx = boxes[:, 0].astype(jnp.int32)
    rnd = lambda v: jnp.floor(v * spatial_scale + 0.5)  # C round(): half away from zero
    x1, y1, x2, y2 = (rnd(boxes[:, k]) for k in (1, 2, 3, 4))
    roi_h = jnp.maximum(y2 - y1 + 1, 1.0)
    roi_w = jnp.maximum(x2 - x1 + 1, 1.0)

    def edges(start, size, bins, limit):
        i = jnp.arange(bins, dtype=jnp.float32)
        lo = jnp.floor(i[None] * (size[:, None] / bins)) + start[:, None]
        hi = jnp.ceil((i[None] + 1) * (size[:, None] / bins)) + start[:, None]
        return jnp.clip(lo, 0, limit), jnp.clip(hi, 0, limit)  # (R, bins)

    hlo, hhi = edges(y1, roi_h, ph, h)
    wlo, whi = edges(x1, roi_w, pw, w)
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
