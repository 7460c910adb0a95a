"""The optional dependencies and the extra that installs each, so that a feature whose library is missing says
so in one line instead of a traceback:

    tfds = require("tensorflow_datasets")   # or: MissingExtra("reading datasets needs tensorflow-datasets ...
                                            #      pip install 'jaxcnn[data]'")

`pip install jaxcnn` is the light core (models, ops, summary, the pure train step, weights in and out); each
extra of pyproject.toml adds the libraries of one kind of work. docs/install.md lists them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# import name -> (the distribution pip installs, the extra that brings it, what jaxcnn uses it for)
OPTIONAL = {
    "tensorflow_datasets": ("tensorflow-datasets", "data", "reading and preparing datasets (TFDS)"),
    "array_record": ("array_record", "data", "writing prepared datasets"),
    "grain": ("grain", "data", "the streaming input pipeline (preprocess.image_size or data_workers)"),
    "PIL": ("Pillow", "data", "reading image files"),
    "tensorboardX": ("tensorboardX", "train", "TensorBoard event files (config.tensorboard)"),
    "tqdm": ("tqdm", "train", "the progress bar (config.progress)"),
    "matplotlib": ("matplotlib", "train", "drawing plots (confusion matrices, ablation curves)"),
    "cv2": ("opencv-contrib-python-headless", "detection", "selective-search region proposals"),
    "pycocotools": ("pycocotools", "detection", "COCO mAP scoring of detections"),
    "torch": ("torch", "torch", "reading PyTorch .pth weight files"),
    "scipy": ("scipy", "stats", "the ablations' confidence intervals and p-values"),
}


class MissingExtra(ImportError):
    """A feature's optional library is not installed; the message names the extra that installs it."""


def message(module: str) -> str:
    top = module.split(".")[0]
    dist, extra, what = OPTIONAL[top]
    return f"{what} needs {dist}, which is not installed: pip install 'jaxcnn[{extra}]' (or 'jaxcnn[all]')."


def require(module: str) -> ModuleType:
    """`importlib.import_module(module)`, or MissingExtra (one line naming the extra) when its top-level
    package is not installed. An ImportError from inside an installed package is not hidden."""
    top = module.split(".")[0]
    if top not in OPTIONAL:
        raise KeyError(f"{top!r} is not one of jaxcnn's optional libraries ({', '.join(OPTIONAL)})")
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name not in (top, module):
            raise  # the package is there but broken (a module it needs is missing): keep the real error
        raise MissingExtra(message(top)) from None
