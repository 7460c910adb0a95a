"""XLA:CPU settings that make convolutional nets train faster on CPU.

XLA reads its flags from the XLA_FLAGS environment variable once, when JAX
starts its first backend. `import jaxcnn` changes nothing; the entry points
(scripts/*.py), the training engine, the benchmarks and the tests call
`configure()`, which appends jaxcnn's CPU flags to XLA_FLAGS while that is
still possible. In a notebook, call it first:

    import jaxcnn.runtime
    jaxcnn.runtime.configure()      # before the first jax computation
    import jax, jaxcnn

* ``--xla_cpu_experimental_ynn_fusion_type=`` hands convolutions and dots
  back to XLA's own (Eigen) kernels instead of YNNPACK fusions. A CNN's
  weight gradient, a convolution whose "kernel" is the whole output map,
  is what YNNPACK handles worst: XLA transposes both operands to put the
  batch last and then runs a slow large-kernel convolution. On a 2-core x86
  CPU, ResNet-20's train step at batch 128 runs 1.35x faster without it and
  keras_cifar_cnn's 1.2-1.5x (benchmarks/RESULTS.md against
  benchmarks/RESULTS_ynnpack_on.md, PyTorch's column as the control).

`configure()` also tunes glibc's allocator (Linux), unless the environment
has JAXCNN_MALLOC_TUNING=0: one malloc arena for every thread, no mmap for
large blocks, and freed memory kept (no trimming of the heap). XLA:CPU
allocates each execution's temporary buffer (192 MiB for ResNet-20's train
step at batch 128) from the thread that runs it; with glibc's defaults a block
that size from a thread's arena is always a fresh mmap, freed with munmap
after the step, so every step faulted in 49,000 zeroed pages (118 ms of system
time per 242 ms step on 2 cores). With the tuning the block is reused from
step to step (no faults, 196 ms; PyTorch's step in the same process 199 ms).
The price: the process keeps the memory it has freed, up to its peak, rather
than returning it to the system. `malloc_status()`
says what was done.

The flags are xla_cpu_* flags, so GPU and TPU programs are untouched. Nothing
is changed when

* JAX has already started a backend (XLA would ignore the flags; the state is
  reported by `xla_cpu_status()`),
* XLA_FLAGS already sets the same flag (the user's value wins), or
* the environment has JAXCNN_XLA_CPU_FLAGS=0.

Results are the same convolutions computed by a different kernel library:
equal up to float rounding.
"""

from __future__ import annotations

import os

from jaxcnn import _env

__all__ = ["configure", "configure_malloc", "xla_cpu_status", "malloc_status", "CPU_XLA_FLAGS", "MALLOPT"]

CPU_XLA_FLAGS: tuple[str, ...] = ("--xla_cpu_experimental_ynn_fusion_type=",)

_status = "not attempted (call jaxcnn.runtime.configure() before JAX starts)"


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - a JAX without the module: assume it has not started
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started is not None else False


# mallopt(3) parameters and the values configure() gives them: one arena (M_ARENA_MAX), no mmap-ed
# blocks (M_MMAP_MAX), and no trimming of the heap's top (M_TRIM_THRESHOLD -1, as mallopt(3) documents).
MALLOPT = {"M_ARENA_MAX": (-8, 1), "M_MMAP_MAX": (-4, 0), "M_TRIM_THRESHOLD": (-1, -1)}
_malloc_status = "not attempted"


def configure_malloc() -> str:
    """Tune glibc's allocator so that XLA reuses its per-step buffers (see the module docstring).
    Returns "applied", "disabled by JAXCNN_MALLOC_TUNING=0" or "unavailable: <why>"."""
    global _malloc_status
    if not _env.switch("JAXCNN_MALLOC_TUNING"):
        _malloc_status = "disabled by JAXCNN_MALLOC_TUNING=0"
        return _malloc_status
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _malloc_status = "unavailable: not glibc on Linux"
        return _malloc_status
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        failed = [name for name, (param, v) in MALLOPT.items() if libc.mallopt(param, v) != 1]
    except (OSError, AttributeError) as e:
        failed = [str(e)]
    _malloc_status = f"unavailable: mallopt refused {', '.join(failed)}" if failed else "applied"
    return _malloc_status


def malloc_status() -> str:
    """What `configure` did to the allocator in this process."""
    return _malloc_status


def configure(flags: tuple[str, ...] = CPU_XLA_FLAGS) -> str:
    """Append `flags` to XLA_FLAGS if JAX has not started a backend yet, and tune the allocator
    (`configure_malloc`).

    Returns (and remembers, for `xla_cpu_status`) what happened to the flags: "applied",
    "kept the user's XLA_FLAGS", "disabled by JAXCNN_XLA_CPU_FLAGS=0" or
    "too late: JAX had already started a backend".
    """
    global _status
    configure_malloc()
    if not _env.switch("JAXCNN_XLA_CPU_FLAGS"):  # "0" or "1" only; anything else is a one-line ValueError
        _status = "disabled by JAXCNN_XLA_CPU_FLAGS=0"
        return _status
    current = os.environ.get("XLA_FLAGS", "")
    names = {f.split("=", 1)[0] for f in current.split()}
    missing = [f for f in flags if f.split("=", 1)[0] not in names]
    if not missing:
        _status = "kept the user's XLA_FLAGS" if flags else "applied"
        return _status
    if _backends_started():
        _status = "too late: JAX had already started a backend"
        return _status
    os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    _status = "applied"
    return _status


def xla_cpu_status() -> str:
    """What `configure` did in this process (scripts print it at start-up)."""
    return _status
