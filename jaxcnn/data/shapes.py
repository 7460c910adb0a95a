"""Synthetic shapes for semantic segmentation: noisy canvases with 1-3 filled
shapes (circle, square, triangle) of random colours, sizes and positions, and
per-pixel class maps (0 background, 1 circle, 2 square, 3 triangle; a later
shape is drawn over an earlier one). Generated with a seeded NumPy generator,
no download. Dataset name "synthetic_shapes".
"""

from __future__ import annotations

import numpy as np

from jaxcnn.data.arrays import ArrayDataset

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


SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring")


def _mask(kind: str, yy, xx, cx, cy, r):
    if kind == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if kind == "square":
        return (np.abs(xx - cx) <= r * 0.8) & (np.abs(yy - cy) <= r * 0.8)
    if kind == "triangle":
        half = (yy - (cy - r)) / 2 * 1.1
        return (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= half)
    if kind == "cross":
        bar = r * 0.3
        return ((np.abs(xx - cx) <= bar) & (np.abs(yy - cy) <= r)) | ((np.abs(yy - cy) <= bar) & (np.abs(xx - cx) <= r))
    d2 = (xx - cx) ** 2 + (yy - cy) ** 2  # ring
    return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)


def shape_classes(split: str, *, size: int = 28, count: int = 12000, seed: int = 0) -> ArrayDataset:
    """One white shape per grey canvas (uint8 (N, size, size, 1), like Fashion-MNIST's layout), labelled by
    its kind (SHAPE_CLASSES: circle, square, triangle, cross, ring), at a random position, size and
    brightness over a noisy dark background. Dataset name "synthetic_shape_classes": a domain unlike
    garments, for transfer experiments."""
    if size < 12 or count < 1:
        raise ValueError(f"synthetic_shape_classes needs size >= 12 and count >= 1, got {size}, {count}.")
    rng = np.random.default_rng([int(seed), 2 if split == "train" else 3])
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    labels = rng.integers(0, len(SHAPE_CLASSES), count).astype(np.int32)
    images = np.empty((count, size, size, 1), np.uint8)
    for i, label in enumerate(labels):
        r = rng.uniform(0.22, 0.4) * size
        cx, cy = rng.uniform(r, size - r, 2)
        canvas = rng.normal(30, 12, (size, size))
        canvas[_mask(SHAPE_CLASSES[label], yy, xx, cx, cy, r)] = rng.uniform(150, 255)
        images[i, ..., 0] = np.clip(canvas, 0, 255).astype(np.uint8)
    return ArrayDataset(images, labels, len(SHAPE_CLASSES))


def shapes_split(split, *, shape, size, num_classes, seed) -> ArrayDataset:
    """Dataset "synthetic_shapes" for the registry: canvases of synthetic_shape[0] pixels, synthetic_size of them."""
    return shapes(split, size=int(shape[0]), count=size)


def shape_classes_split(split, *, shape, size, num_classes, seed) -> ArrayDataset:
    """Dataset "synthetic_shape_classes" for the registry."""
    return shape_classes(split, size=int(shape[0]), count=size)
