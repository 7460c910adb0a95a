"""A workdir is self-describing and owned by one run at a time.

    with Workdir(path, config) as wd:      # locked; config.json written or checked
        ...
    config = workdir_config(path)          # the config a workdir was trained with
    state = restore(build(config), path)   # its latest checkpoint, checked against the model

* `config.json` holds the resolved config and the model name, written when a
  run first starts, and the `provenance` of the process that last (re)started
  it (jaxcnn.train.provenance: versions, git commit, devices). A rerun whose config changes what the checkpoints mean
  (the model or any model field, the data, batch size, seed, optimizer,
  schedule, ...) is refused in one line naming the keys that differ; a
  finished run may be extended by a larger `num_steps`.
* config.json also holds the identity of the data (key "data": the dataset's
  name, class names, split sizes and a fingerprint of its prepared files;
  jaxcnn.data.identity). A rerun on data that differs from it (the dataset
  prepared again from another folder) is refused in one line, and so are
  evaluating and predicting (`check_data`).
* `.lock` is held (flock) while a run works, so a second run on the same
  workdir is refused in one line instead of interleaving checkpoints.
* `metrics.jsonl` is read back tolerantly: a line cut by a crash, a line that
  is not a JSON object, or records of steps about to be redone are dropped.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from typing import Optional

import ml_collections

from jaxcnn._locks import try_lock
from jaxcnn.data.identity import check as check_identity
from jaxcnn.data.identity import of_config
import jaxcnn.train.provenance as _provenance  # looked up per record (tests replace provenance())
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.config import base_config, flat, not_read_by_training

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = ".lock"
DATA_KEY = "data"  # config.json: the identity of the data (jaxcnn.data.identity)

# Keys a rerun may change without changing what the checkpoints mean.
HARMLESS = ("data_dir", "eval_split", "test_split", "eval_examples", "eval_batch_size", "log_every", "eval_every",
            "checkpoint_every", "keep_checkpoints", "progress", "tensorboard", "parallel", "nan_policy",
            "data_workers", "allow_split_overlap")


class WorkdirError(ValueError):
    """A workdir that cannot be used for this run (in use, another config, not writable)."""


def check_writable(workdir: str) -> str:
    """Create `workdir` if needed and make sure it is writable (one-line error otherwise); its absolute path."""
    workdir = os.path.abspath(os.path.expanduser(os.fspath(workdir)))
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise WorkdirError(f"workdir {workdir} is a file, not a directory; pass a --workdir that is a directory "
                           "or does not exist yet.")
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_test.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise WorkdirError(f"no space left on the device of {workdir}; free some space or use a --workdir on "
                               "another disk.") from None
        raise WorkdirError(f"workdir {workdir} is not writable ({e.strerror}); pass a --workdir you can write to."
                           ) from None
    return workdir


def to_jsonable(value):
    if isinstance(value, ml_collections.ConfigDict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def config_record(config, model_fields: Optional[dict] = None) -> dict:
    """What config.json holds: the model name, every field of the model as built (when known), the config."""
    rec = {"model": config.model.name, "config": to_jsonable(config)}
    if model_fields is not None:
        rec["model_fields"] = to_jsonable(model_fields)
    return rec


def _meaning(record: dict) -> dict:
    """{dotted key: value} of the keys that give the checkpoints their meaning: the model as built (every
    field, defaults included, where recorded; else the config's model section) and the rest of the config."""
    config_json = dict(record["config"])
    if "model_fields" in record:
        config_json["model"] = {"name": record["model"], **record["model_fields"]}
    out = {}

    def visit(tree, prefix):
        for k, v in tree.items():
            path = prefix + k
            if isinstance(v, dict):
                visit(v, path + ".")
            else:
                out[path] = v

    visit(config_json, "")
    return {k: v for k, v in out.items()
            if k not in HARMLESS and k != "num_steps" and not k.startswith(not_read_by_training())}


def config_differences(old: dict, new: dict) -> list[str]:
    """The meaning-bearing keys whose values differ between two config.json records."""
    a, b = _meaning(old), _meaning(new)
    # A key added to base_config after a workdir was written reads as its default there (it behaved so).
    defaults = {k: to_jsonable(v) for k, v in flat(base_config()).items()}
    differ = {k for k in set(a) | set(b)
              if a.get(k, defaults.get(k, "<absent>")) != b.get(k, defaults.get(k, "<absent>"))}
    return sorted(differ, key=lambda k: (k != "model.name", k))  # another model is named first


def read_metrics(path: str, upto: Optional[int] = None) -> list[dict]:
    """The records of metrics.jsonl (those with step <= upto, if given): lines cut by a crash and lines that
    are not JSON objects are skipped; a missing file is no records; a directory in its place is refused."""
    if os.path.isdir(path):
        raise WorkdirError(f"{path} is a directory, not a metrics file; move it away (the run writes its metrics "
                           "there).")
    if not os.path.exists(path):
        return []
    records = []
    with open(path, errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
                continue
            if upto is None or rec["step"] <= upto:
                records.append(rec)
    return records


def write_atomic(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: readers see the old or the new file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if e.errno == errno.ENOSPC:
            raise WorkdirError(f"no space left on the device of {path} (writing {len(text)} bytes); free some space "
                               "and rerun the same command to resume.") from None
        raise


class Workdir:
    """A locked workdir whose config.json matches `config` (see the module docstring).

    finished_at: the step the run recorded as finished (config.json's `finished_step`), or None.
    """

    def __init__(self, path: str, config, model_fields: Optional[dict] = None, *, owner: bool = True,
                 data: Optional[dict] = None):
        """owner=False: another process of a multi-host run owns the workdir (it alone locks and records).
        data: the identity of the data the run reads (jaxcnn.data.identity); default: that of config.dataset."""
        self.path = check_writable(path) if owner else os.path.abspath(os.path.expanduser(os.fspath(path)))
        self.config = config
        self.model_fields = model_fields
        self.data = data
        self.owner = owner
        self._lock = None
        self._record = None

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.path, METRICS_FILE)

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.path, "checkpoints")

    def __enter__(self) -> "Workdir":
        if not self.owner:
            return self
        lock_path = os.path.join(self.path, LOCK_FILE)
        lock = open(lock_path, "a+")
        owner = try_lock(lock, lock_path)  # None: taken; else the holder's line (read once it is written)
        if owner is not None:
            lock.close()
            raise WorkdirError(f"workdir {self.path} is in use by {owner}; wait for that run to end, or use another "
                               "--workdir.")
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        self._lock = lock
        try:
            self._check_config()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def recorded(self) -> Optional[dict]:
        path = os.path.join(self.path, CONFIG_FILE)
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                rec = json.load(f)
            if not isinstance(rec, dict) or not isinstance(rec.get("config"), dict):
                raise ValueError("not a config record")
        except (OSError, ValueError):
            raise WorkdirError(f"{path} is damaged (not the JSON config record a run writes); restore it, or use a "
                               "new --workdir.") from None
        return rec

    def _check_config(self) -> None:
        new = config_record(self.config, self.model_fields)
        old = self.recorded()
        if old is not None:
            if "model_fields" not in new or "model_fields" not in old:  # compare the config's model sections
                old = {k: v for k, v in old.items() if k != "model_fields"}
                diff = config_differences(old, {k: v for k, v in new.items() if k != "model_fields"})
            else:
                diff = config_differences(old, new)
            if diff:
                shown = ", ".join(f"{k} ({_short(_get(_meaning(old), k))} -> {_short(_get(_meaning(new), k))})"
                                  for k in diff[:4])
                more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
                raise WorkdirError(f"workdir {self.path} holds a run with another config: {shown}{more} differ; "
                                   "use a new --workdir for a different run (or rerun with the recorded "
                                   f"config, {os.path.join(self.path, CONFIG_FILE)}).")
            old_steps, new_steps = old["config"].get("num_steps"), new["config"]["num_steps"]
            finished = old.get("finished_step")
            if old_steps != new_steps and not (finished == old_steps and new_steps > old_steps):
                state = (f"finished at step {finished}" if finished is not None
                         else f"not finished (num_steps {old_steps})")
                raise WorkdirError(f"workdir {self.path} holds a run {state}; num_steps may only grow after a run "
                                   f"has finished (asked {new_steps}). Rerun with --config.num_steps={old_steps}, "
                                   "or use a new --workdir.")
            new["finished_step"] = finished
        new["provenance"] = _provenance.provenance()  # of the process that (re)started the run
        data = self.data if self.data is not None else data_identity(self.config)
        if old is not None and data is not None:
            check_identity(old.get(DATA_KEY), data, self.path, "resume")
        if data is not None:
            new[DATA_KEY] = data
        elif old is not None and DATA_KEY in old:
            new[DATA_KEY] = old[DATA_KEY]
        write_atomic(os.path.join(self.path, CONFIG_FILE), json.dumps(new, indent=1) + "\n")
        self._record = new

    def mark_finished(self, step: int) -> None:
        """Record in config.json that the run reached its last step (so that num_steps may then grow)."""
        if not self.owner or self._record is None:
            return
        self._record["finished_step"] = int(step)
        write_atomic(os.path.join(self.path, CONFIG_FILE), json.dumps(self._record, indent=1) + "\n")


def data_identity(config) -> Optional[dict]:
    """The identity of config.dataset as found now (jaxcnn.data.identity), or None when it cannot be read (an
    unknown or unprepared dataset: loading it names that problem itself)."""
    if not hasattr(config, "dataset"):
        return None
    try:
        return of_config(config)
    except Exception:  # noqa: BLE001 - the data loader reports an unreadable dataset in its own words
        return None


def read_record(workdir: str) -> Optional[dict]:
    """config.json of `workdir` as a dict (None when absent or unreadable)."""
    try:
        with open(os.path.join(workdir, CONFIG_FILE)) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def check_data(workdir: str, config, what: str) -> Optional[dict]:
    """Refuse (jaxcnn.data.identity.DataChanged, one line) to `what` ("evaluate", "predict with", ...) the run
    in `workdir` when the data of config.dataset found now is not the data config.json records. Returns the
    recorded identity (None for a workdir written before identities were recorded)."""
    recorded = (read_record(workdir) or {}).get(DATA_KEY)
    if recorded is None:
        return None
    found = data_identity(config)
    if found is not None:
        check_identity(recorded, found, workdir, what)
    return recorded


def progress_note(workdir: str, step: int, num_steps: int) -> Optional[str]:
    """None for a run whose checkpoint `step` is its last (num_steps), else one line saying that the run is
    unfinished or was interrupted, at which step, and how to finish it."""
    if step >= num_steps:
        return None
    return (f"unfinished run: its latest checkpoint is step {step} of {num_steps} (interrupted or still "
            f"training); these figures are of that step. Finish it by running the same train command on "
            f"--workdir {workdir}.")


def _get(flat_meaning: dict, dotted: str):
    return flat_meaning.get(dotted, "<absent>")


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _tuples(v):
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


def workdir_config(workdir: str) -> ml_collections.ConfigDict:
    """The ml_collections config a workdir was trained with (its config.json); keys added to base_config since
    the run was recorded read as their defaults."""
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{workdir} has no config.json; pass the --workdir of a training run.")
    with open(path) as f:
        record = json.load(f)
    cfg = record["config"]
    model = cfg.pop("model")
    sections = {k: ml_collections.ConfigDict(_tuples(v)) if isinstance(v, dict) else _tuples(v)
                for k, v in cfg.items()}
    config = ml_collections.ConfigDict(sections)
    config.model = ml_collections.ConfigDict(_tuples(model))
    for key, default in base_config().items():  # keys added since the run was recorded: their defaults
        if key not in config:
            config[key] = default
        elif key != "model" and isinstance(default, ml_collections.ConfigDict):
            for sub, value in default.items():
                if sub not in config[key]:
                    config[key][sub] = value
    return config


def restore(setup, workdir: str, step: Optional[int] = None):
    """The host TrainState of `workdir`'s checkpoint at `step` (default: the latest), checked against setup's
    model; a step without a checkpoint is one ValueError naming the steps there are."""
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        if ckpt.latest_step() is None:
            raise ValueError(f"no checkpoint in {workdir}/checkpoints; train it first (scripts/train.py).")
        if step is not None and int(step) not in ckpt.all_steps():
            raise ValueError(f"{workdir} has no checkpoint of step {step}; its steps: "
                             f"{', '.join(map(str, ckpt.all_steps()))} (--step N picks one).")
        template = setup.init_state()
        arrays, _ = ckpt.restore(template.arrays(), None if step is None else int(step))
        return template.replace_arrays(arrays)
    finally:
        ckpt.close()
