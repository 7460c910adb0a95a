"""Weights in, by one call: `model, variables = jaxcnn.load_weights(PATH)`, so that
`model.apply(variables, x, train=False)` gives the logits the weights were trained to give.

PATH is any of
* a training workdir (config.json + checkpoints/): its model as built and its latest checkpoint (or `step`);
* a `.safetensors` file written by `jaxcnn-export --format safetensors`: the model card beside it
  (FILE.json) names the model and its fields;
* a torchvision state dict (`.pth`, `.pt`, or a `.safetensors` without our card): the model named by
  `model=` or by the file name's torchvision prefix (`resnet18-f37072fd.pth` -> resnet18), read safely
  (jaxcnn.pretrained.torchvision);
* a bare name, looked for in the weights cache JAXCNN_HOME (default ~/.cache/jaxcnn): NAME.safetensors (with
  NAME.json), NAME.pth, or a torchvision file NAME-<hash>.pth.

`x` is what the model takes: NHWC float32, preprocessed as the card's `input` says (for a workdir, as the
run's config.preprocess does at evaluation).
"""

from __future__ import annotations

import glob
import json
import os
from typing import Optional

from jaxcnn import _env
from jaxcnn.models import create_model
from jaxcnn.pretrained import export
from jaxcnn.pretrained.files import read_safetensors
from jaxcnn.pretrained.torchvision import TORCHVISION_MODELS, load_torchvision_weights

TORCH_SUFFIXES = (".pth", ".pt", ".bin")


def cache_dir() -> str:
    """The weights cache: $JAXCNN_HOME, else ~/.cache/jaxcnn (not created until something is put there);
    ValueError in one line when JAXCNN_HOME names something that cannot be a folder."""
    home = _env.check("JAXCNN_HOME")
    return os.path.abspath(os.path.expanduser(home or os.path.join("~", ".cache", "jaxcnn")))


def find_weights(name: str) -> str:
    """The file of named weights in the cache (see the module docstring); one-line FileNotFoundError naming
    where it looked."""
    home = cache_dir()
    for candidate in [os.path.join(home, name + ".safetensors"), *(os.path.join(home, name + s)
                                                                     for s in TORCH_SUFFIXES),
                      *sorted(glob.glob(os.path.join(glob.escape(home), glob.escape(name) + "-*.pth")))]:
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"no weights {name!r}: not a file or workdir, and not in the cache {home} (as "
                            f"{name}.safetensors, {name}.pth or {name}-<hash>.pth); put them there, set JAXCNN_HOME, "
                            "or pass a path.")


def _torchvision_name(path: str, model: Optional[str]) -> str:
    if model is not None:
        return model
    prefix = os.path.basename(path).split("-")[0].split(".")[0]
    ours = sorted(n for n, tv in TORCHVISION_MODELS.items() if tv == prefix) or (
        [prefix] if prefix in TORCHVISION_MODELS else [])
    if not ours:
        raise ValueError(f"{path}: cannot tell the model from the file name (torchvision names its files "
                         f"MODEL-HASH.pth); pass model=, one of {', '.join(sorted(TORCHVISION_MODELS))}.")
    return ours[0]


def load_weights(path: str, *, step: Optional[int] = None, model: Optional[str] = None, **overrides):
    """(model, variables) from a workdir, our safetensors export, a torchvision file, or a cached name (see the
    module docstring). `step`: a workdir's checkpoint (default: the latest). `model` and `overrides`: the
    registry model and fields for a torchvision file (e.g. num_classes for another classifier)."""
    path = os.fspath(path)
    if not os.path.exists(path) and os.sep not in path and not path.startswith("."):
        path = find_weights(path)
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(path):
        record = export.read_record(path)
        variables, _ = export.run_variables(path, step)
        return create_model(record["model"], **export.model_fields(record)), variables
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no weights file or workdir {path!r}.")
    card_path = export.card_paths(path)[0]
    if path.endswith(".safetensors") and os.path.isfile(card_path):
        with open(card_path) as f:
            card = json.load(f)
        if card.get("format") != export.CARD_FORMAT:
            raise ValueError(f"{card_path} is not a jaxcnn model card (format {card.get('format')!r}); pass "
                             "model= to read the weights as torchvision's.")
        variables = export.unflatten(read_safetensors(path))
        return create_model(card["model"], **export.model_fields(card)), variables
    if path.endswith(".safetensors") or path.endswith(TORCH_SUFFIXES):
        name = _torchvision_name(path, model)
        return create_model(name, **overrides), load_torchvision_weights(name, path, **overrides)
    raise ValueError(f"{path}: not a workdir, a .safetensors file or a torch .pth file.")
