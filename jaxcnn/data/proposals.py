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

import numpy as np

MAX_PROPOSALS = 160
CHUNK = 500
MIN_SIDE = 4.0
UPSCALE = 2


def selective_search(image: np.ndarray) -> np.ndarray:
    """Proposals of one (H, W, 1) uint8 canvas: float32 (MAX_PROPOSALS, 4) corners in canvas pixels
    (continuous: x2 = x + w), unused rows zero."""
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


def proposals(config: str, split: str, data_dir: str, images_of_split=None) -> np.ndarray:
    """Cached selective-search proposals of `split` (slice syntax allowed) of canvases config `config`:
    float32 (N, MAX_PROPOSALS, 4). images_of_split: the whole base split's images (read if None)."""
    from jaxcnn.data import canvases

    if images_of_split is None:
        images_of_split = canvases.read_split(config, split.split("[")[0], data_dir)["image"]
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
    import sys
    import time

    from jaxcnn.data.datasets import data_dir

    args = list(sys.argv[1:] if argv is None else argv)
    config = args.pop(0) if args else "default"
    for split in args or ["test", "train[:3000]"]:
        t = time.time()
        p = proposals(config, split, data_dir())
        n = (p[..., 2] > p[..., 0]).sum(1)
        print(f"{config} {split}: {len(p)} canvases, {n.mean():.1f} proposals each (max {n.max()}), "
              f"{time.time() - t:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
