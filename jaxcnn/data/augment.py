"""Augmentation and preprocessing as pure, jit-able functions of a key.

Images are NHWC. Every random function takes a `jax.random` key and a batch
and returns a new batch; the same key gives the same result.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# AlexNet's ImageNet RGB covariance eigen-decomposition (Krizhevsky et al. 2012, sec. 4.1),
# values as used by fb.resnet.torch for pixels scaled to [0, 1].
IMAGENET_PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
IMAGENET_PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                                [-0.5808, -0.0045, -0.8140],
                                [-0.5836, -0.6948, 0.4203]], np.float32)


def pad(images, padding: int, mode: str = "constant"):
    """Pad height and width by `padding` on every side, e.g. LeNet-5's 28 -> 32 (padding=2)."""
    p = int(padding)
    return jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode)


def random_crop(key, images, padding: int):
    """Pad by `padding` with zeros, then crop each image back to its size at a random offset."""
    n, h, w, c = images.shape
    padded = pad(images, padding)
    offsets = jax.random.randint(key, (n, 2), 0, 2 * padding + 1)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, offsets)


def random_flip(key, images):
    """Flip each image left-right with probability 1/2."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
    return jnp.where(flip, images[:, :, ::-1, :], images)


def normalize(images, mean: Sequence[float], std: Sequence[float]):
    """(x - mean) / std per channel; images already scaled to [0, 1]."""
    return (images - jnp.asarray(mean, images.dtype)) / jnp.asarray(std, images.dtype)


def pca_color_jitter(key, images, scale: float = 0.1, eigval=IMAGENET_PCA_EIGVAL, eigvec=IMAGENET_PCA_EIGVEC):
    """AlexNet's colour augmentation: add eigvec @ (alpha * eigval), alpha ~ N(0, scale), per image (RGB, [0, 1])."""
    alpha = scale * jax.random.normal(key, (images.shape[0], 3), images.dtype)
    delta = (alpha * jnp.asarray(eigval)) @ jnp.asarray(eigvec).T
    return images + delta[:, None, None, :]


def make_preprocess(*, mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,), pad_to: Optional[int] = None,
                    crop_padding: int = 0, flip: bool = False, pca_jitter: float = 0.0, to_rgb: bool = False,
                    resize_to: Optional[int] = None, dtype=jnp.float32) -> Callable:
    """A pure `preprocess(images, key, train) -> float images` (NHWC).

    Always: scale uint8 to [0, 1], resize bilinearly to `resize_to` x `resize_to`
    (nets whose strides need larger inputs), repeat a grey channel three times if
    `to_rgb` (RGB-only models on grey data), pad to `pad_to` (LeNet's 28 -> 32),
    normalise per channel. In training only: random crop with `crop_padding`, horizontal
    flip, PCA colour jitter of scale `pca_jitter`. `key` may be None when not
    training.
    """

    def preprocess(images, key, train: bool):
        x = images.astype(dtype)
        if jnp.issubdtype(images.dtype, jnp.integer):
            x = x / 255.0
        if resize_to is not None and tuple(x.shape[1:3]) != (resize_to, resize_to):
            x = jax.image.resize(x, (x.shape[0], resize_to, resize_to, x.shape[-1]), "bilinear")
        if to_rgb and x.shape[-1] == 1:
            x = jnp.repeat(x, 3, axis=-1)
        if pad_to is not None and pad_to > x.shape[1]:
            p = (pad_to - x.shape[1]) // 2
            x = pad(x, p)
        if train:
            k_crop, k_flip, k_pca = jax.random.split(key, 3)
            if crop_padding:
                x = random_crop(k_crop, x, crop_padding)
            if flip:
                x = random_flip(k_flip, x)
            if pca_jitter:
                x = pca_color_jitter(k_pca, x, pca_jitter)
        return normalize(x, mean, std)

    return preprocess
