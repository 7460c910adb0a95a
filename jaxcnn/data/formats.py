"""Readers for the raw formats `prepare_data` turns into TFDS datasets: image
folders (JPEG/PNG), the CIFAR-10/100 binary archives and MNIST's IDX files.

Each `plan_*` function checks its source up front and returns a `Plan`: the
TFDS features and, per split, the number of examples and a function giving
example i (jaxcnn.data.prepare_data.write stores them in a seeded shuffled order).
Anything wrong with the source raises `SourceError`, a one-line message
naming the file and the fix. Images are NHWC uint8 wherever they are arrays.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import math
import os
import tarfile
from typing import Callable

import numpy as np

from jaxcnn._extras import require
from jaxcnn.data.images import bomb, check_pixels

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
FOLDER_TEST_FRACTION = 0.1  # held out per class when an image folder has no test/
FOLDER_SPLIT_SEED = 0


class SourceError(ValueError):
    """A bad or missing source file; the message is one line naming the file and the fix."""


@dataclasses.dataclass
class Plan:
    """What to write: TFDS features (a dict of feature objects), per split
    (number of examples, example(i) -> dict), and a line describing the dataset."""

    features: dict
    splits: dict[str, tuple[int, Callable[[int], dict]]]
    description: str


def pixel_tensor(shape):
    """A fixed-size uint8 image feature stored as raw bytes. TFDS's default
    encoding writes each pixel as an int64 varint: 1.5x the bytes of random
    pixels and, at 96x96x3, 9x slower to parse (474 vs 55 us per example)."""
    require("tensorflow_datasets")
    import tensorflow_datasets as tfds

    return tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES)


# ----------------------------------------------------------------------------- image folders

def check_class_names(names, where: str) -> None:
    """Refuse class names that cannot be stored one per line or told apart: empty, holding a control character
    (a newline would shift every later name), longer than 200 characters, or repeated."""
    seen = set()
    for name in names:
        bad = [c for c in name if ord(c) < 32 or ord(c) == 127]
        if not name.strip() or bad or len(name) > 200:
            why = ("is empty" if not name.strip() else f"holds the control character {bad[0]!r}" if bad
                   else "is longer than 200 characters")
            raise SourceError(f"{where}: class name {name!r} {why}; rename it (letters, digits, spaces, "
                              "punctuation)")
        if name in seen:
            raise SourceError(f"{where}: class name {name!r} appears twice; class names must be distinct, "
                              "rename one")
        seen.add(name)


def _class_files(split_dir: str) -> dict[str, list[str]]:
    """{class name: sorted image paths} for DIR/<split>/<class>/*; hidden files are skipped."""
    classes = {}
    for entry in sorted(os.listdir(split_dir)):
        path = os.path.join(split_dir, entry)
        if entry.startswith("."):
            continue
        if os.path.islink(path) and not os.path.exists(path):
            raise SourceError(f"{path} is a symbolic link to nothing (broken, or a loop); point it at a class "
                              "folder or remove it")
        if not os.path.isdir(path):
            raise SourceError(f"{path} is a file, but {split_dir} must hold one folder per class; "
                              "move it into a class folder or remove it")
        files = []
        for name in sorted(os.listdir(path)):
            if name.startswith("."):
                continue
            file = os.path.join(path, name)
            if os.path.islink(file) and not os.path.exists(file):
                raise SourceError(f"{file} is a symbolic link to nothing (broken, or a loop); point it at an image "
                                  "or remove it")
            if os.path.isdir(file):
                raise SourceError(f"{file} is a folder inside class folder {path}; class folders hold images only")
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                raise SourceError(f"{file} is not a .jpg/.jpeg/.png image; remove it or convert it")
            files.append(file)
        classes[entry] = files
    return classes


def _image_header(path: str) -> tuple[int, int]:
    """(height, width) from the file's header, refusing anything but a JPEG or PNG."""
    require("PIL")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.format not in ("JPEG", "PNG"):
                raise SourceError(f"{path} is a {im.format} image; only JPEG and PNG are stored, convert it")
            try:
                check_pixels(im.width, im.height, path)
            except ValueError as e:
                raise SourceError(str(e).rstrip(".")) from None
            return im.height, im.width
    except Image.DecompressionBombError:
        raise SourceError(str(bomb(path)).rstrip(".")) from None
    except (UnidentifiedImageError, OSError) as e:
        raise SourceError(f"{path} is not a readable image ({type(e).__name__}); remove or replace it") from None


def check_image(path: str, data: bytes) -> None:
    """Decode `data` fully (JPEG at 1/8 scale, which still reads every byte) or refuse the file."""
    require("PIL")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format == "JPEG":
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        raise SourceError(f"{path} is a broken image ({type(e).__name__}: {e}); remove or replace it") from None


def plan_image_folder(root: str) -> Plan:
    """DIR/train/<class>/* and optionally DIR/test/<class>/*, images kept encoded.

    Classes are the sorted folder names of train/ (labels 0..K-1 in that order,
    as torchvision's ImageFolder). Without test/, a seeded FOLDER_TEST_FRACTION
    of each class (rounded, at least one from every class of two or more
    images) becomes the test split.
    """
    require("tensorflow_datasets")
    import tensorflow_datasets as tfds

    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    if not os.path.isdir(root):
        raise SourceError(f"{root} is not a folder; give a folder holding train/<class>/ image folders")
    if not os.path.isdir(train_dir):
        raise SourceError(f"{train_dir} not found; an image folder needs train/<class>/* (and optionally test/<class>/*)")
    train = _class_files(train_dir)
    if not train:
        raise SourceError(f"{train_dir} has no class folders; put each class's images in train/<class>/")
    for cls, files in train.items():
        if not files:
            raise SourceError(f"{os.path.join(train_dir, cls)} has no images; add some or remove the folder")
    names = list(train)
    check_class_names(names, train_dir)
    if os.path.isdir(test_dir):
        test = _class_files(test_dir)
        for cls in test:
            if cls not in train:
                raise SourceError(f"{os.path.join(test_dir, cls)} is a class that train/ does not have; "
                                  f"add train/{cls}/ or remove it")
    else:
        rng = np.random.default_rng(FOLDER_SPLIT_SEED)
        test = {}
        for cls in names:
            files = train[cls]
            k = max(1, int(round(FOLDER_TEST_FRACTION * len(files)))) if len(files) > 1 else 0
            held = set(rng.permutation(len(files))[:k].tolist())
            test[cls] = [f for i, f in enumerate(files) if i in held]
            train[cls] = [f for i, f in enumerate(files) if i not in held]
    splits = {"train": train, "test": test}
    for split, classes in splits.items():
        if not any(classes.values()):
            where = test_dir if os.path.isdir(test_dir) else f"{train_dir} (too few images to hold out a test split)"
            raise SourceError(f"{where} has no {split} images; add images or a test/<class>/ folder")
    sizes = {_image_header(f) for split in splits.values() for files in split.values() for f in files}
    shape = (*sizes.pop(), 3) if len(sizes) == 1 else (None, None, 3)

    def reader(split):
        files = [(f, label) for label, cls in enumerate(names) for f in splits[split].get(cls, [])]

        def example(i):
            path, label = files[i]
            with open(path, "rb") as fh:
                data = fh.read()
            check_image(path, data)
            return {"image": data, "label": label}

        return len(files), example

    return Plan(
        features={"image": tfds.features.Image(shape=shape, encoding_format=None),
                  "label": tfds.features.ClassLabel(names=names)},
        splits={s: reader(s) for s in splits},
        description=f"Image folder {os.path.abspath(root)}: {len(names)} classes, images kept encoded "
                    f"(JPEG/PNG), decoded to RGB on read.",
    )


# ----------------------------------------------------------------------------- CIFAR binary archives

# The binary versions from https://www.cs.toronto.edu/~kriz/cifar.html. A record is
# <label byte(s)><3072 pixel bytes>: 1024 red, then 1024 green, then 1024 blue, each
# 32x32 row-major. CIFAR-100 records carry the coarse label byte, then the fine one.
CIFAR = {
    "cifar10": dict(folder="cifar-10-batches-bin", label_bytes=1, num_classes=(10,),
                    splits={"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]},
                    names=("batches.meta.txt",), keys=("label",)),
    "cifar100": dict(folder="cifar-100-binary", label_bytes=2, num_classes=(20, 100),
                     splits={"train": ["train.bin"], "test": ["test.bin"]},
                     names=("coarse_label_names.txt", "fine_label_names.txt"), keys=("coarse_label", "label")),
}
CIFAR_PIXELS = 32 * 32 * 3


def _read_tar(archive: str) -> dict[str, bytes]:
    """The regular files of a (gzipped) tar archive by path."""
    if os.path.isdir(archive):
        raise SourceError(f"{archive} is a folder; give the downloaded binary archive file itself "
                          "(e.g. cifar-10-binary.tar.gz), not a folder")
    if not os.path.isfile(archive):
        raise SourceError(f"{archive} not found; give the path of the downloaded binary archive")
    try:
        with tarfile.open(archive, "r:*") as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SourceError(f"{archive} is not a readable tar.gz archive ({type(e).__name__}); download it again") from None


def plan_cifar(archive: str, kind: str) -> Plan:
    """CIFAR-10 (`kind="cifar10"`) or CIFAR-100 (`"cifar100"`: fine `label`, plus `coarse_label`)."""
    require("tensorflow_datasets")
    import tensorflow_datasets as tfds

    spec = CIFAR[kind]
    members = _read_tar(archive)
    rec = spec["label_bytes"] + CIFAR_PIXELS

    def member(name):
        path = f"{spec['folder']}/{name}"
        if path not in members:
            raise SourceError(f"{archive} has no {path}; is it the official {kind} *binary* archive "
                              f"({'cifar-10' if kind == 'cifar10' else 'cifar-100'}-binary.tar.gz)?")
        return path, members[path]

    names = []
    for f in spec["names"]:
        path, data = member(f)
        lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
        names.append(lines)
    for lines, n, f in zip(names, spec["num_classes"], spec["names"]):
        if len(lines) != n:
            raise SourceError(f"{archive}: {spec['folder']}/{f} lists {len(lines)} class names, expected {n}; "
                              "download the archive again")
        check_class_names(lines, f"{archive}: {spec['folder']}/{f}")
    records = {}
    for split, files in spec["splits"].items():
        for f in files:
            path, data = member(f)
            if not data or len(data) % rec:
                raise SourceError(f"{archive}: {path} has {len(data)} bytes, not a whole number of "
                                  f"{rec}-byte {kind} records; download the archive again")
            arr = np.frombuffer(data, np.uint8).reshape(-1, rec)
            for j, n in enumerate(spec["num_classes"]):
                bad = np.flatnonzero(arr[:, j] >= n)
                if bad.size:
                    raise SourceError(f"{archive}: {path} record {bad[0]} has label {arr[bad[0], j]} >= {n}; "
                                      "the file is corrupt, download the archive again")
            records.setdefault(split, []).append(arr)
    del members

    def reader(split):
        arr = np.concatenate(records[split])
        images = arr[:, spec["label_bytes"]:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)

        def example(i):
            ex = {"image": np.ascontiguousarray(images[i])}
            ex.update({k: int(arr[i, j]) for j, k in enumerate(spec["keys"])})
            return ex

        return len(arr), example

    features = {"image": pixel_tensor((32, 32, 3))}
    for key, lines in zip(spec["keys"], names):
        features[key] = tfds.features.ClassLabel(names=lines)
    return Plan(features=features, splits={s: reader(s) for s in records},
                description=f"{kind} from the official binary archive {os.path.basename(archive)}.")


# ----------------------------------------------------------------------------- MNIST IDX files

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx_file(path: str, rank: int) -> np.ndarray:
    """An IDX file (gzipped or not) of unsigned bytes and `rank` dimensions, checked against its header."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise SourceError(f"{path} is a broken gzip file ({type(e).__name__}); download it again") from None
    magic = 0x800 + rank  # type 0x08 (unsigned byte), then the number of dimensions
    header = 4 + 4 * rank
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise SourceError(f"{path} is not an IDX file of {rank}-d unsigned bytes (magic {found}, expected {magic}); "
                          "check the file name and download it again")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    size = math.prod(dims)  # Python ints: a header of 2**32-1 per dimension cannot wrap around to a match
    if len(raw) - header != size:
        raise SourceError(f"{path} holds {len(raw) - header} bytes of data, its header says {dims} "
                          f"({size}); the file is truncated, download it again")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def plan_mnist(root: str) -> Plan:
    """The four MNIST IDX files in `root` (each as named by LeCun's site, `.gz` or not)."""
    require("tensorflow_datasets")
    import tensorflow_datasets as tfds

    if not os.path.isdir(root):
        raise SourceError(f"{root} is not a folder; give the folder holding the four MNIST IDX files")
    data = {}
    for split, (image_name, label_name) in MNIST_FILES.items():
        paths = []
        for name in (image_name, label_name):
            found = [p for p in (os.path.join(root, name), os.path.join(root, name + ".gz")) if os.path.isfile(p)]
            if not found:
                raise SourceError(f"{os.path.join(root, name)}[.gz] not found; {root} must hold "
                                  "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                                  "t10k-labels-idx1-ubyte (gzipped or not)")
            paths.append(found[0])
        images, labels = read_idx_file(paths[0], 3), read_idx_file(paths[1], 1)
        if len(images) != len(labels):
            raise SourceError(f"{paths[1]} has {len(labels)} labels for the {len(images)} images of {paths[0]}; "
                              "use the matching pair of files")
        if images.shape[1:] != (28, 28):
            raise SourceError(f"{paths[0]} holds {images.shape[1]}x{images.shape[2]} images, MNIST's are 28x28")
        if labels.size and labels.max() > 9:
            raise SourceError(f"{paths[1]} has label {labels.max()}, MNIST's are 0-9; use the matching label file")
        data[split] = (images[..., None], labels)

    def reader(split):
        images, labels = data[split]
        return len(labels), lambda i: {"image": images[i], "label": int(labels[i])}

    return Plan(features={"image": pixel_tensor((28, 28, 1)),
                          "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)])},
                splits={s: reader(s) for s in data},
                description=f"MNIST IDX files from {os.path.abspath(root)}.")
