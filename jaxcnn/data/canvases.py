"""Fashion-MNIST canvases for detection and segmentation, offline.

Each canvas is a 64x64 grey image (NHWC, uint8) holding 1-5 Fashion-MNIST
garments at random positions and scales (16-40 px, the 28 px originals
resized bilinearly) over a textured background (two random sinusoidal
gratings plus smoothed noise, grey levels 0-110, below most garment pixels
but not all). A garment is blended in with alpha = clip(g / 64, 0, 1) of
its own grey level g, so its dark holes show the background. For each
garment the canvas records:

* a box (x1, y1, x2, y2) in pixels, continuous coordinates: the tight box of
  the garment's mask (alpha > 0.5), a mask over columns c0..c1 and rows
  r0..r1 gives x1 = c0, x2 = c1 + 1 (COCO's convention: width = x2 - x1);
* its class 0..9 (Fashion-MNIST's);
* the per-pixel mask: 0 background, 1 + class where the garment's alpha >
  0.5 (a later garment covers an earlier one).

Garments are placed so that no two boxes overlap with IoU > 0.3 (up to 30
tries each; a garment that finds no place is left out, so a canvas may hold
fewer garments than drawn, never fewer than one). IoU <= 0.3 still lets a small garment lie inside a
larger one's box, and a later garment covers an earlier one: in the default test split 21 of 6,030
garments (0.35%) are hidden entirely and 77 (1.3%) show less than 10% of their box. They stay in the ground
truth (as occluded objects do in PASCAL VOC); no detector can find the hidden ones. Train canvases use the 60,000
training garments, test canvases the 10,000 test garments; everything is a
pure function of (config, split): `draw_canvases(...)` with the split's own
seed stream.

The TFDS builder `FashionMnistCanvases` writes them as array_record without
TensorFlow (like `jaxcnn.data.fashion_mnist`), in TFDS's own deterministic order (its writer shuffles the
records by a hash of their keys, so record i is a fixed canvas of draw_canvases; the proposal cache indexes
records); `datasets.load` serves them as

    fashion_mnist_detection      labels {"boxes": (N, 5, 4) float32, "classes": (N, 5) int32, -1 = padding}
    fashion_mnist_detection_ss   the same and "proposals": (N, 160, 4) selective search (jaxcnn.data.proposals)
    fashion_mnist_segmentation   labels (N, 64, 64) int32 masks, 0 background, 1..10 garment classes
    fashion_mnist_rcnn_crops     R-CNN's fine-tuning data: proposals and ground truth warped to 32x32 (2 px
                                 context), label 0 background / 1 + class at IoU >= 0.5; 25% foreground
    (..._tiny, ..._tiny_ss, ..._tiny: the same with 64 train / 32 test canvases, for tests)
    splits "train", "test", or slices such as "train[:3000]"

20,000 train / 2,000 test canvases (tiny: 64 / 32); building the default takes
about 15 s on one core, then it is read from the TFDS data dir.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import utils as tfds_utils

from jaxcnn.data import proposals as P
from jaxcnn.data.arrays import ArrayDataset
from jaxcnn.data.fashion_mnist import CLASS_NAMES, read_idx
from jaxcnn.data.identity import files_fingerprint
from jaxcnn.data.proposals import parse_split
from jaxcnn.data.sources import prepare_once

MAX_OBJECTS = 5
ALPHA_SCALE = 64.0  # alpha = clip(grey / 64, 0, 1)
MAX_IOU = 0.3
SEG_CLASSES = ("background",) + CLASS_NAMES  # mask value k: class k - 1 (0 background)


@dataclasses.dataclass
class CanvasConfig(tfds.core.BuilderConfig):
    size: int = 64
    train_count: int = 20_000
    test_count: int = 2_000
    min_side: int = 16
    max_side: int = 40
    seed: int = 0


CONFIGS = {
    "default": CanvasConfig(name="default", description="64x64 canvases, 20,000 train / 2,000 test"),
    "tiny": CanvasConfig(name="tiny", description="64x64 canvases, 64 train / 32 test (tests)", train_count=64,
                         test_count=32),
}


def resize_bilinear(img: np.ndarray, side: int) -> np.ndarray:
    """A (h, w) float image resized to (side, side), bilinear with half-pixel centres (as jax.image.resize
    without antialiasing)."""
    h, w = img.shape
    def axis(n_in, n_out):
        pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        lo = np.clip(np.floor(pos).astype(int), 0, n_in - 1)
        hi = np.clip(lo + 1, 0, n_in - 1)
        frac = np.clip(pos - np.floor(pos), 0, 1)
        frac = np.where(pos < 0, 0.0, frac)
        return lo, hi, frac
    rl, rh, rf = axis(h, side)
    cl, ch, cf = axis(w, side)
    rows = img[rl] * (1 - rf)[:, None] + img[rh] * rf[:, None]
    return rows[:, cl] * (1 - cf)[None] + rows[:, ch] * cf[None]


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (size, size) float background in [0, 110]: two sinusoidal gratings and smoothed noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.zeros((size, size))
    for _ in range(2):
        theta, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.05, 0.35), rng.uniform(0, 2 * np.pi)
        out += np.sin(freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
    noise = rng.normal(0, 1, (size // 4 + 2, size // 4 + 2))
    out += 1.5 * resize_bilinear(noise, size)
    out = (out - out.min()) / max(out.max() - out.min(), 1e-6)
    return out * rng.uniform(50, 110)


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def draw_canvas(rng: np.random.Generator, garments: np.ndarray, labels: np.ndarray, cfg: CanvasConfig):
    """One canvas: (image uint8 (S, S, 1), boxes float32 (5, 4), classes int32 (5,) with -1 padding,
    mask uint8 (S, S))."""
    s = cfg.size
    canvas = texture(rng, s)
    mask = np.zeros((s, s), np.uint8)
    boxes = np.zeros((MAX_OBJECTS, 4), np.float32)
    classes = np.full((MAX_OBJECTS,), -1, np.int32)
    placed = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        i = int(rng.integers(len(garments)))
        side = int(rng.integers(cfg.min_side, cfg.max_side + 1))
        g = resize_bilinear(garments[i, :, :, 0].astype(np.float64), side)
        alpha = np.clip(g / ALPHA_SCALE, 0, 1)
        on = alpha > 0.5
        if not on.any():
            continue
        rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
        for _try in range(30):
            y0, x0 = (int(v) for v in rng.integers(0, s - side + 1, 2))
            box = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
            if all(_iou(box, p) <= MAX_IOU for p in placed):
                break
        else:
            continue
        region = canvas[y0:y0 + side, x0:x0 + side]
        canvas[y0:y0 + side, x0:x0 + side] = alpha * g + (1 - alpha) * region
        mask[y0:y0 + side, x0:x0 + side][on] = labels[i] + 1
        boxes[len(placed)] = box
        classes[len(placed)] = labels[i]
        placed.append(box)
    if not placed:  # nothing fitted (vanishingly rare): draw again from the same stream
        return draw_canvas(rng, garments, labels, cfg)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)[:, :, None]
    return image, boxes, classes, mask


def draw_canvases(cfg: CanvasConfig, split: str, garments=None, labels=None):
    """Every canvas of `split` ("train" or "test") of `cfg`, as stacked arrays (images, boxes, classes, masks)."""
    if garments is None:
        garments, labels = read_idx(split)
    count = cfg.train_count if split == "train" else cfg.test_count
    rng = np.random.default_rng([cfg.seed, 0 if split == "train" else 1])
    out = [draw_canvas(rng, garments, labels, cfg) for _ in range(count)]
    return tuple(np.stack(a) for a in zip(*out))


class FashionMnistCanvases(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST garments on textured 64x64 canvases: boxes, classes and masks (jaxcnn.data.canvases)."""

    name = "fashion_mnist_canvases"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "1-5 garments, 16-40 px, on gratings + noise; boxes, classes, masks."}
    BUILDER_CONFIGS = list(CONFIGS.values())

    @tfds_utils.classproperty
    @classmethod
    def code_path(cls):
        return epath.Path(os.path.abspath(__file__))

    def __init__(self, *, data_dir=None, file_format="array_record", **kwargs):
        super().__init__(data_dir=data_dir, file_format=file_format, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        s = self.builder_config.size
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.split("\n\n")[1],
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(s, s, 1), dtype=np.uint8),
                "boxes": tfds.features.Tensor(shape=(MAX_OBJECTS, 4), dtype=np.float32),
                "classes": tfds.features.Tensor(shape=(MAX_OBJECTS,), dtype=np.int32),
                "mask": tfds.features.Tensor(shape=(s, s), dtype=np.uint8),
            }),
            homepage="https://github.com/zalandoresearch/fashion-mnist",
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(split) for split in ("train", "test")}

    def _generate_examples(self, split):
        images, boxes, classes, masks = draw_canvases(self.builder_config, split)
        for i in range(len(images)):
            yield i, {"image": images[i], "boxes": boxes[i], "classes": classes[i], "mask": masks[i]}


# datasets.load names -> (builder config, what the labels are, with selective-search proposals)
NAMES = {
    "fashion_mnist_detection": ("default", "detection", False),
    "fashion_mnist_detection_ss": ("default", "detection", True),
    "fashion_mnist_segmentation": ("default", "segmentation", False),
    "fashion_mnist_detection_tiny": ("tiny", "detection", False),
    "fashion_mnist_detection_tiny_ss": ("tiny", "detection", True),
    "fashion_mnist_segmentation_tiny": ("tiny", "segmentation", False),
    "fashion_mnist_rcnn_crops": ("default", "rcnn_crops", True),
    "fashion_mnist_rcnn_crops_tiny": ("tiny", "rcnn_crops", True),
}


def builder(config: str, data_dir: str) -> FashionMnistCanvases:
    b = FashionMnistCanvases(config=config, data_dir=data_dir)
    if not b.is_prepared():
        prepare_once(b, f"fashion_mnist_canvases_{config}", data_dir)
        b = FashionMnistCanvases(config=config, data_dir=data_dir)  # its info read from the files now written
    return b


def identity(name: str, data_dir: str) -> dict:
    """What a workdir records of dataset `name` (one of NAMES; jaxcnn.data.identity): its class names, split
    sizes and the fingerprint of its prepared files (prepared here on first use)."""
    config, kind, _ = NAMES[name]
    names = SEG_CLASSES if kind in ("segmentation", "rcnn_crops") else CLASS_NAMES
    b = builder(config, data_dir)
    return {"class_names": [str(n) for n in names],
            "splits": {s: int(v.num_examples) for s, v in sorted(b.info.splits.items())},
            "fingerprint": files_fingerprint(str(b.data_dir), b.info)}


def read_split(config: str, split: str, data_dir: str) -> dict:
    """Every example of `split` (a slice such as "train[:4000]" allowed) as stacked numpy arrays."""
    b = builder(config, data_dir)
    base = split.split("[")[0]
    if base not in b.info.splits:
        raise ValueError(f"fashion_mnist_canvases has no split {split!r}; splits: {sorted(b.info.splits)} "
                         "(a slice such as 'train[:4000]' is allowed).")
    source = b.as_data_source(split=base)
    _, start, stop = parse_split(split, len(source))
    records = source.__getitems__(list(range(start, stop)))
    return {k: np.stack([np.asarray(r[k]) for r in records]) for k in ("image", "boxes", "classes", "mask")}


def load(name: str, split: str, data_dir: str):
    """The ArrayDataset of dataset `name` (one of NAMES) and `split`. Detection labels: {"boxes", "classes"}
    and, for the *_ss names, "proposals" (N, 160, 4) from jaxcnn.data.proposals (cached on disk)."""
    config, kind, with_proposals = NAMES[name]
    d = read_split(config, split, data_dir)
    if kind == "segmentation":
        return ArrayDataset(d["image"], d["mask"].astype(np.int32), len(SEG_CLASSES))
    labels = {"boxes": d["boxes"], "classes": d["classes"].astype(np.int32)}
    if with_proposals:
        base = split.split("[")[0]
        labels["proposals"] = P.proposals(config, split, data_dir, read_split(config, base, data_dir)["image"])
        if kind == "rcnn_crops":
            idx, regions, crop_labels = P.rcnn_regions(labels["boxes"], labels["classes"], labels["proposals"])
            return ArrayDataset(P.warp_crops(d["image"], idx, regions), crop_labels, len(SEG_CLASSES))
    return ArrayDataset(d["image"], labels, len(CLASS_NAMES))
