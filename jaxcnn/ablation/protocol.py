"""The extras' protocol and registry: what an ablation adds to its runs beyond its table and claims, each a small
named `Extra`, registered like the engine's tasks (`register_extra`; `EXTRA_TYPES` lists them in the order they
act). The built-in extras live in jaxcnn.ablation.extras, which `import jaxcnn.ablation` registers; this module
imports nothing of jaxcnn, so the ablation section's validation (jaxcnn.ablation.spec) and the carried records
(jaxcnn.ablation.carried) read the registry without an import cycle.

    class Extra:
        name           its name in EXTRA_TYPES; ablation.extras names it unless `picked_by` says otherwise
        picked_by      how a config picks it instead (its own `wanted`), in words; "" = by ablation.extras
        needs_params   it needs every run's trained parameters (its runs cannot be carried from records)
        kept_figures   the figures of `measure` a carried record keeps (read back by `measure` from it)
        metrics        the per-seed figures of `measure` that each arm's row sums up (mean, std, the per-seed
                       values in results.csv) and that scoring again reads back from results.csv
        wanted(config) -> bool
        before(run)                                   before the scored runs
        configure(run, ai, arm, seed, c)              one scored run's config, before its data and model are built
        prepare(run, ai, arm, seed, setup)            its Setup, before it trains
        carried_identity(run) -> dict                 what a carried record must have been measured with
        measure(run, arm, seed, setup, record, kept) -> dict   figures of one finished run (kept: its record)
        checked_arms(run) -> tuple | None             two arms that are one function by construction: claims
                                                      between them cannot fail (checks, outside the family)
        collect(run, result)                          every run done: figures and claims into the result
        report(result, out)                           its own files of the result (out(NAME): the path of NAME in
                                                      the result folder, listed with the files written)
        recorded(result) -> dict                      what run.json keeps of it, under "extras"
        rescore(run, stored) -> list                  the claim rows it adds, again from a committed run.json
                                                      (`stored`) when the results are scored again

`run` is the AblationRun of jaxcnn.ablation.runner (config, arms, seeds, workdirs, the data cache, log, and
what the runs leave: setups, states, per_seed, tuning, pretraining); in `checked_arms` and `rescore` it may be
a stand-in with only `.config` and `.arms` (each with a `.label`), built from a committed run.json.
"""

from __future__ import annotations


class Extra:
    """The protocol (see the module docstring); every hook does nothing by default."""

    name = ""
    picked_by = ""
    needs_params = False
    kept_figures: tuple = ()
    metrics: tuple = ()

    def wanted(self, config) -> bool:
        return self.name in config.ablation.extras

    def before(self, run) -> None:
        pass

    def configure(self, run, ai: int, arm, seed: int, c) -> None:
        pass

    def prepare(self, run, ai: int, arm, seed: int, setup) -> None:
        pass

    def carried_identity(self, run) -> dict:
        return {}

    def measure(self, run, arm, seed: int, setup, record: dict, kept) -> dict:
        return {}

    def checked_arms(self, run):
        return None

    def collect(self, run, result: dict) -> None:
        pass

    def report(self, result: dict, out) -> None:
        pass

    def recorded(self, result: dict) -> dict:
        return {}

    def rescore(self, run, stored: dict) -> list:
        return []


# The extras in the order they act (pretraining before tuning, as the runs were always made).
EXTRA_TYPES: dict[str, type] = {}


def register_extra(cls: type) -> type:
    """Add an Extra subclass (by its name); ablation.extras may then name it, or its `wanted` picks it."""
    if not cls.name or cls.name in EXTRA_TYPES:
        raise ValueError(f"extra {cls.name!r} has no name or is registered twice")
    EXTRA_TYPES[cls.name] = cls
    return cls


def named_extras() -> tuple[str, ...]:
    """The extras that ablation.extras may name (those without a `picked_by` of their own), in the order they act."""
    return tuple(name for name, cls in EXTRA_TYPES.items() if not cls.picked_by)


def extra_metrics() -> tuple[str, ...]:
    """Every registered extra's per-seed metrics (`Extra.metrics`), in the order the extras act."""
    return tuple(m for cls in EXTRA_TYPES.values() for m in cls.metrics)


def extras_of(config) -> list[Extra]:
    """The extras this ablation uses, fresh, in the order they act."""
    return [cls() for cls in EXTRA_TYPES.values() if cls().wanted(config)]


def checked_arms_of(extras, run):
    """The (first, second) arms that one of `extras` makes the same function by construction (claims between
    them are checks, outside the family), or None. `run` needs only `.arms` (each with a `.label`) and
    `.config`: the live run while training, or a stand-in built from a committed run.json when scoring again."""
    return next((arms for arms in (e.checked_arms(run) for e in extras) if arms), None)
