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

CPU_XLA_FLAGS: tuple[str, ...] = ("--xla_cpu_experimental_ynn_fusion_type=",)

_status = "not attempted (call jaxcnn.runtime.configure() before JAX starts)"


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - a JAX without the module: assume it has not started
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if started is not None else False


def configure(flags: tuple[str, ...] = CPU_XLA_FLAGS) -> str:
    """Append `flags` to XLA_FLAGS if JAX has not started a backend yet.

    Returns (and remembers, for `xla_cpu_status`) what happened: "applied",
    "kept the user's XLA_FLAGS", "disabled by JAXCNN_XLA_CPU_FLAGS=0" or
    "too late: JAX had already started a backend".
    """
    global _status
    if os.environ.get("JAXCNN_XLA_CPU_FLAGS", "1") == "0":
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
