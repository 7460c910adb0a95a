"""Host-side image operations for the input pipeline, on one image at a time:
decoding, Inception's random-resized crop, the resize-and-centre-crop of
evaluation, and the flip. Outputs are uint8 (H, W, C) (NHWC once batched).

Randomness comes in as uniforms in [0, 1) drawn by the caller, so every
result is a pure function of those numbers and the image.
"""

from __future__ import annotations

import io
import math

import numpy as np

from jaxcnn._extras import require

SCALE = (0.08, 1.0)  # Szegedy et al. 2015 / torchvision RandomResizedCrop
RATIO = (3 / 4, 4 / 3)
ATTEMPTS = 10
UNIFORMS = 4 * ATTEMPTS + 1  # per example: 4 per crop attempt, 1 for the flip
# The most pixels an encoded image may declare (Pillow's own warning threshold, about 9,459 x 9,459): a
# larger header is refused before anything is decoded, so a small file cannot ask for gigabytes.
MAX_PIXELS = 89_478_485


def check_pixels(width: int, height: int, where: str = "image") -> None:
    """Refuse (ValueError, one line) an image whose header declares more than MAX_PIXELS pixels."""
    pixels = int(width) * int(height)  # Python ints: no overflow whatever the header says
    if pixels > MAX_PIXELS:
        raise ValueError(f"{where} declares {int(width):,} x {int(height):,} = {pixels:,} pixels, above the limit "
                         f"of {MAX_PIXELS:,} (jaxcnn.data.images.MAX_PIXELS); resize it, or it is not an image to "
                         "trust.")


def bomb(where: str) -> ValueError:
    """The refusal of an image whose header Pillow itself would not open (more than 2 x MAX_PIXELS)."""
    return ValueError(f"{where} declares more than {2 * MAX_PIXELS:,} pixels, above the limit of {MAX_PIXELS:,} "
                      "(jaxcnn.data.images.MAX_PIXELS); resize it, or it is not an image to trust.")


def open_image(data, channels: int, where: str = "image"):
    """A PIL image, not yet decoded, from encoded bytes (JPEG/PNG) or a uint8 (H, W, C) array; a header
    declaring more than MAX_PIXELS pixels is refused before decoding."""
    require("PIL")
    from PIL import Image

    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:  # Pillow's own refusal, past twice its warning threshold
            raise bomb(where) from None
        check_pixels(im.width, im.height, where)
        return im
    array = np.asarray(data)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 (H, W, 1 or 3) to resize, got {array.dtype} {array.shape}")
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def _convert(im, channels: int):
    """`im` in mode L (channels=1) or RGB; a 16-bit grey PNG keeps its top 8 bits (convert() would clip)."""
    require("PIL")
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    if im.mode.startswith("I"):
        im = Image.fromarray((np.asarray(im, np.uint32) >> 8).astype(np.uint8))
    return im if im.mode == mode else im.convert(mode)


def _as_array(im, channels: int) -> np.ndarray:
    array = np.asarray(_convert(im, channels), np.uint8)
    return array[..., None] if channels == 1 else array


def decode(data, channels: int) -> np.ndarray:
    """Encoded bytes or an array as uint8 (H, W, channels): grey, 16-bit grey, palette, RGBA and CMYK
    images become L (channels=1) or RGB (3)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        array = np.asarray(data)
        if array.ndim == 3 and array.shape[-1] == channels and array.dtype == np.uint8:
            return array
    return _as_array(open_image(data, channels), channels)


def random_resized_crop_box(u: np.ndarray, height: int, width: int, scale=SCALE, ratio=RATIO):
    """(top, left, crop_height, crop_width) of Inception's crop, as torchvision's
    RandomResizedCrop.get_params: up to ATTEMPTS draws of an area fraction in
    `scale` and a log-uniform aspect ratio in `ratio`; the first that fits wins,
    else the centre crop of the clamped ratio. `u`: 4 * ATTEMPTS uniforms."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for k in range(ATTEMPTS):
        a, r, y, x = u[4 * k:4 * k + 4]
        target = area * (scale[0] + (scale[1] - scale[0]) * a)
        aspect = math.exp(log_lo + (log_hi - log_lo) * r)
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(y * (height - h + 1)), int(x * (width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def _resize_box(im, box, size, channels: int) -> np.ndarray:
    """Resize the region `box` (left, top, right, bottom, in the full image's
    pixels) of `im` to `size` (h, w), bilinear with antialiasing. A JPEG is first
    decoded at the smallest 1/2, 1/4 or 1/8 scale that keeps the region at least
    `size` (libjpeg's DCT scaling; much faster for large photos, deterministic)."""
    require("PIL")
    from PIL import Image

    full_w, full_h = im.size
    if im.format == "JPEG":
        fx, fy = size[1] / (box[2] - box[0]), size[0] / (box[3] - box[1])  # output pixels per source pixel
        im.draft("RGB" if channels == 3 else "L", (math.ceil(full_w * fx), math.ceil(full_h * fy)))
        sx, sy = im.size[0] / full_w, im.size[1] / full_h
        box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    im = _convert(im, channels)
    out = np.asarray(im.resize((size[1], size[0]), Image.BILINEAR, box=box), np.uint8)
    return out[..., None] if channels == 1 else out


def train_image(data, u: np.ndarray, *, channels: int, size, random_resized_crop: bool, flip: bool,
                crop_fraction: float = 0.875) -> np.ndarray:
    """One training image: decode; Inception's crop resized to `size` (h, w), or,
    without `random_resized_crop`, `eval_image`'s resize and centre crop (`size`
    None: keep the image as it is); flip left-right if `flip` and u[-1] < 1/2."""
    if random_resized_crop:
        im = open_image(data, channels)
        top, left, h, w = random_resized_crop_box(u[:4 * ATTEMPTS], im.height, im.width)
        out = _resize_box(im, (left, top, left + w, top + h), size or (im.height, im.width), channels)
    elif size is not None:
        out = eval_image(data, channels=channels, size=size, crop_fraction=crop_fraction)
    else:
        out = decode(data, channels)
    if flip and u[-1] < 0.5:
        out = out[:, ::-1]
    return out


def eval_image(data, *, channels: int, size, crop_fraction: float = 0.875, where: str = "image") -> np.ndarray:
    """Resize so the shorter side is `min(size) / crop_fraction` (256 for 224), then
    take the centre crop of `size` (h, w) (as torchvision's Resize + CenterCrop),
    done as one resize of the matching region. `size` None: decode only. `where`
    names the image in a refusal (MAX_PIXELS)."""
    if size is None:
        return decode(data, channels)
    im = open_image(data, channels, where)
    scale = round(min(size) / crop_fraction) / min(im.height, im.width)  # resized pixels per source pixel
    h, w = size[0] / scale, size[1] / scale
    cy, cx = im.height / 2, im.width / 2
    return _resize_box(im, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), size, channels)
