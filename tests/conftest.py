"""Test set-up: eight simulated CPU devices, so the data-parallel paths run on
one machine, and jaxcnn's XLA:CPU flags (as every entry point applies them).
This must happen before JAX starts a backend."""

import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
# One persistent compilation cache per pytest session, shared by xdist's workers and every subprocess a test
# starts: the suite compiles the same tiny train steps in many tests (a resumed run, a second arm, a script), and a
# cached executable is the same program, so results stay bit-identical. A fresh folder each session: nothing
# compiled against another build of the native kernels is ever read back.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxcnn-test-xla-cache-")
    os.environ["JAXCNN_TEST_XLA_CACHE_OWNER"] = str(os.getpid())
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TFDS_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", ".tfds_test_cache"))

import jaxcnn.runtime  # noqa: E402

jaxcnn.runtime.configure()


def pytest_configure(config):
    # One id for this pytest session, inherited by xdist's workers: where the fault suite's tallies meet.
    import uuid

    os.environ.setdefault("JAXCNN_TEST_SESSION", uuid.uuid4().hex[:12])


def pytest_unconfigure(config):
    if os.environ.get("JAXCNN_TEST_XLA_CACHE_OWNER") == str(os.getpid()):  # the process that made the cache
        import shutil

        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    """The fault-injection suite's figures (tests/test_robustness_faults.py): injected, survived, refused,
    lost; also written to $JAXCNN_FAULT_SUMMARY if set."""
    if hasattr(terminalreporter.config, "workerinput"):
        return  # an xdist worker: the controller reports
    import json
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    import fault_tools

    lines = fault_tools.summary_lines()
    if lines:
        terminalreporter.write_sep("-", "fault injection")
        for line in lines:
            terminalreporter.write_line(line)
        if os.environ.get("JAXCNN_FAULT_SUMMARY"):
            with open(os.environ["JAXCNN_FAULT_SUMMARY"], "w") as f:
                json.dump(fault_tools.read_tallies(), f, indent=1)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _process_hooks_restored():
    """A script's main() run in-process that fails quiets the process for its ending (exception hooks, logging,
    absl's and asyncio's loggers); each test gets them back as they were."""
    import logging
    import sys
    import threading

    from jaxcnn.train.checkpoint import _QuietOrbax

    hooks = sys.excepthook, sys.unraisablehook, threading.excepthook
    levels = {name: logging.getLogger(name).level for name in _QuietOrbax.LATE_REPORTERS}
    disabled = logging.root.manager.disable
    yield
    sys.excepthook, sys.unraisablehook, threading.excepthook = hooks
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.disable(disabled)
