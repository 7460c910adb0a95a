"""Augmentation and preprocessing as pure, jit-able functions of a key.

Images are NHWC. Every random function takes a `jax.random` key and a batch
and returns a new batch; the same key gives the same result.
"""

from __future__ import annotations

import math
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

# config.augment: the on-device training augmentation presets (jaxcnn.train.setup.make_preprocess_fn)
AUGMENTS = ("none", "flip_crop", "trivial")
FLIP_CROP_PADDING = 2  # augment="flip_crop" pads by this when preprocess.crop_padding is 0

# TrivialAugment's wide search space (Muller & Hutter 2021, torchvision's TrivialAugmentWide): one op per image,
# drawn uniformly, at a strength drawn uniformly from TRIVIAL_BINS levels.
TRIVIAL_OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color",
               "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize")
TRIVIAL_BINS = 31


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
                    resize_to: Optional[int] = None, trivial: bool = False, dtype=jnp.float32) -> Callable:
    """A pure `preprocess(images, key, train) -> float images` (NHWC).

    Always: scale uint8 to [0, 1], resize bilinearly to `resize_to` x `resize_to`
    (nets whose strides need larger inputs), repeat a grey channel three times if
    `to_rgb` (RGB-only models on grey data), pad to `pad_to` (LeNet's 28 -> 32),
    normalise per channel. In training only: random crop with `crop_padding`, horizontal
    flip, TrivialAugment wide if `trivial` (trivial_augment; on [0, 1] images, before
    the normalisation), PCA colour jitter of scale `pca_jitter`. `key` may be None when
    not training.
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
            if trivial:
                x = trivial_augment(jax.random.fold_in(key, 3), x)
            if pca_jitter:
                x = pca_color_jitter(k_pca, x, pca_jitter)
        return normalize(x, mean, std)

    return preprocess


# --- TrivialAugment (wide), on the device -----------------------------------------------------------------------

def _grey(x):
    """Luminance (ITU-R 601-2, as PIL's "L") of NHWC images, keeping a channel axis; grey images are their own."""
    if x.shape[-1] == 3:
        return jnp.tensordot(x, jnp.asarray([0.299, 0.587, 0.114], x.dtype), axes=1)[..., None]
    return x


def _blend(x, other, factor):
    """PIL's ImageEnhance: other + factor * (x - other), clipped to [0, 1]; factor (N,)."""
    f = factor[:, None, None, None]
    return jnp.clip(other + f * (x - other), 0.0, 1.0)


def _smooth(x):
    """PIL's SMOOTH filter (3x3, centre 5, others 1, / 13) inside; the one-pixel border kept (as PIL does)."""
    h, w = x.shape[1:3]
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    total = sum(p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) + 4 * x
    smooth = total / 13.0
    inside = (jnp.arange(h)[:, None] > 0) & (jnp.arange(h)[:, None] < h - 1) & \
             (jnp.arange(w)[None, :] > 0) & (jnp.arange(w)[None, :] < w - 1)
    return jnp.where(inside[None, :, :, None], smooth, x)


def _equalize_channel(v):
    """PIL's ImageOps.equalize of one channel of 8-bit levels (int32 (H, W))."""
    hist = jnp.zeros((256,), jnp.int32).at[v.ravel()].add(1)
    last = hist[jnp.max(jnp.where(hist > 0, jnp.arange(256), 0))]
    step = (v.size - last) // 255
    before = jnp.cumsum(hist) - hist  # pixels below each level
    lut = jnp.minimum((before + step // 2) // jnp.maximum(step, 1), 255)
    return jnp.where(step == 0, v, lut[v])


def _warp(images, inverse):
    """Nearest-neighbour affine warp, fill 0: output pixel (y, x) reads input inverse[i] @ (x, y, 1)."""
    n, h, w, c = images.shape
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    grid = jnp.stack([xs.ravel(), ys.ravel(), jnp.ones(h * w)], 0)  # (3, HW)

    def one(img, m):
        src = m @ grid
        sx, sy = jnp.round(src[0]).astype(jnp.int32), jnp.round(src[1]).astype(jnp.int32)
        inside = (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
        out = img[jnp.clip(sy, 0, h - 1), jnp.clip(sx, 0, w - 1)]
        return jnp.where(inside[:, None], out, 0.0).reshape(h, w, c)

    return jax.vmap(one)(images, inverse)


def trivial_augment(key, images, num_bins: int = TRIVIAL_BINS):
    """TrivialAugment wide on NHWC images in [0, 1]: each image gets one op of TRIVIAL_OPS, drawn uniformly, at
    a level drawn uniformly from `num_bins` (0 = weakest), with a random sign where the op has one. Strengths as
    torchvision's TrivialAugmentWide: shear up to 0.99, translation up to the image's size (32 px on 32 px),
    rotation up to 135 degrees, brightness/colour/contrast/sharpness factors 1 +- 0.99, posterize to 8..2 bits,
    solarize at thresholds 1..0; autocontrast, equalize and identity have none. Geometric ops are
    nearest-neighbour, filled with 0. Pure: the same key gives the same images."""
    n = images.shape[0]
    k_op, k_level, k_sign = jax.random.split(key, 3)
    op = jax.random.randint(k_op, (n,), 0, len(TRIVIAL_OPS))
    level = jax.random.randint(k_level, (n,), 0, num_bins).astype(jnp.float32) / (num_bins - 1)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n,)), -1.0, 1.0)
    return trivial_op(images, op, level, sign)


def trivial_op(images, op, level, sign):
    """Op TRIVIAL_OPS[op[i]] at strength level[i] in [0, 1] (the top of its range at 1) and direction sign[i]
    (+1 or -1) on image i (NHWC, in [0, 1]); see trivial_augment."""
    n, h, w, c = images.shape
    x = images.astype(jnp.float32)
    level = jnp.asarray(level, jnp.float32)
    sign = jnp.asarray(sign, jnp.float32)
    is_op = {name: op == i for i, name in enumerate(TRIVIAL_OPS)}

    # Geometric ops: one inverse affine map per image (identity for the others). Shears about the top-left corner
    # (as torchvision), rotation about the centre.
    shear = 0.99 * level * sign
    shift = level * sign
    angle = math.radians(135.0) * level * sign
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    zero, one = jnp.zeros(n), jnp.ones(n)
    rot = jnp.stack([jnp.stack([cos, -sin, cx - cos * cx + sin * cy], -1),
                     jnp.stack([sin, cos, cy - sin * cx - cos * cy], -1),
                     jnp.stack([zero, zero, one], -1)], 1)
    eye = jnp.broadcast_to(jnp.eye(3), (n, 3, 3))
    m = eye
    m = jnp.where(is_op["shear_x"][:, None, None], eye.at[:, 0, 1].set(-shear), m)
    m = jnp.where(is_op["shear_y"][:, None, None], eye.at[:, 1, 0].set(-shear), m)
    m = jnp.where(is_op["translate_x"][:, None, None], eye.at[:, 0, 2].set(-shift * w), m)
    m = jnp.where(is_op["translate_y"][:, None, None], eye.at[:, 1, 2].set(-shift * h), m)
    m = jnp.where(is_op["rotate"][:, None, None], rot, m)
    out = _warp(x, m)

    factor = 1.0 + 0.99 * level * sign
    grey = _grey(x)
    levels = jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.int32)
    drop = (2 ** (jnp.round(level * 6.0))).astype(jnp.int32)[:, None, None, None]  # 8 - bits low bits cleared
    lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    equalized = jax.vmap(jax.vmap(_equalize_channel, in_axes=-1, out_axes=-1))(levels)
    colour = {
        "brightness": _blend(x, jnp.zeros_like(x), factor),
        "color": _blend(x, jnp.broadcast_to(grey, x.shape), factor),
        "contrast": _blend(x, jnp.broadcast_to(grey.mean(axis=(1, 2, 3), keepdims=True), x.shape), factor),
        "sharpness": _blend(x, _smooth(x), factor),
        "posterize": ((levels // drop) * drop).astype(jnp.float32) / 255.0,
        "solarize": jnp.where(x >= (1.0 - level)[:, None, None, None], 1.0 - x, x),
        "autocontrast": jnp.where(hi > lo, (x - lo) / jnp.where(hi > lo, hi - lo, 1.0), x),
        "equalize": equalized.astype(jnp.float32) / 255.0,
    }
    for name, value in colour.items():
        out = jnp.where(is_op[name][:, None, None, None], value, out)
    return out.astype(images.dtype)


# --- Mixup and CutMix, on the device ----------------------------------------------------------------------------

def cutmix_box(key, lam, height: int, width: int):
    """CutMix's box (Yun et al. 2019): a (height, width) bool mask of a box of about (1 - lam) of the image at a
    uniformly random centre, clipped to the image; and lam recomputed from the clipped box's area."""
    k_y, k_x = jax.random.split(key)
    ratio = jnp.sqrt(1.0 - lam)
    cut_h, cut_w = jnp.floor(height * ratio).astype(jnp.int32), jnp.floor(width * ratio).astype(jnp.int32)
    cy, cx = jax.random.randint(k_y, (), 0, height), jax.random.randint(k_x, (), 0, width)
    y1, y2 = jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height)
    x1, x2 = jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width)
    rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
    box = (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)
    return box, 1.0 - ((y2 - y1) * (x2 - x1)).astype(jnp.float32) / (height * width)


def mix_batch(key, images, *, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0,
              switch_prob: float = 0.5):
    """Mixup or CutMix of a batch with the batch reversed (image i with image N-1-i), one lambda per batch (timm's
    batch mode). Returns (images, lam): the loss is lam * loss(labels) + (1 - lam) * loss(labels reversed).

    lam ~ Beta(alpha, alpha). With both alphas > 0 a batch uses CutMix with probability `switch_prob`, else
    mixup; with probability 1 - `prob` it is not mixed (lam = 1). CutMix pastes the reversed batch's box and
    lam is the share of the image left unpasted. Pure: the same key gives the same batch."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return images, jnp.ones((), jnp.float32)
    k_apply, k_switch, k_beta, k_box = jax.random.split(key, 4)
    reverse = images[::-1]
    alphas = [a for a in (mixup_alpha, cutmix_alpha) if a > 0]
    # one Beta draw for both (its Gamma sampler is a loop that takes seconds to compile: once, not twice)
    draws = jax.random.beta(k_beta, jnp.asarray(alphas), jnp.asarray(alphas)).astype(jnp.float32)
    candidates = []
    if mixup_alpha > 0:
        lam = draws[0]
        candidates.append((lam * images + (1.0 - lam) * reverse, lam))
    if cutmix_alpha > 0:
        box, lam = cutmix_box(k_box, draws[-1], images.shape[1], images.shape[2])
        candidates.append((jnp.where(box[None, :, :, None], reverse, images), lam))
    mixed, lam = candidates[0]
    if len(candidates) == 2:
        use_cut = jax.random.bernoulli(k_switch, switch_prob)
        mixed, lam = jnp.where(use_cut, candidates[1][0], mixed), jnp.where(use_cut, candidates[1][1], lam)
    apply = jax.random.bernoulli(k_apply, prob)
    return jnp.where(apply, mixed, images).astype(images.dtype), jnp.where(apply, lam, 1.0)
