"""Native CPU convolutions: oneDNN kernels called from XLA:CPU as FFI custom calls.

XLA:CPU computes a convolution's weight gradient after moving the batch axis
of both operands last, and fuses the producer of the activation into that
transpose (benchmarks/ANALYSIS.md). oneDNN, the library PyTorch uses on CPUs,
reads NHWC activations in place. `jaxcnn.ops.cross_correlate` (and everything
built on it) sends float32 convolutions, and bfloat16 ones where the CPU has a
fast bfloat16 kernel, through three custom calls, one per direction (forward,
input gradient, weight gradient), on the CPU only: `lax.platform_dependent`
keeps XLA's convolution for GPU and TPU.

The extension `_dnnl_conv.so` beside this file is built by
`python -m jaxcnn.ops.native.build` (scripts/setup.sh runs it). Without it,
or with JAXCNN_NATIVE_CONV=0 in the environment, every convolution is XLA's;
`status()` says which holds.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from pathlib import Path

LIBRARY = Path(__file__).with_name("_dnnl_conv.so")
TARGETS = ("jaxcnn_conv_fwd", "jaxcnn_conv_bwd_data", "jaxcnn_conv_bwd_weights")
SWITCH = "JAXCNN_NATIVE_CONV"

_lock = threading.Lock()
_loaded: dict = {}  # "lib" -> ctypes.CDLL, or "error" -> why it could not be loaded
_warned = False


def _load():
    """The extension, loaded and its FFI targets registered once; None if it cannot be."""
    with _lock:
        if not _loaded:
            try:
                if not LIBRARY.exists():
                    raise OSError("extension not built (run `bash scripts/setup.sh` or "
                                  "`python -m jaxcnn.ops.native.build`)")
                import jax

                lib = ctypes.CDLL(str(LIBRARY))
                for name in TARGETS:
                    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
                _loaded["lib"] = lib
                _loaded["bf16"] = bool(lib.jaxcnn_native_fast_dtype(1))
            except (OSError, AttributeError) as e:
                _loaded["error"] = " ".join(str(e).split())
        return _loaded.get("lib")


def _switched_off() -> bool:
    return os.environ.get(SWITCH, "1").strip() == "0"


def status() -> str:
    """"enabled", "disabled by JAXCNN_NATIVE_CONV=0" or "unavailable: <reason>"."""
    if _switched_off():
        return f"disabled by {SWITCH}=0"
    if _load() is None:
        return f"unavailable: {_loaded['error']}"
    return "enabled"


def dnnl_version() -> str | None:
    """The oneDNN version the extension runs, e.g. "3.2.0"; None without the extension."""
    lib = _load()
    if lib is None:
        return None
    v = lib.jaxcnn_native_dnnl_version()
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


def supports(dtype) -> bool:
    """Whether a CPU convolution of `dtype` takes the native path now.

    float32 does wherever the extension loads; bfloat16 only where oneDNN has
    a fast kernel for it on this CPU. Says once, in one line, why not when the
    extension is missing and the default backend is the CPU.
    """
    import jax.numpy as jnp

    if _switched_off():
        return False
    if _load() is None:
        _warn_unavailable()
        return False
    dtype = jnp.dtype(dtype)
    return dtype == jnp.float32 or (dtype == jnp.bfloat16 and _loaded["bf16"])


def _warn_unavailable() -> None:
    global _warned
    if _warned:
        return
    _warned = True
    import jax

    if jax.default_backend() == "cpu":
        warnings.warn(f"jaxcnn: native CPU convolutions {status()}; using XLA's convolution",
                      RuntimeWarning, stacklevel=4)


from jaxcnn.ops.native.conv import conv_general, conv_input_grad  # noqa: E402

__all__ = ["conv_general", "conv_input_grad", "dnnl_version", "status", "supports"]
