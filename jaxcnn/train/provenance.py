"""Where a result came from: the one `provenance` object of config.json, eval.json, run.json and model cards.

    from jaxcnn.train.provenance import provenance
    record["provenance"] = provenance()

It holds the versions of jaxcnn, jax, jaxlib, flax, optax and Python, the git
commit of the jaxcnn source when it is a git checkout (None for an installed
wheel), the devices JAX sees and the number of processes. Reading it starts
JAX's backend (the device list), as any training or evaluation does anyway.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from typing import Optional

from jaxcnn._version import __version__

KEYS = ("jaxcnn", "jax", "jaxlib", "flax", "optax", "python", "git_commit", "git_dirty", "devices",
        "process_count")


def _version(distribution: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[Optional[str], Optional[bool]]:
    """(commit, dirty) of the git checkout holding this jaxcnn, or (None, None) when it is not one (an
    installed wheel) or git is absent. Cached: a process's source does not change under it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.exists(os.path.join(root, ".git")):
        return None, None
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", "jaxcnn"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def provenance() -> dict:
    """{jaxcnn, jax, jaxlib, flax, optax, python, git_commit, git_dirty, devices, process_count}.

    devices: {"backend", "count" (all processes), "local_count", "kinds" (sorted device kinds)};
    git_dirty: whether jaxcnn/ differs from that commit (None without a checkout)."""
    import jax

    commit, dirty = git_state()
    devices = jax.devices()
    return {
        "jaxcnn": __version__,
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "flax": _version("flax"),
        "optax": _version("optax"),
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": dirty,
        "devices": {"backend": jax.default_backend(), "count": len(devices), "local_count": jax.local_device_count(),
                    "kinds": sorted({d.device_kind for d in devices})},
        "process_count": jax.process_count(),
    }
