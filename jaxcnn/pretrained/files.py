"""Reading weight files safely: `.safetensors` through the `safetensors`
package, anything else with `torch.load(weights_only=True)`, which refuses
pickled objects other than tensors. Nothing is ever unpickled by jaxcnn.
"""

from __future__ import annotations

import os
from typing import Mapping

import jax
import numpy as np

from jaxcnn._extras import require


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """The tensors of a `.safetensors` file as numpy arrays (bfloat16 as ml_dtypes.bfloat16).

    A file that is not safetensors (pickle bytes, a header that overflows, data
    cut short) is refused in one line naming the file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return dict(load_file(path))
    except (SafetensorError, OverflowError, MemoryError, ValueError, OSError) as e:
        raise ValueError(f"{path} is not a readable .safetensors file ({type(e).__name__}: {_first_line(e)}"
                         f"{_diagnose(path)}); re-export it with safetensors.torch.save_file(model.state_dict(), "
                         "path).") from None


def _diagnose(path: str) -> str:
    """What is wrong with a file that is not valid safetensors, read from its first bytes and its JSON header
    only (nothing is executed or allocated from its claims): '; <detail>' or ''."""
    import json

    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"; the file has {size} bytes, fewer than the 8 of a header length"
            n = int.from_bytes(head, "little")
            if n > size - 8:
                if head[:1] == b"\x80" and 2 <= head[1] <= 5 or head[:2] == b"PK":  # pickle protocol 2-5, zip
                    return "; it is a pickle or torch.save file, not safetensors: name it .pth to read it with " \
                           "torch.load(weights_only=True)"
                return f"; its header claims {n} bytes, the file holds {size - 8} after the length"
            header = json.loads(f.read(n))
    except (OSError, ValueError):
        return ""
    data = size - 8 - n
    for key, info in header.items():
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if key != "__metadata__" and offsets and len(offsets) == 2 and offsets[1] > data:
            return (f"; tensor {key!r} needs data bytes {offsets[0]}..{offsets[1]}, the file holds {data}: it was "
                    "cut short")
    return ""


def _to_numpy(key, value) -> np.ndarray:
    if isinstance(value, np.ndarray) or isinstance(value, (jax.Array, np.generic)):
        return np.asarray(value)
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch.Tensor (torch is not imported for this)
        t = value.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        return t.numpy()
    raise TypeError(f"state dict value for {key!r} is a {type(value).__name__}; expected a torch tensor or a "
                    "numpy array.")


def _read_torch(path: str):
    try:
        require("torch")
        import torch
    except ImportError:
        raise ValueError(f"reading {path} needs torch (pip install torch), which is optional for jaxcnn; "
                         "or convert the file to .safetensors, or pass a dict of numpy arrays.") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError and friends: something other than tensors in the file
        raise ValueError(f"refusing to read {path}: torch.load(weights_only=True) failed ({_first_line(e)}). "
                         "Only plain state dicts of tensors are read, because torch.load with "
                         "weights_only=False can run arbitrary code; save model.state_dict(), not the model."
                         ) from None


def read_state_dict(state_dict_or_path) -> dict[str, np.ndarray]:
    """A state dict as {key: numpy array}, from a mapping of torch tensors or numpy
    arrays, a `.safetensors` file, or a torch file read with `weights_only=True`.

    A torch file that also holds other objects (a pickled module, an optimizer
    with custom classes) is refused, not unpickled. A checkpoint dict with the
    weights under 'state_dict' or 'model' is unwrapped, and a 'module.' prefix
    (torch's DataParallel) is dropped. Arrays holding NaN or Inf are refused.
    """
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        path = os.fspath(state_dict_or_path)
        if not os.path.isfile(path):
            raise ValueError(f"no weights file {path!r}; pass an existing .pth/.pt/.safetensors file or a state dict.")
        raw = read_safetensors(path) if path.endswith(".safetensors") else _read_torch(path)
    else:
        path, raw = "the state dict", state_dict_or_path
    if not isinstance(raw, Mapping):
        raise TypeError(f"a state dict must be a mapping of names to tensors, got {type(raw).__name__}.")
    for wrapper in ("state_dict", "model"):
        if wrapper in raw and isinstance(raw[wrapper], Mapping):
            raw = raw[wrapper]
            break
    keys = list(raw)
    strip = bool(keys) and all(isinstance(k, str) and k.startswith("module.") for k in keys)
    out = {}
    for k, v in raw.items():
        if not isinstance(k, str):
            raise TypeError(f"state dict keys must be str, got {k!r}.")
        value = _to_numpy(k, v)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"{path}: tensor {k!r} holds NaN or Inf values; these weights would poison every "
                             "output. Use an intact copy of the file.")
        out[k[len("module."):] if strip else k] = value
    return out
