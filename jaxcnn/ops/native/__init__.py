"""Native CPU kernels called from XLA:CPU as FFI custom calls: oneDNN's
convolutions, BatchNorm's per-channel reductions and max/average pooling.

XLA:CPU computes a convolution's weight gradient after moving the batch axis
of both operands last, and fuses the producer of the activation into that
transpose (benchmarks/ANALYSIS.md). oneDNN, the library PyTorch uses on CPUs,
reads NHWC activations in place. `jaxcnn.ops.cross_correlate` (and everything
built on it) sends float32 convolutions, and bfloat16 ones where the CPU has a
fast bfloat16 kernel, through three custom calls, one per direction (forward,
input gradient, weight gradient), on the CPU only: `lax.platform_dependent`
keeps XLA's convolution for GPU and TPU.

BatchNorm's batch statistics and their gradients (`jaxcnn.ops.batch_norm`,
`jaxcnn.layers.BatchNorm`) reduce over N, H and W in one native pass each
instead of XLA:CPU's reduce-window trees; max and average pooling
(`jaxcnn.ops.max_pool`, `avg_pool`), overlapping windows included, run
natively forward and backward instead of reduce_window and select-and-scatter.
Both are float32 only, and CPU only by the same `lax.platform_dependent`.
A dense layer's input gradient dy w^T (`jaxcnn.ops.linear`, `jaxcnn.layers.Dense`)
is oneDNN's matrix product, and a convolution's bias gradient (`jaxcnn.ops.linear.add_bias`,
`jaxcnn.layers.Conv`) BatchNorm's native sum, float32 and CPU only alike.

The extension `_dnnl_conv.so` beside this file is built by
`python -m jaxcnn.ops.native.build` (scripts/setup.sh runs it). Without it
every op takes XLA's path. Each family has its off switch in the environment,
read when a function is traced: JAXCNN_NATIVE_CONV=0 (convolutions),
JAXCNN_NATIVE_BN=0 (BatchNorm), JAXCNN_NATIVE_POOL=0 (pooling),
JAXCNN_NATIVE_DENSE=0 (the dense input gradient), JAXCNN_NATIVE_BIAS=0 (the bias
gradient); "1" or unset
means on. `status(kind)` says which holds.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from pathlib import Path

from jaxcnn import _env

LIBRARY = Path(__file__).with_name("_dnnl_conv.so")
CONV_TARGETS = ("jaxcnn_conv_fwd", "jaxcnn_conv_bwd_data", "jaxcnn_conv_bwd_weights")
NORM_TARGETS = ("jaxcnn_bn_stats", "jaxcnn_bn_grad_stats")
POOL_TARGETS = ("jaxcnn_max_pool_fwd", "jaxcnn_max_pool_bwd", "jaxcnn_avg_pool_fwd", "jaxcnn_avg_pool_bwd")
DENSE_TARGETS = ("jaxcnn_dense_input_grad",)
TARGETS = CONV_TARGETS + NORM_TARGETS + POOL_TARGETS + DENSE_TARGETS
# Each kernel family's off switch: "0" turns it off, "1" or unset leaves it on.
SWITCHES = {"conv": "JAXCNN_NATIVE_CONV", "batch_norm": "JAXCNN_NATIVE_BN", "pool": "JAXCNN_NATIVE_POOL",
            "dense": "JAXCNN_NATIVE_DENSE", "bias": "JAXCNN_NATIVE_BIAS"}
SWITCH = SWITCHES["conv"]

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


def _switched_off(kind: str = "conv") -> bool:
    return not _env.switch(SWITCHES[kind])


def status(kind: str = "conv") -> str:
    """"enabled", "disabled by JAXCNN_NATIVE_CONV=0" (the kind's switch) or "unavailable: <reason>".
    kind: "conv", "batch_norm", "pool", "dense" or "bias"."""
    if kind not in SWITCHES:
        raise ValueError(f"native kernel kind {kind!r}: one of {', '.join(SWITCHES)}")
    if _switched_off(kind):
        return f"disabled by {SWITCHES[kind]}=0"
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


def enabled(kind: str, dtype) -> bool:
    """Whether a CPU BatchNorm ("batch_norm"), pooling ("pool"), dense product ("dense") or bias gradient
    ("bias") of `dtype` takes the native path now: float32 only, wherever the extension loads and the
    kind's switch is on."""
    import jax.numpy as jnp

    if _switched_off(kind) or jnp.dtype(dtype) != jnp.float32:
        return False
    if _load() is None:
        _warn_unavailable()
        return False
    return True


def _warn_unavailable() -> None:
    global _warned
    if _warned:
        return
    _warned = True
    import jax

    if jax.default_backend() == "cpu":
        warnings.warn(f"jaxcnn: native CPU kernels {status()}; using XLA's convolutions, BatchNorm and pooling",
                      RuntimeWarning, stacklevel=4)


from jaxcnn.ops.native.conv import conv_general, conv_input_grad  # noqa: E402

__all__ = ["SWITCHES", "conv_general", "conv_input_grad", "dnnl_version", "enabled", "status", "supports"]
