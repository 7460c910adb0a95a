"""Damaged data is named, not a traceback: the boundary where datasets are read
(`jaxcnn.data.datasets.load`) runs under `readable`, which turns what the
readers raise about a damaged file — a truncated or bit-flipped array_record
shard (Riegeli's checksums), an unparsable dataset_info.json, a cut-off source
archive — into one ValueError line that names the dataset, where it lives and
how to rebuild it. Our own one-line refusals (exactly ValueError / TypeError /
FileNotFoundError: an unknown name, a dataset not prepared, a missing split)
pass through unchanged.
"""

from __future__ import annotations

import functools
import inspect
import os
import zlib

from jaxcnn.data import registry
from jaxcnn.data.arrays import OFFLINE, data_dir

# What reading a damaged source archive raises (gzip.BadGzipFile is an OSError).
_SOURCE_ERRORS = (EOFError, zlib.error)


class DatasetDamaged(ValueError):
    """A prepared dataset (or the files it is built from) cannot be read back intact."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 120 else line[:117] + "..."


def _ours(e: BaseException) -> bool:
    """A one-line refusal raised by jaxcnn itself (not a subclass raised by a reader)."""
    return type(e) in (ValueError, TypeError, FileNotFoundError, DatasetDamaged)


def damaged(name: str, data_dir: str, error: BaseException) -> DatasetDamaged:
    """The one-line error for dataset `name` under the TFDS data dir `data_dir`, damaged as `error` says."""
    folder = os.path.join(data_dir, name)
    cause = f"{type(error).__name__}: {_first_line(error)}"
    if isinstance(error, PermissionError):  # not damage: a folder this user may not read or write
        where = getattr(error, "filename", None) or data_dir
        return DatasetDamaged(f"dataset {name!r}: permission denied on {where} ({cause}); give this user access, "
                              "or set --config.data_dir (or TFDS_DATA_DIR) to a folder it can read and write.")
    if not os.path.exists(folder):  # nothing there to delete: it could not be prepared
        return DatasetDamaged(f"dataset {name!r} could not be prepared in {data_dir} ({cause}); check that folder "
                              "(space, permissions), or set --config.data_dir (or TFDS_DATA_DIR) to another.")
    if name == OFFLINE and (isinstance(error, _SOURCE_ERRORS) or "gzip" in type(error).__name__.lower()):
        from jaxcnn.data.fashion_mnist import source_dir

        return DatasetDamaged(f"the Fashion-MNIST source files in {source_dir()} are damaged ({cause}); reinstall "
                              "them with `sudo apt-get install --reinstall dataset-fashion-mnist`, delete "
                              f"{folder} and run again.")
    if name == OFFLINE:
        fix = f"delete it (rm -r {folder}) and run again: it is rebuilt from Debian's files in seconds."
    else:
        fix = (f"delete it (rm -r {folder}) and prepare it again: `python scripts/prepare_data.py ...` for the "
               f"datasets that script writes, else `tfds build {name} --file_format=array_record "
               f"--data_dir={data_dir}`.")
    return DatasetDamaged(f"dataset {name!r} in {folder} is damaged ({cause}); {fix}")


def readable(load):
    """Decorate a loader `load(name, split, *, data_dir_path=None, ...)`: what a damaged dataset raises
    becomes DatasetDamaged (see the module docstring)."""
    signature = inspect.signature(load)

    @functools.wraps(load)
    def wrapper(*args, **kwargs):
        try:
            return load(*args, **kwargs)
        except Exception as e:
            bound = signature.bind_partial(*args, **kwargs)
            name = bound.arguments.get("name")

            if _ours(e) or not isinstance(name, str) or name in registry.names("generated"):
                raise

            raise damaged(name, data_dir(bound.arguments.get("data_dir_path")), e) from None

    return wrapper
