"""Writes two processes could share: a per-target lock, a private temporary
directory, then a rename.

    with target_lock(path, "dataset 'photos'"):            # refused at once, naming the holder
        ...
    with target_lock(path, "the TFDS cache", wait=True):   # waits its turn (saying so once)
        ...
    tmp = private_dir(parent, "incomplete.")               # mkdtemp: unique to this writer

The lock is an flock on `<path>.lock` (a file beside the target, left in
place: removing it would let a third writer lock a different inode), held
for as long as the `with` block; the holder writes "pid N on HOST since TIME:
COMMAND" into it, which is what a refused writer is told. flock locks are
released by the kernel when their process dies, so a killed writer never
leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import tempfile
import time


class Busy(ValueError):
    """Another process holds the lock of the target this one would write."""


def _holder_text() -> str:
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
    return (f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime())}: {command or 'python'}")


UNNAMED = "another process"  # what a refused writer is told when the holder's line is not there


def holder(lock_path: str) -> str:
    """What the holder of `lock_path` wrote about itself (UNNAMED when nothing)."""
    try:
        with open(lock_path) as f:
            text = f.read().strip().replace("\n", " ")
    except OSError:
        text = ""
    return text or UNNAMED


def try_lock(f, lock_path: str, settle: float = 1.0) -> str | None:
    """Take the lock without waiting: None when taken, else what its holder wrote. A holder writes its line
    just after locking and empties it just before unlocking, so an empty file under a held lock is a moment
    of either: look again (and try the lock again) for up to `settle` seconds before saying UNNAMED."""
    deadline = time.monotonic() + settle
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except OSError:
            who = holder(lock_path)
            if who != UNNAMED or time.monotonic() > deadline:
                return who
            time.sleep(0.01)


@contextlib.contextmanager
def target_lock(path: str, what: str, *, wait: bool = False, log=None):
    """Hold the lock of target `path` (see the module docstring). wait=False: raise Busy (one line naming
    `what`, the holder and the fix) when another process holds it; wait=True: block until it is free, after
    calling `log` once with a line saying whom it waits for."""
    lock_path = f"{os.path.normpath(path)}.lock"
    os.makedirs(os.path.dirname(lock_path) or ".", exist_ok=True)
    f = open(lock_path, "a+")
    try:
        who = try_lock(f, lock_path)
        if who is not None:
            if not wait:
                raise Busy(f"{what} is being written by {who}; wait for it to finish and run this again "
                           f"(the lock is {lock_path}).")
            if log is not None:
                log(f"waiting for {who}, which is writing {what} ...")
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(_holder_text() + "\n")
        f.flush()
        yield lock_path
    finally:
        try:
            f.seek(0)
            f.truncate()
        except OSError:
            pass
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


def private_dir(parent: str, prefix: str) -> str:
    """A new empty directory in `parent` that no other writer shares (tempfile.mkdtemp)."""
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=parent)
