"""Selective-search region proposals (Uijlings et al. 2013) for the garment
canvases, computed once and cached on disk: they are data.

The proposals are OpenCV's selective search
(`cv2.ximgproc.segmentation.createSelectiveSearchSegmentation`, from
opencv-contrib-python-headless) in its "fast" mode (HSV and Lab colour spaces,
k = 150 and 300, colour+fill+size+texture similarities), run on the 64x64 grey
canvas upscaled 2x (bilinear, 128x128: on 64 px the graph segmentation
merges too coarsely and finds 21 regions on average, recall 0.78 at IoU 0.5;
at 128 px it finds ~55, recall ~0.89) and mapped back to canvas pixels.
Boxes narrower or lower than 4 canvas px are dropped, duplicates merged, and
at most MAX_PROPOSALS kept in selective search's own order (its hierarchy:
small regions first).

    props = proposals("default", "test", 0, 2000, data_dir)   # float32 (N, 160, 4) x1, y1, x2, y2; 0-rows = none

Cache: <TFDS data dir>/fashion_mnist_canvases_proposals/<config>/<split>_<start>.npy, chunks of 500
canvases, so a slice computes only the chunks it needs (about 0.05-0.1 s a canvas on one core: the 2,000
test canvases take 2-4 minutes once). Delete the folder to recompute.
"""

from __future__ import annotations

import os
import re
import sys
import time

import numpy as np

from jaxcnn._extras import require

MAX_PROPOSALS = 160
CHUNK = 500
MIN_SIDE = 4.0
UPSCALE = 2


def selective_search(image: np.ndarray) -> np.ndarray:
    """Proposals of one (H, W, 1) uint8 canvas: float32 (MAX_PROPOSALS, 4) corners in canvas pixels
    (continuous: x2 = x + w), unused rows zero."""
    require("cv2")
    import cv2

    cv2.setNumThreads(1)
    h, w = image.shape[:2]
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    bgr = cv2.resize(bgr, (w * UPSCALE, h * UPSCALE), interpolation=cv2.INTER_LINEAR)
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(bgr)
    ss.switchToSelectiveSearchFast()
    r = ss.process().astype(np.float32) / UPSCALE
    r[:, 2] += r[:, 0]
    r[:, 3] += r[:, 1]
    r = r[((r[:, 2] - r[:, 0]) >= MIN_SIDE) & ((r[:, 3] - r[:, 1]) >= MIN_SIDE)]
    _, first = np.unique(r, axis=0, return_index=True)
    r = r[np.sort(first)][:MAX_PROPOSALS]
    out = np.zeros((MAX_PROPOSALS, 4), np.float32)
    out[:len(r)] = r
    return out


def parse_split(split: str, length: int) -> tuple[str, int, int]:
    """"train" / "train[:3000]" / "test[100:200]" -> (base, start, stop) within `length` examples."""
    m = re.fullmatch(r"(\w+)(?:\[(-?\d*):(-?\d*)\])?", split)
    if not m:
        raise ValueError(f"split {split!r}: use NAME or NAME[start:stop] with integer bounds.")
    start, stop, _ = slice(int(m.group(2)) if m.group(2) else None,
                           int(m.group(3)) if m.group(3) else None).indices(length)
    return m.group(1), start, stop


def cache_dir(data_dir: str, config: str) -> str:
    return os.path.join(data_dir, "fashion_mnist_canvases_proposals", config)


def proposals(config: str, split: str, data_dir: str, images_of_split) -> np.ndarray:
    """Cached selective-search proposals of `split` (slice syntax allowed) of canvases config `config`:
    float32 (N, MAX_PROPOSALS, 4). images_of_split: the whole base split's images (jaxcnn.data.canvases
    reads them)."""
    base, start, stop = parse_split(split, len(images_of_split))
    folder = cache_dir(data_dir, config)
    os.makedirs(folder, exist_ok=True)
    parts = []
    for c0 in range(start - start % CHUNK, stop, CHUNK):
        path = os.path.join(folder, f"{base}_{c0}.npy")
        c1 = min(c0 + CHUNK, len(images_of_split))
        if os.path.exists(path):
            chunk = np.load(path)
        else:
            chunk = np.stack([selective_search(im) for im in images_of_split[c0:c1]])
            tmp = f"{path}.{os.getpid()}.tmp.npy"
            np.save(tmp, chunk)
            os.replace(tmp, path)  # atomic: a killed run leaves no half chunk
        parts.append(chunk[max(start - c0, 0):min(stop, c1) - c0])
    return np.concatenate(parts) if parts else np.zeros((0, MAX_PROPOSALS, 4), np.float32)


def main(argv=None) -> int:
    """python -m jaxcnn.data.proposals [CONFIG] [SPLIT ...]: fill the cache (default: default test train[:3000])."""
    from jaxcnn.data.datasets import load  # the canvases' loader, which calls back into this module

    args = list(sys.argv[1:] if argv is None else argv)
    config = args.pop(0) if args else "default"
    name = "fashion_mnist_detection_ss" if config == "default" else f"fashion_mnist_detection_{config}_ss"
    for split in args or ["test", "train[:3000]"]:
        t = time.time()
        p = load(name, split).labels["proposals"]  # the canvases' loader fills the cache
        n = (p[..., 2] > p[..., 0]).sum(1)
        print(f"{config} {split}: {len(p)} canvases, {n.mean():.1f} proposals each (max {n.max()}), "
              f"{time.time() - t:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


WARP_SIZE = 32
CONTEXT = 2  # warped pixels of context on each side: R-CNN's p = 16 at 227 px, scaled to 32 px


def warp_crops(images: np.ndarray, image_index: np.ndarray, boxes: np.ndarray, size: int = WARP_SIZE,
               context: int = CONTEXT, chunk: int = 8192) -> np.ndarray:
    """R-CNN's "warp" of regions (appendix A): each (x1, y1, x2, y2) box of images[image_index] dilated so that
    `context` of the `size` warped pixels on each side show its surroundings, then resampled anisotropically
    (bilinear) to size x size; pixels outside the image take the image's mean. -> uint8 (M, size, size, C)."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    means = images.reshape(n, -1, c).mean(1)
    out = np.empty((len(boxes), size, size, c), np.uint8)
    grid = (np.arange(size) + 0.5) / size
    for s in range(0, len(boxes), chunk):
        b = np.asarray(boxes[s:s + chunk], np.float64)
        ii = np.asarray(image_index[s:s + chunk])
        bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        scale = size / (size - 2.0 * context)
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        x0, y0 = cx - bw * scale / 2, cy - bh * scale / 2
        xs = x0[:, None] + grid[None] * (bw * scale)[:, None] - 0.5  # (m, size) sample centres, pixel index space
        ys = y0[:, None] + grid[None] * (bh * scale)[:, None] - 0.5
        xl, yl = np.floor(xs).astype(int), np.floor(ys).astype(int)
        fx, fy = xs - xl, ys - yl

        def pix(yy, xx):  # (m, size, size, c) values, the mean outside the image
            inside = ((yy >= 0) & (yy < h))[:, :, None] & ((xx >= 0) & (xx < w))[:, None, :]
            v = images[ii[:, None, None], np.clip(yy, 0, h - 1)[:, :, None], np.clip(xx, 0, w - 1)[:, None, :]]
            return np.where(inside[..., None], v, means[ii][:, None, None, :])

        top = pix(yl, xl) * (1 - fx)[:, None, :, None] + pix(yl, xl + 1) * fx[:, None, :, None]
        bot = pix(yl + 1, xl) * (1 - fx)[:, None, :, None] + pix(yl + 1, xl + 1) * fx[:, None, :, None]
        v = top * (1 - fy)[:, :, None, None] + bot * fy[:, :, None, None]
        out[s:s + chunk] = np.clip(np.rint(v), 0, 255).astype(np.uint8)
    return out


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (A, 4) and (B, 4) continuous boxes -> (A, B)."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area = lambda z: np.clip(z[:, 2] - z[:, 0], 0, None) * np.clip(z[:, 3] - z[:, 1], 0, None)
    union = area(a)[:, None] + area(b)[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def rcnn_regions(boxes, classes, props, *, bg_per_fg: int = 3, seed: int = 0):
    """R-CNN's fine-tuning regions (section 2.3): every proposal and ground-truth box, labelled class + 1 at
    IoU >= 0.5 with a ground-truth box (its best), else 0 (background); all foreground kept and bg_per_fg
    times as many background regions drawn (seeded), so that uniform batches hold 1/(1+bg_per_fg) = 25%
    foreground (R-CNN: 32 of 128). -> (image_index (M,), boxes (M, 4), labels (M,) int32)."""
    rng = np.random.default_rng(seed)
    idx, regions, labels = [], [], []
    for i in range(len(boxes)):
        gt_ok = classes[i] >= 0
        gt, gc = boxes[i][gt_ok], classes[i][gt_ok]
        p = props[i][(props[i][:, 2] > props[i][:, 0]) & (props[i][:, 3] > props[i][:, 1])]
        cand = np.concatenate([p, gt])
        iou = iou_matrix(cand, gt)
        best = iou.max(1)
        lab = np.where(best >= 0.5, gc[iou.argmax(1)] + 1, 0)
        idx.append(np.full(len(cand), i))
        regions.append(cand)
        labels.append(lab)
    idx, regions, labels = np.concatenate(idx), np.concatenate(regions), np.concatenate(labels)
    fg, bg = np.flatnonzero(labels > 0), np.flatnonzero(labels == 0)
    bg = rng.choice(bg, min(len(bg), bg_per_fg * len(fg)), replace=False)
    keep = np.sort(np.concatenate([fg, bg]))
    return idx[keep], regions[keep].astype(np.float32), labels[keep].astype(np.int32)
