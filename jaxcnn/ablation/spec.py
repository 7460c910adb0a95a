"""An ablation is a config file NAME.py (in experiments/ablations/ of the
repository, or a directory given by a flag) whose `get_config()` returns
`jaxcnn.train.base_config()` with its `ablation` section filled in:

    name, title, claim   what is tested and what the paper says
    field                the config keys the arms differ in ("model.skip"; several joined by ",")
    pretrain             overrides of a pretraining run per seed (transfer); arms whose finetune.path is
                         "pretrain" start from it
    finetune             True: every arm runs as fine-tuning (jaxcnn.finetune: head / full / scratch phases)
    arms                 [{"label": str, "overrides": {dotted config key: value}}]
    seeds                the same seeds for every arm (at least 3)
    claims               the verdicts to draw, each "METRIC: ARM_A > ARM_B" (or <), or
                         "METRIC: ARM_A ~ ARM_B within MARGIN" (equivalence), or "METRIC: ARM_A >= ARM_B
                         within MARGIN" (non-inferiority: A - B > -MARGIN; <=: A - B < +MARGIN), or a ratio
                         "METRIC: ARM_A / ARM_B > R" (or <, or "~ R within factor F"; tested on log ratios);
                         METRIC one of eval_accuracy,
                         eval_error, train_error (the running error of the last log window), train_error_eval
                         (the error on the whole training split in eval mode after training: running
                         BatchNorm statistics, no augmentation), train_loss, steps_to_target (the first logged
                         step whose running training error is <= target_train_error; censored, inf, where a
                         run never gets there), generalization_gap (accuracy on gap_examples training images
                         in eval mode minus test accuracy). Claims, margins, seeds and budget are committed
                         before the runs (experiments/README.md, "Designs fixed before the runs")
    rules                a rule's cells: [(title, [recommended arms], [other arms])]; the cell's verdict
                         needs every "eval_accuracy: RECOMMENDED > OTHER" claim of one recommended arm among
                         the claims (jaxcnn.ablation.family.rule_verdicts)
    quick                overrides of the config for --quick (a smoke run)
    tune                 one setting tuned per arm on a seed of its own before the seeds run (e.g. each arm's
                         learning rate): jaxcnn.ablation.tuning
    extras               analyses reported beside the table, each a registered extra that the config names
                         (jaxcnn.ablation.protocol.named_extras(): twin_flip, kernels, grad_norms and any added
                         with register_extra)
    facts                arithmetic facts reported beside the table (jaxcnn.ablation.analyses.FACTS)

The rest of the config (model, data, optimizer, num_steps, batch_size, ...)
is what every arm shares; `--config.KEY=VALUE` on the command line overrides
it for every arm. Arms are compared like for like: each arm has a partner
whose resolved config and model differ in nothing but (some of) `field`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from typing import Optional

from jaxcnn._validation import suggest
from jaxcnn.ablation.analyses import FACTS
from jaxcnn.ablation.protect import check_name
from jaxcnn.ablation.protocol import EXTRA_TYPES, named_extras
from jaxcnn.ablation.stats import MARGIN_OPS  # the operators that need "within MARGIN"
from jaxcnn.models import create_model, module_fields
from jaxcnn.train import cli
from jaxcnn.train.config import base_config, flat, validate_config
from jaxcnn.train.setup import build_model

METRICS = ("eval_accuracy", "eval_error", "train_error", "train_error_eval", "train_loss", "steps_to_target",
           "generalization_gap")
_CLAIM = re.compile(r"^\s*(\w+)\s*:\s*(.+?)\s*(>=|<=|[<>~])\s*(.+?)\s*(?:within\s+([0-9.eE+-]+))?\s*$")
# "METRIC: A / B > R" or "METRIC: A / B ~ R within factor F" (a slash with spaces: labels may hold one without)
_RATIO = re.compile(r"^\s*(\w+)\s*:\s*(.+?)\s+/\s+(.+?)\s*([<>~])\s*([0-9.eE+-]+)"
                    r"\s*(?:within\s+factor\s+([0-9.eE+-]+))?\s*$")


@dataclasses.dataclass(frozen=True)
class Arm:
    label: str
    overrides: dict

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label).strip("_") or "arm"


@dataclasses.dataclass(frozen=True)
class Claim:
    """METRIC of arm `a` is expected to be greater (op '>') or smaller ('<') than that of arm `b`, the same
    within `margin` (op '~'), or no worse than it by more than `margin` (op '>=': a - b > -margin; '<=':
    a - b < +margin)."""

    metric: str
    a: str
    op: str
    b: str
    margin: float = 0.0
    ratio: Optional[float] = None  # "A / B op ratio" (margin: the factor of "within factor F")

    def __str__(self) -> str:
        if self.ratio is not None:
            within = f" within factor {self.margin:g}" if self.op == "~" else ""
            return f"{self.metric}: {self.a} / {self.b} {self.op} {self.ratio:g}{within}"
        within = f" within {self.margin:g}" if self.op in MARGIN_OPS else ""
        return f"{self.metric}: {self.a} {self.op} {self.b}{within}"


def list_ablations(directory: str) -> list[str]:
    """Names of the ablation configs in `directory` (files NAME.py)."""
    if not os.path.isdir(directory):
        raise ValueError(f"no ablations directory {directory}; pass --ablations DIR (the repository's "
                         "experiments/ablations).")
    return sorted(f[:-3] for f in os.listdir(directory) if f.endswith(".py") and not f.startswith("_"))


def load_ablation(name: str, directory: str):
    """get_config() of DIRECTORY/NAME.py, validated; ValueError naming the known ones. NAME is an identifier
    (jaxcnn.ablation.protect.check_name), never a path."""
    path = os.path.join(directory, f"{check_name(name)}.py")
    if not os.path.exists(path):
        known = list_ablations(directory)
        raise ValueError(f"unknown ablation {name!r}.{suggest(name, known)} Known: {', '.join(known)}.")
    config = cli.load_config(path)
    validate_ablation(config)
    return config


def arms_of(config) -> list[Arm]:
    out = []
    for a in config.ablation.arms:
        if not hasattr(a, "get") or "label" not in a:
            raise ValueError(f"ablation {config.ablation.name!r}: every arm is a dict with a 'label' and "
                             f"'overrides', got {a!r}.")
        out.append(Arm(str(a["label"]), dict(a.get("overrides", {}))))
    return out


def fields_of(config) -> tuple[str, ...]:
    return tuple(k.strip() for k in str(config.ablation.field).split(",") if k.strip())


def parse_claim(text: str, labels, name: str = "?") -> Claim:
    """One claim string as a Claim, its arms checked against `labels`; ValueError naming the fix."""
    r = _RATIO.match(str(text))
    if r and r.group(2) in labels and r.group(3) in labels:
        if r.group(4) == "~" and r.group(6) is None:
            raise ValueError(f"ablation {name!r}: claim {text!r} needs a factor: "
                             "'METRIC: ARM_A / ARM_B ~ 6 within factor 2'.")
        claim = Claim(r.group(1), r.group(2), r.group(4), r.group(3), float(r.group(6) or 0.0), float(r.group(5)))
        if not claim.ratio > 0 or (claim.op == "~" and not claim.margin > 1):
            raise ValueError(f"ablation {name!r}: claim {text!r}: the ratio must be > 0 and the factor > 1.")
    else:
        m = _CLAIM.match(str(text))
        if not m:
            raise ValueError(f"ablation {name!r}: claim {text!r} is not 'METRIC: ARM_A > ARM_B' "
                             "(or <, or 'METRIC: ARM_A ~ ARM_B within MARGIN', or 'METRIC: ARM_A >= ARM_B within "
                             "MARGIN', or 'METRIC: ARM_A / ARM_B > R').")
        if m.group(3) in MARGIN_OPS and m.group(5) is None:
            raise ValueError(f"ablation {name!r}: claim {text!r} needs a margin: "
                             f"'METRIC: ARM_A {m.group(3)} ARM_B within 0.01'.")
        if m.group(3) in MARGIN_OPS and not float(m.group(5)) > 0:
            raise ValueError(f"ablation {name!r}: claim {text!r}: the margin must be > 0 (for a margin of 0 "
                             f"write 'METRIC: ARM_A {m.group(3)[0]} ARM_B').")
        claim = Claim(m.group(1), m.group(2), m.group(3), m.group(4), float(m.group(5) or 0.0))
    if claim.metric not in METRICS:
        raise ValueError(f"ablation {name!r}: claim metric {claim.metric!r} is not one of {', '.join(METRICS)}.")
    for arm in (claim.a, claim.b):
        if arm not in labels:
            raise ValueError(f"ablation {name!r}: claim {text!r} names arm {arm!r}; arms: "
                             f"{', '.join(sorted(labels))}.")
    return claim


def claims_of(config) -> list[Claim]:
    labels = {a.label for a in arms_of(config)}
    return [parse_claim(text, labels, config.ablation.name) for text in config.ablation.claims]


def rules_of(config) -> list[tuple[str, tuple, tuple]]:
    """ablation.rules as (title, recommended arms, other arms), each named arm checked, and every
    "eval_accuracy: R > X" claim a cell needs present among the claims."""
    labels = {a.label for a in arms_of(config)}
    claims = {str(c) for c in claims_of(config)}
    out = []
    for rule in config.ablation.get("rules", ()):
        if len(rule) != 3 or isinstance(rule[1], str) or isinstance(rule[2], str):
            raise ValueError(f"ablation {config.ablation.name!r}: each of ablation.rules is (title, [recommended "
                             f"arms], [other arms]), got {rule!r}.")
        title, rec, other = str(rule[0]), tuple(rule[1]), tuple(rule[2])
        for arm in rec + other:
            if arm not in labels:
                raise ValueError(f"ablation {config.ablation.name!r}: rule {title!r} names no arm {arm!r}.")
        missing = [f"eval_accuracy: {r} > {x}" for r in rec for x in other
                   if f"eval_accuracy: {r} > {x}" not in claims]
        if not rec or not other or missing:
            raise ValueError(f"ablation {config.ablation.name!r}: rule {title!r} needs recommended and other arms "
                             f"and the claims {missing}.")
        out.append((title, rec, other))
    return out


def with_quick(config):
    """The config with ablation.quick's overrides applied (the --quick smoke budget). A tuning grid
    (ablation.tune) shrinks to its two ends unless ablation.quick sets ablation.tune itself: the smoke run
    still tries two values per arm and picks one, without training the whole grid."""
    c = config.copy_and_resolve_references()
    with c.unlocked():
        _set_all(c, dict(config.ablation.quick))
        quick_keys = dotted(dict(config.ablation.quick))
        if c.ablation.tune and not any(k.startswith("ablation.tune") for k in quick_keys):
            values = tuple(c.ablation.tune["values"])
            c.ablation.tune = {**c.ablation.tune, "values": (values[0], values[-1])}
    return c


def arm_config(config, arm: Arm, seed: int):
    """The config of one run: the shared config, then the arm's overrides, then the seed."""
    c = config.copy_and_resolve_references()
    with c.unlocked():
        _set_all(c, arm.overrides)
        c.seed = int(seed)
    return c


def dotted(overrides, prefix: str = "") -> dict:
    """{dotted key: value} of an override set written flat ({"optimizer.warmup_steps": 0}) or nested
    ({"optimizer": {"warmup_steps": 0}}, as a config's own dict sections must be)."""
    out = {}
    for key, value in dict(overrides).items():
        if hasattr(value, "items"):
            out.update(dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _set_all(config, overrides: dict) -> None:
    for key, value in dotted(overrides).items():
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            if part not in node:
                raise ValueError(f"override {key!r}: config has no section {part!r}.")
            node = node[part]
        node[leaf] = tuple(value) if isinstance(value, list) else value


def resolved(config) -> dict:
    """{dotted key: value} of a run: its config (bar the ablation section and the seed) and every field of
    its model as built."""
    out = {k: v for k, v in flat(config).items() if not k.startswith("ablation.") and k not in ("model", "seed")}
    model = build_model(config, config.num_classes if config.dataset == "synthetic" else
                        config.model.get("num_classes", 10))
    out.update({f"model.{f}": getattr(model, f) for f in module_fields(type(model)) if f != "num_classes"})
    return out


def validate_ablation(config) -> None:
    """The ablation section's own checks, then every arm's config as a training run: arms are unique, each
    has a like-for-like partner (differing exactly in `field`), seeds number at least 3, claims parse."""
    validate_config(config)
    ab = config.ablation
    name = ab.name or "?"
    arms = arms_of(config)
    if len(arms) < 2:
        raise ValueError(f"ablation {name!r} needs at least two arms.")
    if len({a.label for a in arms}) != len(arms) or len({a.slug for a in arms}) != len(arms):
        raise ValueError(f"ablation {name!r}: arm labels must be unique (also as file names).")
    labels = {a.label for a in arms}
    for panel in ab.get("panels", ()):
        if len(panel) != 2 or isinstance(panel[1], str):
            raise ValueError(f"ablation {name!r}: each of ablation.panels is (title, [arm labels]), got {panel!r}.")
        unknown = [lab for lab in panel[1] if lab not in labels]
        if unknown:
            raise ValueError(f"ablation {name!r}: panel {panel[0]!r} names no arm {unknown[0]!r}; the arms: "
                             f"{sorted(labels)}.")
    if len(set(ab.seeds)) < 3 or len(set(ab.seeds)) != len(ab.seeds):
        raise ValueError(f"ablation {name!r}: at least 3 distinct seeds, got {tuple(ab.seeds)}.")
    _validate_extras(name, ab.extras)
    bad = sorted(set(ab.facts) - set(FACTS))
    if bad:
        raise ValueError(f"ablation {name!r}: unknown facts {bad}; allowed: {sorted(FACTS)}.")
    field = set(fields_of(config))
    if not field:
        raise ValueError(f"ablation {name!r}: ablation.field names no config key.")
    validate_tune(config, fields_of(config))
    if ab.tune and ab.finetune:
        raise ValueError(f"ablation {name!r}: ablation.tune is for training runs; a fine-tuning ablation "
                         "(ablation.finetune) sets its phases' rates in finetune.*.")
    claims_of(config)
    rules_of(config)
    views = []
    for arm in arms:
        c = arm_config(config, arm, ab.seeds[0])
        validate_config(c)
        create_model(c.model.name, **{k: v for k, v in c.model.items() if k != "name"})  # unknown fields raise
        views.append(resolved(c))
    for i, (arm, view) in enumerate(zip(arms, views)):
        diffs = [{k for k in set(view) | set(other) if view.get(k, _MISSING) != other.get(k, _MISSING)}
                 for j, other in enumerate(views) if j != i]
        if not any(d and d <= field for d in diffs):
            closest = min(diffs, key=lambda d: len(d - field))
            raise ValueError(f"ablation {name!r}: arm {arm.label!r} has no partner that differs from it only in "
                             f"{sorted(field)}; the closest differs in {sorted(closest)}.")


_MISSING = object()


def _validate_extras(name: str, extras) -> None:
    """ablation.extras names registered extras that a config picks by name (jaxcnn.ablation.protocol)."""
    allowed = named_extras()
    picked = [f"{e!r} is picked by {EXTRA_TYPES[e].picked_by}" for e in extras if e in EXTRA_TYPES and e not in allowed]
    if picked:
        raise ValueError(f"ablation {name!r}: ablation.extras names only the extras picked by name ({allowed}); "
                         f"{'; '.join(picked)}: take it out of ablation.extras.")
    bad = sorted(set(extras) - set(allowed))
    if bad:
        raise ValueError(f"ablation {name!r}: unknown extras {bad}; allowed: {allowed} (add one with "
                         "jaxcnn.ablation.extras.register_extra).")


def __getattr__(name: str):
    if name == "EXTRAS":
        warnings.warn("jaxcnn.ablation.spec.EXTRAS is the registry's now: jaxcnn.ablation.protocol.named_extras() "
                      "(extras added with register_extra count too); the old name goes in the next release.",
                      DeprecationWarning, stacklevel=2)
        return named_extras()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def ablation_config(name: str, *, title: str, claim: str, field: str, arms, claims=(), model=None):
    """The skeleton every experiments/ablations/NAME.py fills in: base_config() on Fashion-MNIST, SGD with
    momentum and a cosine schedule, seeds 0, 1, 2, the full test split; `model` (a dict: name and fields) is
    shared by every arm (config.model), `arms` are [{label, overrides}] of dotted config keys; ablation.quick is a smoke
    budget of 300 steps at batch 64 on 2,000 test images."""
    c = base_config()
    c.model.update(dict(model or {}))
    c.ablation.name, c.ablation.title, c.ablation.claim = name, title, claim
    c.ablation.field = field
    c.ablation.arms = [dict(a) for a in arms]
    c.ablation.claims = tuple(claims)
    c.ablation.quick = {"num_steps": 300, "batch_size": 64, "eval_examples": 2000, "log_every": 10,
                        "eval_every": 0, "checkpoint_every": 100}
    c.optimizer.update({"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 1e-4,
                        "schedule": "cosine", "warmup_steps": 50})
    c.num_steps, c.batch_size, c.log_every, c.eval_every, c.checkpoint_every = 3000, 128, 50, 0, 250
    c.parallel = "none"
    c.progress = False
    return c


# ablation.tune, the schema of jaxcnn.ablation.tuning (which runs it)
TUNE_METRICS = ("steps_to_target", "train_error", "train_loss")
TUNE_KEYS = ("key", "values", "seed", "metric", "num_steps")


def validate_tune(config, fields) -> None:
    """ablation.tune's own checks (when set): known keys, key among the ablated fields, a grid of at least two
    values, a training metric, and a seed that no scored run uses."""
    tune = config.ablation.tune
    if not tune:
        return
    name = config.ablation.name or "?"
    unknown = sorted(set(tune) - set(TUNE_KEYS))
    if unknown:
        raise ValueError(f"ablation {name!r}: unknown ablation.tune keys {unknown}; allowed: {list(TUNE_KEYS)}.")
    for k in ("key", "values", "seed", "metric"):
        if k not in tune:
            raise ValueError(f"ablation {name!r}: ablation.tune needs {k!r}, e.g. {{'key': "
                             "'optimizer.learning_rate', 'values': (0.01, 0.1), 'seed': 100, 'metric': "
                             "'steps_to_target'}.")
    if tune["key"] not in fields:
        raise ValueError(f"ablation {name!r}: ablation.tune.key {tune['key']!r} must be one of ablation.field's "
                         f"keys ({', '.join(fields)}): tuned arms may differ in it; add it to ablation.field.")
    values = list(tune["values"]) if isinstance(tune["values"], (tuple, list)) else []
    if len(values) < 2 or len(set(map(repr, values))) != len(values):
        raise ValueError(f"ablation {name!r}: ablation.tune.values must be at least two distinct values, got "
                         f"{tune['values']!r}.")
    if tune["metric"] not in TUNE_METRICS:
        raise ValueError(f"ablation {name!r}: ablation.tune.metric must be a training metric, one of "
                         f"{', '.join(TUNE_METRICS)} (the test split never selects), got {tune['metric']!r}.")
    seed = tune["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"ablation {name!r}: ablation.tune.seed must be an int in 0..2**32-1, got {seed!r}.")
    if seed in set(config.ablation.seeds):
        raise ValueError(f"ablation {name!r}: ablation.tune.seed {seed} is one of the scored seeds "
                         f"{tuple(config.ablation.seeds)}; tune on a seed of its own, e.g. 100.")
    steps = tune.get("num_steps", 0)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"ablation {name!r}: ablation.tune.num_steps must be an int >= 0 (0 = num_steps), "
                         f"got {steps!r}.")
