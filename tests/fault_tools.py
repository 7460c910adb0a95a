"""Helpers of the fault-injection suite (tests/test_robustness_faults.py), run as a wrapper process:

    python tests/fault_tools.py kill-at EVENT_INDEX WORKDIR -- scripts/train.py --config ... --workdir WORKDIR

runs the script in this process with an audit hook (sys.addaudithook) that counts the file-system writes
Python makes under WORKDIR (opening a file for writing, rename/replace, remove, mkdir, rmdir, rmtree) and
sends this process SIGKILL just before the EVENT_INDEX-th (1-based) one: a kill -9 at an exact point of
the run's I/O (between config.json's temporary file and its rename, inside a checkpoint's metadata
writes, before the rename that commits a checkpoint, before a metrics line is appended, ...). Writes that
tensorstore makes from C++ are not seen; the suite's timed kills cover those.

    python tests/fault_tools.py pause-at EVENT_INDEX WORKDIR READY RELEASE -- scripts/train.py ...

pauses there instead (writing the file READY, holding whatever the run holds, e.g. the workdir's lock)
until the file RELEASE exists: a signal or a second run then arrives at a known point.

    python tests/fault_tools.py count WORKDIR -- scripts/train.py ...

runs the script to its end and prints the number of such events (how many kill points a run has).
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

WRITE_EVENTS = {"os.rename", "os.replace", "os.remove", "os.unlink", "os.mkdir", "os.rmdir", "shutil.rmtree",
                "os.truncate"}


def _path_of(event: str, args) -> str:
    if not args:
        return ""
    first = args[0]
    try:
        return os.path.abspath(os.fsdecode(first)) if isinstance(first, (str, bytes, os.PathLike)) else ""
    except (TypeError, ValueError):
        return ""


def _is_write(event: str, args) -> bool:
    if event == "open":
        mode, flags = (args[1] if len(args) > 1 else None), (args[2] if len(args) > 2 else 0)
        if isinstance(mode, str):
            return any(c in mode for c in "wax+")
        return bool(isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND))
    return event in WRITE_EVENTS


def install(workdir: str, at: int | None, action=None) -> list:
    """Count write events under `workdir`; call `action()` once, just before event number `at`."""
    root = os.path.abspath(workdir)
    count = [0]

    def hook(event, args):
        if event != "open" and event not in WRITE_EVENTS:
            return
        path = _path_of(event, args)
        if not (path == root or path.startswith(root + os.sep)) or not _is_write(event, args):
            return
        count[0] += 1
        if at is not None and count[0] == at and action is not None:
            action()

    sys.addaudithook(hook)
    return count


def _pause_until(release: str, ready: str):
    def action():
        import time

        with open(ready, "w") as f:  # not under the workdir: not an event
            f.write(str(os.getpid()))
        while not os.path.exists(release):
            time.sleep(0.01)  # signal handlers run between these sleeps
    return action


def main(argv: list[str]) -> int:
    mode, rest = argv[0], argv[1:]
    split = rest.index("--")
    opts, script_argv = rest[:split], rest[split + 1:]
    if mode == "kill-at":
        at, workdir, action = int(opts[0]), opts[1], lambda: os.kill(os.getpid(), signal.SIGKILL)
    elif mode == "pause-at":  # pause-at EVENT WORKDIR READY_FILE RELEASE_FILE: wait there until RELEASE exists
        at, workdir, action = int(opts[0]), opts[1], _pause_until(opts[3], opts[2])
    elif mode == "count":
        at, workdir, action = None, opts[0], None
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    count = install(workdir, at, action)
    sys.argv = script_argv
    code = 0
    try:
        runpy.run_path(script_argv[0], run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if mode == "count":
        print(f"events {count[0]}", file=sys.stderr)
    return code




# ---------------------------------------------------------------------------------------------------------
# The tally: each test of the suite records the faults it injected and how each ended; every pytest process
# (xdist worker) writes its own file under session_dir(), and the terminal summary adds them up.

OUTCOMES = ("survived", "refused", "lost")


def session_dir() -> str:
    import tempfile

    session = os.environ.get("JAXCNN_TEST_SESSION", "default")
    path = os.path.join(tempfile.gettempdir(), "jaxcnn-faults", session)
    os.makedirs(path, exist_ok=True)
    return path


def write_tally(tally: dict, name: str) -> str:
    import json

    path = os.path.join(session_dir(), f"tally-{name}.json")
    with open(path, "w") as f:
        json.dump(tally, f)
    return path


def read_tallies() -> dict:
    """{"kinds": {kind: {"injected", "survived", "refused", "lost"}}, totals...} over every process's file."""
    import glob
    import json

    kinds: dict = {}
    for path in sorted(glob.glob(os.path.join(session_dir(), "tally-*.json"))):
        with open(path) as f:
            for kind, counts in json.load(f).items():
                into = kinds.setdefault(kind, {"injected": 0, **{o: 0 for o in OUTCOMES}})
                for k, v in counts.items():
                    into[k] = into.get(k, 0) + v
    totals = {k: sum(c[k] for c in kinds.values()) for k in ("injected", *OUTCOMES)}
    return {"kinds": kinds, **totals}


def summary_lines() -> list[str]:
    t = read_tallies()
    if not t["kinds"]:
        return []
    lines = [f"fault injection: {t['injected']} faults injected, {t['survived']} survived (bit-identical to an "
             f"uninterrupted run), {t['refused']} refused in one line, {t['lost']} lost"]
    for kind, c in sorted(t["kinds"].items()):
        lines.append(f"  {kind}: {c['injected']} injected, {c['survived']} survived, {c['refused']} refused, "
                     f"{c['lost']} lost")
    return lines


# ---------------------------------------------------------------------------------------------------------
# Comparing a workdir with the reference run, and the flipped-byte runner.

TIMING_KEYS = ("images_per_sec", "wall_time_sec")


def metrics(workdir: str) -> list[dict]:
    """metrics.jsonl's complete records (a line cut by a kill is skipped), timings removed."""
    from jaxcnn.train.workdir import read_metrics

    return [{k: v for k, v in r.items() if k not in TIMING_KEYS}
            for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))]


def committed_steps(workdir: str) -> list[int]:
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def arrays(workdir: str, step: int) -> dict:
    """{key path: numpy array} of a checkpoint, its checksums verified."""
    import jax

    from jaxcnn.train.checkpoint import Checkpointer

    ck = Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        tree = ck.restore_variables(step)
    finally:
        ck.close()
    return {jax.tree_util.keystr(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def same_as_reference(workdir: str, reference: str, step: int) -> str:
    """'' if `workdir` ended exactly as `reference` (metrics.jsonl bar timings, every array of the
    checkpoint of `step` bit for bit), else what differs."""
    import numpy as np

    if metrics(workdir) != metrics(reference):
        return "metrics.jsonl differs"
    if step not in committed_steps(workdir):
        return f"no checkpoint of step {step}"
    got, want = arrays(workdir, step), arrays(reference, step)
    if set(got) != set(want):
        return "the checkpoint holds other arrays"
    for k in want:
        a, b = np.asarray(got[k]), np.asarray(want[k])
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            return f"array {k} differs"
    return ""


def flip_runner(config: str, reference: str, root: str, num_steps: int, stop_after: int, seed: int) -> list:
    """Train `config` for `stop_after` steps (as if killed), then for every file of the latest checkpoint's
    step directory: flip one seeded bit of a copy, run scripts/train.py again (in this process, so the
    compiled step is reused) and say how it ended; a refusal's own fix (the `rm -r` it names) is then
    applied and the run must end bit-identical to the reference. Returns one dict per fault."""
    import contextlib
    import importlib.util
    import io
    import random
    import re
    import shutil

    from jaxcnn.train import cli, train_and_evaluate

    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("train_script", os.path.join(here, "..", "scripts", "train.py"))
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)

    def script(wd):
        import threading

        hooks = sys.excepthook, sys.unraisablehook, threading.excepthook  # a failed run quiets them
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = train.main(["--config", config, "--workdir", wd])
        finally:
            sys.excepthook, sys.unraisablehook, threading.excepthook = hooks
        return code, [line for line in err.getvalue().splitlines() if line.strip()]

    template = os.path.join(root, "template")
    train_and_evaluate(cli.load_config(config), template, stop_after_steps=stop_after)
    step = committed_steps(template)[-1]
    step_dir = os.path.join(template, "checkpoints", str(step))
    files = sorted(os.path.relpath(os.path.join(d, f), step_dir) for d, _, fs in os.walk(step_dir) for f in fs)
    rng = random.Random(seed)
    faults = [(f, None) for f in files] + [("extra/metadata", "window-digit")]
    results = []
    for n, (rel, how) in enumerate(faults):
        wd = os.path.join(root, f"flip{n}")
        shutil.copytree(template, wd)
        path = os.path.join(wd, "checkpoints", str(step), rel)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        if how == "window-digit":  # a digit of a pending step's loss in the JSON record: still valid JSON
            text = data.decode()
            m = re.search(r'"loss": -?\d\.(\d)', text)
            assert m, text[:300]
            i = m.start(1)
            data[i] = ord(str((int(text[i]) + 1) % 10))
            where = f"digit at {i} of the pending step's loss"
        else:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
            where = f"bit flip at byte {i} of {len(data)}"
        with open(path, "wb") as f:
            f.write(bytes(data))
        code, lines = script(wd)
        result = {"file": rel, "where": where, "code": code, "stderr": lines}
        if code == 0:
            diff = same_as_reference(wd, reference, num_steps)
            result["outcome"] = "survived" if not diff else "lost"
            result["detail"] = diff
        elif code == 2 and len(lines) == 1:
            fix = re.search(r"rm -r (\S+?)\)", lines[0])
            if fix:
                shutil.rmtree(fix.group(1))
            again, again_lines = script(wd)
            diff = same_as_reference(wd, reference, num_steps) if again == 0 else f"exit {again}: {again_lines}"
            result["outcome"] = "refused" if not diff else "lost"
            result["detail"] = diff
        else:
            result["outcome"] = "lost"
        results.append(result)
    return results


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "flip-runner":
    import json as _json

    _config, _reference, _root, _out = sys.argv[2:6]
    _results = flip_runner(_config, _reference, _root, *(int(v) for v in sys.argv[6:9]))
    with open(_out, "w") as _f:
        _json.dump(_results, _f, indent=1)
    sys.exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
