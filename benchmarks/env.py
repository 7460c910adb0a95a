"""What a benchmark figure depends on: the machine, the software, the settings."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import sys

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
               "TF_NUM_INTEROP_THREADS", "JAX_PLATFORMS")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _version(dist: str):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def native_conv() -> str:
    """jaxcnn's native CPU convolutions: "enabled (oneDNN 3.2.0)", or why not."""
    from jaxcnn.ops import native

    status = native.status()
    return f"{status} (oneDNN {native.dnnl_version()})" if status == "enabled" else status


def collect(torch_threads=None) -> dict:
    """Device kind, CPU, cores, thread settings, versions, XLA_FLAGS (JAX must be importable)."""
    import jax

    dev = jax.devices()[0]
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "device_kind": dev.device_kind,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "threads": {**{k: os.environ[k] for k in THREAD_VARS if k in os.environ},
                    **({"torch.get_num_threads": torch_threads} if torch_threads else {})},
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "native_conv": native_conv(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {d: _version(d) for d in ("jax", "jaxlib", "flax", "optax", "numpy", "torch")},
    }
