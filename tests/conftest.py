"""Test set-up: eight simulated CPU devices, so the data-parallel paths run on
one machine, and jaxcnn's XLA:CPU flags (as every entry point applies them).
This must happen before JAX starts a backend."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TFDS_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", ".tfds_test_cache"))

import jaxcnn.runtime  # noqa: E402

jaxcnn.runtime.configure()


def pytest_configure(config):
    # One id for this pytest session, inherited by xdist's workers: where the fault suite's tallies meet.
    import uuid

    os.environ.setdefault("JAXCNN_TEST_SESSION", uuid.uuid4().hex[:12])


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
