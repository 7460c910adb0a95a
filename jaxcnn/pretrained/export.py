"""Weights out: a training run's model for others to use (`jaxcnn-export`).

    export_safetensors("runs/fashion", "fashion.safetensors")    # + fashion.json / fashion.md, the model card
    export_stablehlo("runs/fashion", "fashion.stablehlo")         # jax.export of the inference function

* **safetensors**: the params and batch stats under flat, stable names (`params/conv1/kernel`,
  `batch_stats/bn1/mean`: the collection and the module path joined by "/"), and beside the file its model
  card, FILE.json (read by `jaxcnn.load_weights`) and FILE.md (for people): the model's name and every field,
  the input it takes, the data it was trained on, its metrics at the exported step and the provenance of the
  run and of the export.
* **stablehlo**: `jax.export` of `x -> model.apply(variables, x, train=False)` with the weights inside: NHWC
  float32 images preprocessed as at evaluation (the card's `input`) with a symbolic batch dimension in, the
  logits out. It is lowered with XLA's own convolutions (jaxcnn.ops.native switched off while it is traced), so
  the artifact holds no custom call and runs without jaxcnn:

      exp = jax.export.deserialize(open("fashion.stablehlo", "rb").read())
      logits = exp.call(images)                                     # images (N, H, W, C) float32, any N
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import jaxcnn.train.provenance as _provenance
from jaxcnn.data.sources import open_split
from jaxcnn.models import create_model
from jaxcnn.ops.native import SWITCHES
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.config import base_config
from jaxcnn.train.setup import input_shape as traced_input_shape
from jaxcnn.train.workdir import read_metrics, write_atomic

SEPARATOR = "/"
CARD_FORMAT = "jaxcnn-model-card/1"
PLATFORMS = ("cpu", "cuda", "tpu")  # where a StableHLO export runs; XLA lowers it for each


def flatten(variables: dict) -> dict[str, np.ndarray]:
    """{"collection/module/.../leaf": array} of Flax variables (params and batch_stats), sorted by name."""
    out = {}
    for collection in ("params", "batch_stats"):
        tree = variables.get(collection) or {}
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            name = SEPARATOR.join([collection, *(str(getattr(k, "key", k)) for k in path)])
            out[name] = np.ascontiguousarray(np.asarray(leaf))
    return dict(sorted(out.items()))


def unflatten(tensors: dict) -> dict:
    """The Flax variables {'params': ..., 'batch_stats': ...} of `flatten`'s names."""
    variables: dict = {}
    for name, value in tensors.items():
        *parents, leaf = name.split(SEPARATOR)
        node = variables
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = jnp.asarray(value)
    return variables


def model_fields(record: dict, *, inference: bool = True) -> dict:
    """The fields config.json records for the model as built, as create_model takes them: lists as tuples, and
    for inference no pmap axis name; a bfloat16 compute dtype is kept."""
    fields = {}
    for k, v in (record.get("model_fields") or {}).items():
        if k == "bn_axis_name" and inference:
            continue
        if k == "dtype":
            if v is None:
                continue
            v = jnp.bfloat16 if "bfloat16" in str(v) else jnp.float32 if "float32" in str(v) else None
            if v is None:
                continue
        fields[k] = _tuples(v)
    return fields


def _tuples(v):
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


def read_record(workdir: str) -> dict:
    """config.json of a training workdir; one-line ValueError when it is not one."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ValueError(f"{workdir} has no config.json; pass the --workdir of a training run.")
    try:
        with open(path) as f:
            record = json.load(f)
        if not isinstance(record, dict) or not isinstance(record.get("model"), str):
            raise ValueError("not a config record")
    except ValueError:
        raise ValueError(f"{path} is damaged (not the JSON config record a run writes).") from None
    return record


def run_variables(workdir: str, step: Optional[int] = None) -> tuple[dict, int]:
    """(the params and batch_stats of `workdir`'s checkpoint at `step` (default: the latest), that step)."""
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    if not os.path.isdir(directory):
        raise ValueError(f"no checkpoint in {workdir}; train it first (jaxcnn-train).")
    ckpt = Checkpointer(directory)
    try:
        steps = ckpt.all_steps()
        if not steps:
            raise ValueError(f"no checkpoint in {workdir}; train it first (jaxcnn-train).")
        if step is None:
            step = steps[-1]
        elif int(step) not in steps:
            raise ValueError(f"{workdir} has no checkpoint of step {step}; its steps: "
                             f"{', '.join(map(str, steps))}.")
        restored = ckpt.restore_variables(int(step))
    finally:
        ckpt.close()
    variables = {k: jax.tree_util.tree_map(jnp.asarray, restored[k]) for k in ("params", "batch_stats")
                 if restored.get(k)}
    return variables, int(step)


def run_input_shape(workdir: str, record: Optional[dict] = None) -> tuple:
    """The (H, W, C) `workdir`'s model sees: its dataset's images after config.preprocess (traced; only the
    split's metadata or first example is read)."""
    record = record or read_record(workdir)
    c = _config(record)
    split = open_split(c.dataset, f"{c.eval_split.split('[')[0]}[:1]", data_dir=c.data_dir or None,
                       synthetic_shape=tuple(c.synthetic_shape), synthetic_size=c.synthetic_size,
                       num_classes=c.num_classes, seed=c.seed)
    return tuple(int(d) for d in traced_input_shape(c, split))


def _config(record: dict):
    import ml_collections

    config = base_config()
    given = ml_collections.ConfigDict(_tuples(record["config"]))
    with config.unlocked():
        for key in ("dataset", "data_dir", "eval_split", "synthetic_shape", "synthetic_size", "num_classes", "seed",
                    "classes"):
            if key in given:
                config[key] = given[key]
        for key in given.get("preprocess", {}):
            config.preprocess[key] = given.preprocess[key]
    return config


def _metrics(workdir: str, step: int) -> dict:
    """The run's scores at `step`: eval.json where it scored that step, else the last logged evaluation at or
    before it (metrics.jsonl)."""
    path = os.path.join(workdir, "eval.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                ev = json.load(f)
            if ev.get("step") == step:
                return {"source": "eval.json", "split": ev.get("split"),
                        **{k: v for k, v in ev.items() if k.startswith("eval_") and isinstance(v, (int, float))}}
        except (OSError, ValueError):
            pass
    for rec in reversed(read_metrics(os.path.join(workdir, "metrics.jsonl"), upto=step)):
        scores = {k: v for k, v in rec.items() if k.startswith(("eval_", "test_")) and isinstance(v, (int, float))}
        if scores:
            return {"source": "metrics.jsonl", "step": rec["step"], **scores}
    return {}


def model_card(workdir: str, *, step: int, input_shape: Sequence[int], weights: str,
               names: Sequence[str] = ()) -> dict:
    """The model card of `workdir`'s model at `step` (see the module docstring)."""
    record = read_record(workdir)
    c = record["config"]
    return {
        "format": CARD_FORMAT,
        "model": record["model"],
        "model_fields": record.get("model_fields", {}),
        "step": step,
        "input": {"shape": ["batch", *map(int, input_shape)], "dtype": "float32", "layout": "NHWC",
                  "preprocess": c.get("preprocess", {}),
                  "note": "images as the dataset stores them, then config.preprocess at evaluation (scaled to "
                          "[0, 1], normalised with mean and std, padded or resized as it says)"},
        "output": "logits (batch, num_classes)",
        "data": {k: c.get(k) for k in ("dataset", "train_split", "eval_split", "test_split", "classes",
                                        "train_examples_per_class") if k in c},
        "metrics": _metrics(workdir, step),
        "weights": os.path.basename(weights),
        "tensors": list(names),
        "provenance": {"training": record.get("provenance"), "export": _provenance.provenance()},
    }


def card_paths(out: str) -> tuple[str, str]:
    """(FILE.json, FILE.md) beside the exported file (its extension replaced)."""
    stem = os.path.splitext(out)[0]
    return stem + ".json", stem + ".md"


def card_markdown(card: dict) -> str:
    rows = "\n".join(f"| `{k}` | `{json.dumps(v)}` |" for k, v in card["model_fields"].items())
    metrics = "\n".join(f"| {k} | {v} |" for k, v in card["metrics"].items()) or "| (none recorded) | |"
    prov = card["provenance"]["training"] or {}
    if "stablehlo" in card:
        how = (f"StableHLO: `{card['weights']}` (jax.export, weights inside, for {', '.join(card['stablehlo']['platforms'])});"
               f" run it without jaxcnn: `jax.export.deserialize(open('{card['weights']}', 'rb').read()).call(images)`.")
    else:
        how = (f"Weights: `{card['weights']}` ({len(card['tensors'])} tensors, params and batch stats, named "
               f"`collection/module/leaf`); load with `model, variables = jaxcnn.load_weights(\"{card['weights']}\")`.")
    return f"""# {card['model']} (step {card['step']})

{how}

## Model

| field | value |
|---|---|
{rows}

Input: {card['input']['layout']} {card['input']['dtype']} of shape {tuple(card['input']['shape'])}, {card['input']['note']}.
Output: {card['output']}.

## Data

{json.dumps(card['data'], indent=1)}

## Metrics

| metric | value |
|---|---|
{metrics}

## Provenance

Trained with jaxcnn {prov.get('jaxcnn')}, jax {prov.get('jax')}, flax {prov.get('flax')}, optax {prov.get('optax')},
Python {prov.get('python')}, commit {prov.get('git_commit')}, on {json.dumps(prov.get('devices'))}
({prov.get('process_count')} processes). Exported with jaxcnn {card['provenance']['export']['jaxcnn']}.
"""


def _write_atomic_bytes(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_safetensors(workdir: str, out: str, *, step: Optional[int] = None,
                       input_shape: Optional[Sequence[int]] = None) -> list[str]:
    """Write `workdir`'s params and batch stats at `step` to `out` (safetensors) and its model card beside it
    (FILE.json, FILE.md); returns the three paths."""
    from safetensors.numpy import save

    record = read_record(workdir)
    variables, step = run_variables(workdir, step)
    shape = tuple(input_shape) if input_shape else run_input_shape(workdir, record)
    tensors = flatten(variables)
    out = os.path.abspath(out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    _write_atomic_bytes(out, save(tensors, metadata={"format": "jaxcnn", "model": record["model"],
                                                     "step": str(step)}))
    card = model_card(workdir, step=step, input_shape=shape, weights=out, names=list(tensors))
    card_json, card_md = card_paths(out)
    write_atomic(card_json, json.dumps(card, indent=1) + "\n")
    write_atomic(card_md, card_markdown(card))
    return [out, card_json, card_md]


@contextlib.contextmanager
def xla_convolutions():
    """While inside: every jaxcnn.ops.native kernel switched off (convolutions, BatchNorm, pooling, dense), so the
    model traces to XLA's own ops (no custom call)."""
    before = {name: os.environ.get(name) for name in SWITCHES.values()}
    os.environ.update({name: "0" for name in before})
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def inference_function(model, variables):
    """x -> logits of `model` with `variables` inside, evaluation mode (an auxiliary head's outputs dropped)."""
    def logits(x):
        out = model.apply(variables, x, train=False)
        return out[0] if isinstance(out, tuple) else out

    return logits


def stablehlo(model, variables, input_shape: Sequence[int], *,
              platforms: Sequence[str] = PLATFORMS) -> "jax.export.Exported":
    """jax.export of the inference function for NHWC float32 input (batch, *input_shape), batch symbolic."""
    from jax import export

    batch, = export.symbolic_shape("batch")
    spec = jax.ShapeDtypeStruct((batch, *map(int, input_shape)), jnp.float32)
    with xla_convolutions():
        return export.export(jax.jit(inference_function(model, variables)), platforms=tuple(platforms))(spec)


def export_stablehlo(workdir: str, out: str, *, step: Optional[int] = None,
                     input_shape: Optional[Sequence[int]] = None,
                     platforms: Sequence[str] = PLATFORMS) -> list[str]:
    """Write the serialised `jax.export` of `workdir`'s inference function at `step` to `out`, and the model
    card beside it (FILE.json, FILE.md); returns the paths."""
    record = read_record(workdir)
    variables, step = run_variables(workdir, step)
    shape = tuple(input_shape) if input_shape else run_input_shape(workdir, record)
    model = create_model(record["model"], **model_fields(record))
    exported = stablehlo(model, variables, shape, platforms=platforms)
    out = os.path.abspath(out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    _write_atomic_bytes(out, bytes(exported.serialize()))
    card = model_card(workdir, step=step, input_shape=shape, weights=out, names=list(flatten(variables)))
    card["stablehlo"] = {"platforms": list(exported.platforms), "input": str(exported.in_avals[0]),
                         "output": str(exported.out_avals[0]),
                         "call": "jax.export.deserialize(open(FILE, 'rb').read()).call(images)"}
    card_json, card_md = card_paths(out)
    write_atomic(card_json, json.dumps(card, indent=1) + "\n")
    write_atomic(card_md, card_markdown(card))
    return [out, card_json, card_md]
