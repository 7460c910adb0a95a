"""Untrusted files: checkpoints are never unpickled, and no code in the package
can unpickle (no pickle/dill/joblib; torch.load only with weights_only=True;
numpy.load never with allow_pickle=True)."""

import ast
import os
import pickle

import numpy as np
import pytest

from jaxcnn.train.checkpoint import Checkpointer, CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _sources():
    for top in ("jaxcnn", "scripts"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(d, f)


def _kw(call, name):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _problems(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLERS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLERS:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func)
            if target.endswith("torch.load"):
                value = _kw(node, "weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    found.append(f"{target}(...) without weights_only=True")
            if target in ("np.load", "numpy.load", "jnp.load"):
                value = _kw(node, "allow_pickle")
                if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                    found.append(f"{target}(..., allow_pickle=...)")
    return [f"{os.path.relpath(path, ROOT)}: {p}" for p in found]


def test_scanner_catches_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nimport torch\nimport numpy as np\n"
                   "torch.load('w.pt')\nnp.load('a.npy', allow_pickle=True)\ntorch.load('v.pt', weights_only=True)\n")
    assert len(_problems(str(bad))) == 3


def test_package_never_unpickles():
    sources = list(_sources())
    assert len(sources) > 20  # the scan sees the package
    problems = [p for s in sources for p in _problems(s)]
    assert problems == [], problems


def test_checkpoint_round_trip_calls_no_unpickler(tmp_path, monkeypatch):
    arrays = {"params": {"w": np.arange(6, dtype=np.float32)}, "step": np.asarray(3, np.int32)}
    ck = Checkpointer(str(tmp_path / "ck"))
    ck.save(3, arrays)
    ck.close()

    def refuse(*a, **k):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    got, _ = Checkpointer(str(tmp_path / "ck")).restore(arrays)
    np.testing.assert_array_equal(got["params"]["w"], arrays["params"]["w"])
    saved = [f for _, _, files in os.walk(tmp_path / "ck") for f in files]
    assert saved and not any(f.endswith((".pkl", ".pickle")) for f in saved), saved


class _Payload:
    """Unpickling this creates a file: the proof that a pickle was executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_in_a_checkpoint_is_never_executed(tmp_path):
    arrays = {"w": np.arange(6, dtype=np.float32)}
    ck = Checkpointer(str(tmp_path / "ck"))
    ck.save(1, arrays)
    ck.close()
    marker = tmp_path / "executed"
    payload = pickle.dumps(_Payload(str(marker)))
    for d, _, files in os.walk(tmp_path / "ck" / "1"):
        for f in files:
            with open(os.path.join(d, f), "wb") as fh:
                fh.write(payload)
    with pytest.raises(CheckpointError, match="corrupt or from a different"):
        Checkpointer(str(tmp_path / "ck")).restore(arrays)
    assert not marker.exists()
