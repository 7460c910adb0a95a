"""Every environment variable jaxcnn reads, with the values it documents, and
one reader that accepts only those.

    switch("JAXCNN_TRACEBACKS")        # False for unset/"0", True for "1"; anything else: ValueError
    check_environment()                 # every variable at once (the scripts call it before any work)

A value outside the documented ones ("yes", "2", " 1", a path that is a
file) is refused in one line naming the variable, what it holds and what it
accepts, instead of being read as some default.
"""

from __future__ import annotations

import os
from typing import Optional

# name: (kind, default, what it does). kind: "switch" ("0" or "1"), "int>=0", "int>=1", "dir" (an existing
# folder), "data_dir" (a folder or a path where one can be made), "host:port".
VARIABLES = {
    "JAXCNN_XLA_CPU_FLAGS": ("switch", "1", "0 leaves XLA_FLAGS as it is (jaxcnn.runtime)"),
    "JAXCNN_MALLOC_TUNING": ("switch", "1", "0 leaves glibc's allocator at its defaults (jaxcnn.runtime)"),
    "JAXCNN_NATIVE_CONV": ("switch", "1", "0 turns the native CPU convolutions off (jaxcnn.ops.native)"),
    "JAXCNN_NATIVE_BN": ("switch", "1", "0 turns the native CPU BatchNorm off (jaxcnn.ops.native)"),
    "JAXCNN_NATIVE_POOL": ("switch", "1", "0 turns the native CPU pooling off (jaxcnn.ops.native)"),
    "JAXCNN_NATIVE_DENSE": ("switch", "1", "0 turns the native CPU dense input gradient off (jaxcnn.ops.native)"),
    "JAXCNN_NATIVE_BIAS": ("switch", "1", "0 turns the native CPU bias gradient off (jaxcnn.ops.native)"),
    "JAXCNN_TRACEBACKS": ("switch", "0", "1 prints the traceback above a script's one-line error"),
    "JAXCNN_COORDINATOR": ("host:port", None, "the coordinator of a multi-process run"),
    "JAXCNN_NUM_PROCESSES": ("int>=1", None, "the number of processes of a multi-process run"),
    "JAXCNN_PROCESS_ID": ("int>=0", None, "this process's id in a multi-process run"),
    "JAXCNN_FASHION_MNIST_DIR": ("data_dir", None, "the folder of Fashion-MNIST's IDX files (default Debian's)"),
    "JAXCNN_DNNL_ROOT": ("dir", None, "the oneDNN install the native extension is built against"),
    "TFDS_DATA_DIR": ("data_dir", None, "the TFDS data dir (default ~/tensorflow_datasets)"),
    "JAXCNN_HOME": ("data_dir", None, "the weights cache (default ~/.cache/jaxcnn; jaxcnn.pretrained)"),
}


def _bad(name: str, value: str, accepts: str) -> ValueError:
    kind, _, what = VARIABLES[name]
    return ValueError(f"environment variable {name}={value!r} is not valid: it takes {accepts} ({what}); fix or "
                      f"unset it (unset {name}).")


def check(name: str, value: Optional[str] = None) -> Optional[str]:
    """The value of environment variable `name` (one of VARIABLES; `value` overrides reading it), checked:
    None when unset; ValueError in one line when it is not one of the documented values."""
    kind, default, _ = VARIABLES[name]
    value = os.environ.get(name) if value is None else value
    if value is None:
        return None
    if kind == "switch":
        if value not in ("0", "1"):
            raise _bad(name, value, "0 or 1")
    elif kind.startswith("int>="):
        low = int(kind[len("int>="):])
        if not value.isdigit() or int(value) < low or int(value) > 1 << 20:
            raise _bad(name, value, f"an integer >= {low}")
    elif kind == "dir":
        if not value or not os.path.isdir(os.path.expanduser(value)):
            raise _bad(name, value, "an existing folder")
    elif kind == "data_dir":
        path = os.path.expanduser(value)
        if not value or (os.path.exists(path) and not os.path.isdir(path)) or any(c in value for c in "\n\r\0"):
            raise _bad(name, value, "a folder (or a path where one can be made)")
    elif kind == "host:port":
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(name, value, "HOST:PORT, e.g. 10.0.0.1:1234")
    return value


def switch(name: str) -> bool:
    """A "switch" variable as a bool: its documented default when unset; ValueError for any other value."""
    value = check(name)
    return (value if value is not None else VARIABLES[name][1]) == "1"


def check_environment() -> None:
    """Check every variable of VARIABLES that is set (ValueError, one line, for the first that is not valid)."""
    for name in VARIABLES:
        check(name)
