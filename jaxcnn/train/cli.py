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
import importlib.util
import os
import signal
import sys
from typing import Callable, Optional

import ml_collections

from jaxcnn import runtime
from jaxcnn._env import check_environment
from jaxcnn._extras import MissingExtra
from jaxcnn._validation import suggest
from jaxcnn.train import distributed
from jaxcnn.train.config import check_key
from jaxcnn.train.errors import CheckpointError, TrainingDiverged, TrainingInterrupted, tracebacks_asked

OVERRIDE_HELP = """\
--config FILE is a config file defining get_config(), or the name of a packaged config (jaxcnn/configs:
default, resnet20, ...; `--config list` names them all). Any key of the config can be overridden, as
ml_collections' config_flags reads it: --config.KEY=VALUE or --config.KEY VALUE, e.g.
  --config.num_steps=500 --config.batch_size 64 --config.optimizer.learning_rate=0.01
  --config.model.name=resnet20 --config.model.skip=False --config.parallel=pmap --config.dataset=synthetic
Booleans and keys the config does not define yet (model fields) take their value after '=' (or
--config.KEY / --noconfig.KEY for booleans). --print_config prints the resolved config and exits.
Every key, with its default, is listed in jaxcnn/train/config.py (base_config); keys of config.model
other than name are fields of the model."""

PACKAGED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


class UsageError(ValueError):
    """A bad command line or config file (exit status 2)."""


def parser(doc: str, *, config_help: str = "config file defining get_config(), or a packaged config's name",
           config_required: bool = True, print_config: bool = True, config_flag: bool = True
           ) -> argparse.ArgumentParser:
    """An argparse parser with --config FILE (and --print_config) whose --help also explains the
    --config.KEY=VALUE overrides. config_flag=False: a script whose config follows from its other flags
    (`parse(..., load=...)`) takes the overrides without a --config FILE."""
    first, _, rest = (doc or "").strip().partition("\n\n")
    p = argparse.ArgumentParser(description=first, epilog=OVERRIDE_HELP + ("\n\n" + rest if rest else ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if config_flag:
        p.add_argument("--config", required=config_required, metavar="FILE", help=config_help)
    if print_config:
        p.add_argument("--print_config", action="store_true",
                       help="print the resolved config (the file with every override applied) and exit")
    return p


def packaged_configs() -> list[str]:
    """The names of the configs shipped inside the package (jaxcnn/configs/NAME.py), for --config NAME."""
    if not os.path.isdir(PACKAGED):
        return []
    return sorted(n[:-3] for n in os.listdir(PACKAGED) if n.endswith(".py") and not n.startswith("_"))


def resolve_config(name_or_path: str) -> str:
    """The config file `name_or_path` names: an existing file, else a packaged config's name (with or
    without .py); one-line UsageError naming the packaged configs otherwise."""
    if os.path.isfile(name_or_path):
        return name_or_path
    stem = name_or_path[:-3] if name_or_path.endswith(".py") else name_or_path
    if os.sep not in stem and stem in packaged_configs():
        return os.path.join(PACKAGED, stem + ".py")
    names = packaged_configs()
    raise UsageError(f"no config file {name_or_path!r} and no packaged config of that name; pass an existing file "
                     f"(such as experiments/configs/default.py) or one of: {', '.join(names)}."
                     + suggest(stem, names))


def load_config(path: str) -> ml_collections.ConfigDict:
    """get_config() of the Python file `path` (or of the packaged config so named); one-line UsageError for a
    missing file, a syntax error, a file without get_config or one whose get_config fails."""
    path = resolve_config(path)
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


def _is_override(arg: str) -> bool:
    return arg.split("=", 1)[0].lstrip("-").removeprefix("no").startswith("config.") and arg.startswith("-")


def _without_config_file(argv: list[str]) -> list[str]:
    """argv less its `--config FILE` / `--config=FILE` (read by argparse; config_flags reads the overrides)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--config", "-config"):
            skip = True
        elif not arg.startswith(("--config=", "-config=")):
            out.append(arg)
    return out


def override(config, argv: list[str]) -> list[str]:
    """Apply the --config.KEY=VALUE / --config.KEY VALUE flags of `argv` to `config` in place, through
    ml_collections' config_flags (which parses each value as the type of the key it overrides: a key the
    config does not define yet, such as a model field, as a Python literal, else a string); returns the rest of
    argv in order. A misspelt key is one UsageError suggesting close ones."""
    from absl import flags
    from ml_collections import config_flags

    argv = _without_config_file(list(argv))
    if not any(_is_override(a) for a in argv):
        return argv
    for arg in argv:
        if _is_override(arg):
            try:
                check_key(arg.split("=", 1)[0].lstrip("-").removeprefix("no").removeprefix("config."))
            except ValueError as e:
                raise UsageError(str(e)) from None
    values = flags.FlagValues()
    program = ["jaxcnn"]
    with config.unlocked() if hasattr(config, "unlocked") else _nothing():
        try:
            config_flags.DEFINE_config_dict("config", config, flag_values=values, lock_config=False,
                                            accept_new_attributes=True, sys_argv=program + argv)
            rest = values(program + argv, known_only=True)[1:]
        except (flags.Error, ValueError, TypeError, KeyError, AttributeError) as e:
            raise UsageError(_first_line(e).removeprefix("flag ")) from None
    _refuse_stranded_values(values, argv, rest)
    return rest


def _refuse_stranded_values(values, argv: list[str], rest: list[str]) -> None:
    """`--config.KEY VALUE` where KEY is a boolean or a key the config does not define (config_flags reads those
    as flags without a value, `--config.model.skip` = True): VALUE would be left over as a stray argument, so it
    is refused in one line that shows the form to write."""
    for i, arg in enumerate(argv[:-1]):
        if not _is_override(arg) or "=" in arg or argv[i + 1].startswith("-"):
            continue
        name = arg.lstrip("-")
        flag = values[name] if name in values else None
        if flag is not None and flag.boolean and argv[i + 1] in rest:
            key = name.removeprefix("config.")
            raise UsageError(f"--config.{key} {argv[i + 1]}: a boolean, or a key the config file does not define, "
                             f"takes its value after '=': --config.{key}={argv[i + 1]}.")


def _without_overrides(argv: list[str]) -> list[str]:
    """argv less its --config.KEY flags and the VALUE after each that has no '='."""
    out, i = [], 0
    while i < len(argv):
        if _is_override(argv[i]):
            i += 2 if "=" not in argv[i] and i + 1 < len(argv) and not argv[i + 1].startswith("-") else 1
        else:
            out.append(argv[i])
            i += 1
    return out


def apply_overrides(config, overrides: list[str]):
    """Apply ["KEY=VALUE", ...] (dotted keys, without the --config. prefix) to `config` in place, as the
    command line's --config.KEY=VALUE flags are (config_flags)."""
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--config.{item} needs a value: --config.{item}=VALUE.")
    override(config, [f"--config.{item}" for item in overrides])
    return config


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def parse(p: argparse.ArgumentParser, argv: Optional[list[str]] = None, *, config_path: Optional[str] = None,
          load: Optional[Callable] = None):
    """(args, config): the script's flags and the config (from --config, `config_path`, or `load(args)` for a
    script whose config follows from its other flags) with every --config.KEY override applied. Bad flags end
    the process with one line and status 2; --print_config prints the resolved config and exits 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--print_config" in argv:  # only the config is needed to print it (not --workdir)
        for action in p._actions:
            if action.dest != "config":
                action.required = False
    try:
        # The script's own flags first (less the --config.KEY flags and their values), to find the config...
        first = p.parse_args(_without_overrides(argv))
        path = getattr(first, "config", None) or config_path
        config = load(first) if load is not None else load_config(path) if path else None
        if config is None:
            if any(_is_override(a) for a in argv):
                raise UsageError("--config.KEY=VALUE overrides need a config (--config FILE).")
            args = first
        else:  # ...then config_flags takes its overrides, and argparse checks the rest again
            rest = override(config, argv)
            args = p.parse_args(rest + (["--config", first.config] if getattr(first, "config", None) else []))
    except UsageError as e:
        fail(str(e))
    if getattr(args, "print_config", False):
        if config is None:
            fail("--print_config needs a config (--config FILE).")
        print(config)
        sys.exit(0)
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
    except MissingExtra as e:  # a feature whose optional library is not installed: the extra to install
        return 2, f"error: {e}"
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

    try:  # every environment variable jaxcnn reads holds one of its documented values, before any work
        check_environment()
    except ValueError as e:
        fail(str(e))
    runtime.configure()
    _drop_closed_event_loop_reports()
    logging.set_verbosity(logging.ERROR)  # orbax and TFDS log every save at INFO and routine notes at WARNING
    try:
        distributed.initialize(coordinator, num_processes, process_id)
    except ValueError as e:
        fail(str(e))
