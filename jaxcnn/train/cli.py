"""What every script shares: a config file, `--config.KEY=VALUE` overrides of
any key, and one-line errors with fixed exit statuses.

    p = cli.parser(__doc__)                      # --config FILE (and --help)
    p.add_argument("--workdir", ...)
    args, config = cli.parse(p, argv)            # config loaded, overridden, not yet validated
    sys.exit(cli.main(lambda: library_call(config, args.workdir)))

Exit statuses: 0 done, 1 diverged (NaN/Inf), 2 bad configuration or input,
130 / 143 interrupted by SIGINT / SIGTERM (a checkpoint of the last finished
step was saved: the same command resumes). JAXCNN_TRACEBACKS=1 prints the
traceback above an error's one line, and keeps the libraries' late reports.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import signal
import sys
from typing import Callable, Optional

import ml_collections

from jaxcnn import runtime
from jaxcnn.train import distributed
from jaxcnn.train.config import check_key
from jaxcnn.train.errors import CheckpointError, TrainingDiverged, TrainingInterrupted, tracebacks_asked

OVERRIDE_HELP = """\
Any key of the config can be overridden: --config.KEY=VALUE, e.g.
  --config.num_steps=500 --config.batch_size=64 --config.optimizer.learning_rate=0.01
  --config.model.name=resnet20 --config.model.skip=False --config.parallel=pmap --config.dataset=synthetic
Every key, with its default, is listed in jaxcnn/train/config.py (base_config); keys of config.model
other than name are fields of the model."""


class UsageError(ValueError):
    """A bad command line or config file (exit status 2)."""


def parser(doc: str, *, config_help: str = "config file (experiments/configs/*.py) defining get_config()",
           config_required: bool = True) -> argparse.ArgumentParser:
    """An argparse parser with --config FILE whose --help also explains the --config.KEY=VALUE overrides."""
    first, _, rest = (doc or "").strip().partition("\n\n")
    p = argparse.ArgumentParser(description=first, epilog=OVERRIDE_HELP + ("\n\n" + rest if rest else ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=config_required, metavar="FILE", help=config_help)
    return p


def load_config(path: str) -> ml_collections.ConfigDict:
    """get_config() of the Python file `path`; one-line UsageError for a missing file, a syntax error, a file
    without get_config or one whose get_config fails."""
    if not os.path.isfile(path):
        raise UsageError(f"no config file {path!r}; pass an existing file such as experiments/configs/default.py.")
    name = "jaxcnn_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise UsageError(f"config file {path} has a syntax error at line {e.lineno}: {e.msg}.") from None
    except Exception as e:
        raise UsageError(f"config file {path} failed to load ({type(e).__name__}: {_first_line(e)}).") from None
    if not callable(getattr(module, "get_config", None)):
        raise UsageError(f"config file {path} defines no get_config(); it must return a config built on "
                         "jaxcnn.train.base_config().")
    try:
        config = module.get_config()
    except Exception as e:
        raise UsageError(f"get_config() of {path} failed ({type(e).__name__}: {_first_line(e)}).") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise UsageError(f"get_config() of {path} returned a {type(config).__name__}, not an "
                         "ml_collections.ConfigDict; start it from jaxcnn.train.base_config().")
    return config


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _parse_value(key: str, text: str, current):
    """`text` as the type of the key's current value (a new model field: a Python literal, else a str)."""
    def literal():
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise UsageError(f"--config.{key} takes True or False, got {text!r}.")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"--config.{key} takes an int (like {current}), got {text!r}.") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"--config.{key} takes a number (like {current}), got {text!r}.") from None
    if isinstance(current, str):
        return text
    if isinstance(current, (tuple, list)):
        value = literal()
        if isinstance(value, (tuple, list)):
            return tuple(value)
        return () if text.strip() == "" else (value,)
    return literal()


def apply_overrides(config, overrides: list[str]):
    """Apply ["KEY=VALUE", ...] (dotted keys, without the --config. prefix) to `config` in place."""
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--config.{item} needs a value: --config.{item}=VALUE.")
        key, text = item.split("=", 1)
        try:
            check_key(key)
        except ValueError as e:
            raise UsageError(str(e)) from None
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            if part not in node:
                raise UsageError(f"unknown config key {key!r}; see jaxcnn/train/config.py:base_config.")
            node = node[part]
        current = node[leaf] if leaf in node else None
        value = _parse_value(key, text, current)
        with node.unlocked() if hasattr(node, "unlocked") else _nothing():
            try:
                node[leaf] = value
            except (TypeError, ValueError) as e:
                raise UsageError(f"--config.{key}={text}: {_first_line(e)}") from None
    return config


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def parse(p: argparse.ArgumentParser, argv: Optional[list[str]] = None, *, config_path: Optional[str] = None):
    """(args, config): the script's flags and the config (from --config, or `config_path`) with every
    --config.KEY=VALUE applied. Bad flags end the process with one line and status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides, rest = [], []
    for i, arg in enumerate(argv):
        if arg.startswith("--config."):
            overrides.append(arg[len("--config."):])
        else:
            rest.append(arg)
    args = p.parse_args(rest)
    path = getattr(args, "config", None) or config_path
    try:
        config = load_config(path) if path else None
        if config is not None:
            apply_overrides(config, overrides)
        elif overrides:
            raise UsageError("--config.KEY=VALUE overrides need a config (--config FILE).")
    except UsageError as e:
        fail(str(e))
    return args, config


def fail(message: str, code: int = 2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def entry(script_main: Callable[[], int]) -> int:
    """A script's `if __name__ == "__main__"`: its main(), where a Ctrl-C before training (while flags are read
    or JAX starts) is one line and exit status 130, not a KeyboardInterrupt traceback."""
    try:
        return script_main()
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C) before training started; nothing to resume: run the command again.",
              file=sys.stderr)
        return 128 + signal.SIGINT


def _quiet_after_failure() -> None:
    """Before a failure is reported in its one line: what the libraries' threads and exit handlers still print
    or log about it (orbax's closed event loops and abandoned tasks, tensorboardX's flush at exit on a full disk)
    is dropped, so the one line stays one line. JAXCNN_TRACEBACKS=1 keeps them (for debugging)."""
    import logging
    import threading

    if tracebacks_asked():
        return
    logging.disable(logging.CRITICAL)  # e.g. asyncio's "Task exception was never retrieved" at collection
    sys.excepthook = lambda *a: None
    sys.unraisablehook = lambda *a: None
    threading.excepthook = lambda *a: None


def main(fn: Callable[[], Optional[int]]) -> int:
    """Run `fn` (a script's one library call); map every expected failure to one line and an exit status. The
    libraries' late reports are quieted before that line is printed, so a writer thread that fails a moment
    after the main thread cannot add its traceback below it."""
    code, message = _main(fn)
    if code != 0:
        _quiet_after_failure()
    if message:
        print(message, file=sys.stderr)
    return code


def _main(fn: Callable[[], Optional[int]]) -> tuple[int, Optional[str]]:
    """(exit status, the one line to print or None)."""
    try:
        return fn() or 0, None
    except TrainingDiverged as e:
        return 1, f"error: {e}"
    except TrainingInterrupted as e:
        return 128 + e.signum, str(e)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT, ("interrupted (Ctrl-C) outside a training step, or a second Ctrl-C: stopped "
                                     "without a new checkpoint; the same command resumes from the last one.")
    except (ValueError, TypeError, FileNotFoundError, CheckpointError) as e:
        _traceback_if_asked()
        return 2, f"error: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
    except OSError as e:
        import errno

        _traceback_if_asked()
        if e.errno == errno.ENOSPC:
            return 2, (f"error: no space left on the device of {e.filename or 'the output'}; free some space and "
                       "run the same command again to resume.")
        return 2, (f"error: {e.strerror or type(e).__name__}{': ' + str(e.filename) if e.filename else ''}; check "
                   "that path (permissions, space, a file where a folder belongs) and run the same command again.")


def _traceback_if_asked() -> None:
    """With JAXCNN_TRACEBACKS=1, the traceback of the exception being handled goes to stderr above its one line
    (the exit status stays): where a TypeError or ValueError came from when it is a bug, not bad input."""
    if tracebacks_asked():
        import traceback

        traceback.print_exc(file=sys.stderr)


def _drop_closed_event_loop_reports() -> None:
    """When a checkpoint write fails (a full disk), orbax closes its event loop while tensorstore's writer
    threads still report to it; each report prints a 'RuntimeError: Event loop is closed' traceback from a
    thread, around the one-line error that says what happened. Those reports alone are dropped; every other
    exception reaches the previous hook."""
    def noise(kind, value, tb) -> bool:
        frames = []
        while tb is not None:
            frames.append(tb.tb_frame.f_code.co_name)
            tb = tb.tb_next
        return kind is RuntimeError and str(value) == "Event loop is closed" and frames[-1:] == ["_check_closed"]

    previous_excepthook, previous_unraisable = sys.excepthook, sys.unraisablehook

    def excepthook(kind, value, tb):
        if not noise(kind, value, tb):
            previous_excepthook(kind, value, tb)

    def unraisablehook(info):  # how tensorstore's callback threads report (PyErr_WriteUnraisable)
        if not noise(info.exc_type, info.exc_value, info.exc_traceback):
            previous_unraisable(info)

    sys.excepthook, sys.unraisablehook = excepthook, unraisablehook


def setup_process(coordinator=None, num_processes=None, process_id=None) -> None:
    """What every entry point does first: jaxcnn's XLA:CPU flags, quieter absl logs, and (multi-host) joining
    the other processes."""
    from absl import logging

    runtime.configure()
    _drop_closed_event_loop_reports()
    logging.set_verbosity(logging.ERROR)  # orbax and TFDS log every save at INFO and routine notes at WARNING
    try:
        distributed.initialize(coordinator, num_processes, process_id)
    except ValueError as e:
        fail(str(e))
