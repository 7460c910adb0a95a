"""Synthetic shapes for semantic segmentation: noisy canvases with 1-3 filled
shapes (circle, square, triangle) of random colours, sizes and positions, and
per-pixel class maps (0 background, 1 circle, 2 square, 3 triangle; a later
shape is drawn over an earlier one). Generated with a seeded NumPy generator,
no download. Dataset name "synthetic_shapes".
"""

from __future__ import annotations

import numpy as np

from jaxcnn.data.datasets import ArrayDataset

CLASSES = ("background", "circle", "square", "triangle")


def draw(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (n, size, size, 3) NHWC, about [0, 1] plus noise; labels int32 (n, size, size))."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    images = np.empty((n, size, size, 3), np.float32)
    labels = np.zeros((n, size, size), np.int32)
    for b in range(n):
        img = np.broadcast_to(rng.uniform(0, 1, 3), (size, size, 3)).copy()
        for _ in range(rng.integers(1, 4)):
            cls = int(rng.integers(1, 4))
            r = rng.uniform(0.12, 0.25) * size
            cx, cy = rng.uniform(r, size - r, 2)
            if cls == 1:
                mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            elif cls == 2:
                mask = (np.abs(xx - cx) <= r * 0.85) & (np.abs(yy - cy) <= r * 0.85)
            else:  # upward triangle: apex at top, base at the bottom
                top, bot = cy - r, cy + r
                half = (yy - top) / (2 * r) * r * 1.1
                mask = (yy >= top) & (yy <= bot) & (np.abs(xx - cx) <= half)
            colour = rng.uniform(0, 1, 3)
            while np.abs(colour - img[0, 0]).sum() < 0.4:
                colour = rng.uniform(0, 1, 3)
            img[mask] = colour
            labels[b][mask] = cls
        images[b] = img + rng.normal(0, 0.05, img.shape)
    return images, labels


def shapes(split: str, *, size: int = 32, count: int = 4096, seed: int = 0) -> ArrayDataset:
    """`count` canvases of `size` x `size`; the "test" split is drawn from another stream than "train"."""
    if size < 8 or count < 1:
        raise ValueError(f"synthetic_shapes needs size >= 8 and count >= 1, got size={size}, count={count}.")
    rng = np.random.default_rng([int(seed), 0 if split == "train" else 1])
    images, labels = draw(rng, count, size)
    return ArrayDataset(images, labels, len(CLASSES))
