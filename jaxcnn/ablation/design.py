"""Designs fixed before the runs: an ablation's claims, margins, seeds and budget live in its config
(experiments/ablations/NAME.py), committed before its runs. scripts/ablate.py records at a run's start the
last commit that touched the config and whether the file had uncommitted changes (run.json "design"); for
results written before that record existed, git history says whether the config's last change before the
results commit came in an earlier commit. Without git or with a shallow clone (CI) there is no history to
read: the answer is "unknown", never an error.
"""

from __future__ import annotations

import os
import subprocess
from typing import Optional

UNKNOWN = "unknown (no git history here)"


def _git(root: str, *args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def repo_root(path: str) -> Optional[str]:
    """The top of the git work tree holding `path` (None: not in one, or git is missing)."""
    return _git(path if os.path.isdir(path) else os.path.dirname(path) or ".", "rev-parse", "--show-toplevel")


def has_history(root: str) -> bool:
    return _git(root, "rev-parse", "--is-shallow-repository") == "false"


def design_commit(config_path: str) -> dict:
    """What run.json records at a run's start: {"config", "commit" (the last commit that touched the config
    file; None if it never was committed or git is missing), "uncommitted_changes" (the file differs from that
    commit, or is untracked)}."""
    path = os.path.abspath(config_path)
    root = repo_root(path)
    if root is None:
        return {"config": os.path.basename(path), "commit": None, "uncommitted_changes": None}
    rel = os.path.relpath(path, root)
    commit = _git(root, "log", "-1", "--format=%H", "--", rel) or None
    status = _git(root, "status", "--porcelain", "--", rel)
    return {"config": rel, "commit": commit, "uncommitted_changes": bool(status) if status is not None else None}


def design_status(name: str, run: dict, results_dir: str) -> str:
    """Whether the design of the result NAME (its run.json `run`, in results_dir/NAME) preceded its results:
    from the design recorded at the run's start, else from git history; "unknown ..." without history."""
    adopted = run.get("claims_adopted") or {}
    if adopted.get("claims_adopted_after_results"):
        commit = (adopted.get("config") or {}).get("commit") or "uncommitted"
        return f"no: claims adopted after the results (config {commit[:7]}), scored on the committed runs"
    recorded = run.get("design") or {}
    if recorded.get("commit"):
        if recorded.get("uncommitted_changes"):
            return f"no: the config had uncommitted changes at the run's start (last commit {recorded['commit'][:7]})"
        return f"yes: config {recorded['commit'][:7]} committed before the run started"
    root = repo_root(os.path.abspath(results_dir))
    if root is None or not has_history(root):
        return UNKNOWN
    results = os.path.relpath(os.path.join(os.path.abspath(results_dir), name, "results.csv"), root)
    config = os.path.join("experiments", "ablations", f"{name}.py")
    r = _git(root, "log", "-1", "--format=%H", "--", results)
    if not r:
        return "results not committed yet"
    d = _git(root, "log", "-1", "--format=%H", r, "--", config)
    if not d:
        return f"no: no config commit before the results ({r[:7]})"
    if d == r:
        return f"no: the config changed in the results commit {r[:7]}"
    return f"yes: config {d[:7]} before results {r[:7]} (from git history)"
