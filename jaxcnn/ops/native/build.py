"""Build the native convolution extension: `python -m jaxcnn.ops.native.build`.

One g++ invocation: the kernels in csrc/ (oneDNN's convolutions in conv.cc,
BatchNorm's reductions in norm.cc, pooling in pool.cc, a dense layer's input
gradient in dense.cc) against XLA's FFI
headers (shipped with jaxlib, `jax.ffi.include_dir()`) and oneDNN, into
`_dnnl_conv.so` beside this file. It is compiled for the CPU it is built on
(`-march=native`; scripts/setup.sh builds it on the machine that runs it) with
OpenMP, the same GNU OpenMP runtime oneDNN's build uses. oneDNN is looked for, in order, under $JAXCNN_DNNL_ROOT, the Python
prefix (where the `onednn-cpu-gomp` and `onednn-devel-cpu-gomp` wheels put
lib/ and include/) and /usr (Debian's libdnnl-dev). The extension records the
library's directory as its run path, so nothing needs LD_LIBRARY_PATH.

A build is skipped when the extension exists and was built from the same
source, headers and command (a stamp file beside it); `--force` rebuilds.
Exit status 0 when the extension is there at the end, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from jaxcnn import _env

HERE = Path(__file__).parent
SOURCES = tuple(HERE / "csrc" / name for name in ("conv.cc", "norm.cc", "pool.cc", "dense.cc"))
HEADERS = (HERE / "csrc" / "common.h", HERE / "csrc" / "dnnl_common.h")
LIBRARY = HERE / "_dnnl_conv.so"
STAMP = LIBRARY.with_suffix(".stamp")


def dnnl_root() -> Path:
    """The prefix holding include/oneapi/dnnl/dnnl.hpp and lib/libdnnl.so."""
    candidates = [_env.check("JAXCNN_DNNL_ROOT"), sys.prefix, "/usr", "/usr/local"]
    for root in filter(None, candidates):
        root = Path(root)
        if (root / "include/oneapi/dnnl/dnnl.hpp").exists() and _libdir(root) is not None:
            return root
    raise FileNotFoundError(
        "oneDNN not found (looked in $JAXCNN_DNNL_ROOT, the Python prefix, /usr, /usr/local); "
        "`pip install onednn-cpu-gomp onednn-devel-cpu-gomp` or `apt-get install libdnnl-dev`")


def _libdir(root: Path) -> Path | None:
    for sub in ("lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"):
        if (root / sub / "libdnnl.so").exists():
            return root / sub
    return None


def command(out: Path = LIBRARY) -> list[str]:
    import jax

    root = dnnl_root()
    libdir = _libdir(root)
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or "c++"
    return [cxx, "-O3", "-march=native", "-fopenmp", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden",
            "-fvisibility-inlines-hidden", "-Wno-return-type",
            f"-I{jax.ffi.include_dir()}", f"-I{root / 'include'}", *map(str, SOURCES),
            f"-L{libdir}", "-ldnnl", f"-Wl,-rpath,{libdir}", "-o", str(out)]


def _fingerprint(cmd: list[str]) -> str:
    import jax

    h = hashlib.sha256(" ".join(cmd).encode())
    for path in SOURCES + HEADERS:
        h.update(path.read_bytes())
    h.update((Path(jax.ffi.include_dir()) / "xla/ffi/api/c_api.h").read_bytes())
    return h.hexdigest()


def build(force: bool = False, quiet: bool = False) -> Path:
    """Compile the extension unless an identical build is already there; returns its path."""
    cmd = command()
    stamp = _fingerprint(cmd)
    if not force and LIBRARY.exists() and STAMP.exists() and STAMP.read_text().strip() == stamp:
        if not quiet:
            print(f"jaxcnn native: {LIBRARY.name} is up to date")
        return LIBRARY
    tmp = LIBRARY.with_suffix(".so.tmp")
    if not quiet:
        print("jaxcnn native: " + " ".join(cmd))
    subprocess.run(cmd[:-1] + [str(tmp)], check=True)
    tmp.replace(LIBRARY)
    STAMP.write_text(stamp + "\n")
    return LIBRARY


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    try:
        build(force=args.force)
    except (FileNotFoundError, subprocess.CalledProcessError) as e:
        print(f"jaxcnn native: build failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
