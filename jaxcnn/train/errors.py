"""The failures a run reports in one line (jaxcnn.train.cli maps each to an exit status).

Kept apart from the modules that raise them, so that the command-line layer, the
engine and the checkpointer can all name them without importing each other.
"""

from __future__ import annotations

import os


class TrainingDiverged(RuntimeError):
    """The loss, the gradients or the new parameters became NaN/Inf with nan_policy='stop'."""


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM arrived; the last finished step was checkpointed."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, is damaged, or does not fit the model."""


def tracebacks_asked() -> bool:
    """JAXCNN_TRACEBACKS=1: keep every traceback and late report that a failure's one line would otherwise hide."""
    return os.environ.get("JAXCNN_TRACEBACKS", "0") == "1"
