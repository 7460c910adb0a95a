#!/usr/bin/env python
"""Train a registry model: the main job of jaxcnn.

    python scripts/train.py --config experiments/configs/default.py --workdir runs/default \
        [--config.model.name=resnet20 --config.parallel=mesh --config.num_steps=2000 ...]

Resumes from the latest checkpoint in --workdir. Multi-host: pass
--coordinator=HOST:PORT --num_processes=N --process_id=I on every host (or set
JAXCNN_COORDINATOR, JAXCNN_NUM_PROCESSES, JAXCNN_PROCESS_ID).
Exit status: 0 done, 1 diverged (NaN/Inf), 2 bad configuration or input.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (experiments/configs/*.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics.jsonl and TensorBoard events.")
_COORD = flags.DEFINE_string("coordinator", None, "Multi-host: address HOST:PORT of process 0.")
_NPROC = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")


def _fail(msg: str, code: int = 2):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


_EXTRA_MODEL_FIELDS = {}


def _config_path(argv):
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _literal(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def precheck_argv(argv) -> list:
    """Refuse unknown --config.KEY overrides with a close-key suggestion before
    absl sees them, and take out --config.model.FIELD=VALUE for model fields the
    config file does not name (they are model overrides, checked by create_model)."""
    import importlib.util

    from jaxcnn.train.config import check_key

    model_keys = None
    path = _config_path(argv)
    if path and os.path.exists(path.split(":", 1)[0]):
        spec = importlib.util.spec_from_file_location("_train_config", path.split(":", 1)[0])
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
            model_keys = set(mod.get_config().model.keys())
        except Exception:  # absl reports a broken config file itself
            model_keys = None
    kept = [argv[0]]
    for arg in argv[1:]:
        if arg.startswith("--config."):
            key = arg[len("--config."):].split("=", 1)[0]
            try:
                check_key(key)
            except ValueError as e:
                _fail(str(e))
            field = key[len("model."):] if key.startswith("model.") else None
            if field and model_keys is not None and field not in model_keys and "=" in arg and "." not in field:
                _EXTRA_MODEL_FIELDS[field] = _literal(arg.split("=", 1)[1])
                continue
        kept.append(arg)
    sys.argv[:] = kept  # config_flags reads the overrides from sys.argv
    try:
        rest = flags.FLAGS(kept)  # parse now so that a bad value is one line and exit status 2
    except flags.Error as e:
        _fail(str(e))
    return rest


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; overrides look like --config.KEY=VALUE.")
    if _CONFIG.value is None:
        _fail("--config is required, e.g. --config experiments/configs/default.py")
    if not _WORKDIR.value:
        _fail("--workdir is required, e.g. --workdir runs/default")
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # orbax and TFDS log every step of every save at INFO
    from jaxcnn.train import distributed

    try:
        distributed.initialize(_COORD.value, _NPROC.value, _PID.value)
    except ValueError as e:
        _fail(str(e))
    import jax

    import jaxcnn
    from jaxcnn.train import TrainingDiverged, train_and_evaluate

    if jax.process_index() == 0 and jax.default_backend() == "cpu":
        print(f"XLA:CPU flags of jaxcnn.runtime: {jaxcnn.xla_cpu_status()}")

    config = _CONFIG.value
    if _EXTRA_MODEL_FIELDS:
        with config.unlocked():
            for field, value in _EXTRA_MODEL_FIELDS.items():
                config.model[field] = value
    try:
        final = train_and_evaluate(config, _WORKDIR.value)
    except TrainingDiverged as e:
        _fail(str(e), code=1)
    except (ValueError, TypeError, FileNotFoundError) as e:
        _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    if jax.process_index() == 0:
        print(f"step {final['step']}: test accuracy {final['eval_accuracy']:.4f} "
              f"(test loss {final['eval_loss']:.4f}; {jax.device_count()} devices, {jax.process_count()} processes); "
              f"metrics in {os.path.join(_WORKDIR.value, 'metrics.jsonl')}")


if __name__ == "__main__":
    argv = precheck_argv(sys.argv)  # parses the flags
    app.run(main, argv=argv, flags_parser=lambda a: a)  # already parsed: pass leftovers to main
