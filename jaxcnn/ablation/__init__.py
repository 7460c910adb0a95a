"""Ablations: every arm x seed a run of the training engine, tabulated against
what the papers claim, with a verdict that follows from a confidence interval.

    config = load_ablation("skip", "experiments/ablations")
    result = run_ablation(config, workdirs="runs/ablations/skip")
    write_results(result, "experiments/results/skip", config=config, command=..., wall_time_s=..., quick=False,
                  load_before=[...])

* spec.py      the `ablation` config section: arms, seeds, claims, like-for-like validation
* runner.py    arms x seeds through jaxcnn.train's engine, resumable
* lanes.py     the same runs in parallel processes, one per share of the CPU's cores (`run_lanes`)
* protocol.py  the extras' protocol (`Extra`) and registry (`register_extra`, `EXTRA_TYPES`)
* extras.py    what an ablation adds to its runs, each a named extra with that protocol (tuning, pretraining,
               the generalization gap, the eval-mode training error, the flipped twin, kernels, gradient
               norms, facts); importing the package registers them
* carried.py   finished runs' records in the result folder: an ablation finishes over several machines
* stats.py     mean ± std, paired differences with 95% CIs, verdicts
* analyses.py  gradient norms at initialisation, kernels, the conv/correlation twin check, the seeds' arithmetic
* tuning.py    one setting tuned per arm on a seed of its own (ablation.tune)
* report.py, plots.py   the files of a result, and the overview table over all committed results
"""

from jaxcnn.ablation import carried, protect
from jaxcnn.ablation.analyses import FACTS, flip_kernels, grad_norms_at_init, twin_report
from jaxcnn.ablation.extras import EXTRA_TYPES, Extra, register_extra
from jaxcnn.ablation.report import claims_table, markdown_table, overview_table, write_results
from jaxcnn.ablation.lanes import run_lanes
from jaxcnn.ablation.runner import run_ablation
from jaxcnn.ablation.spec import (
    METRICS,
    Arm,
    Claim,
    arm_config,
    arms_of,
    claims_of,
    list_ablations,
    load_ablation,
    validate_ablation,
    ablation_config,
    with_quick,
)
from jaxcnn.ablation import spec as _spec
from jaxcnn.ablation.stats import mean_std, paired_difference, t975, verdict

__all__ = [
    "Arm", "Claim", "carried", "protect", "EXTRA_TYPES", "Extra", "FACTS", "METRICS", "ablation_config",
    "arm_config", "arms_of", "claims_of", "claims_table", "flip_kernels", "grad_norms_at_init", "list_ablations",
    "load_ablation", "markdown_table", "mean_std", "overview_table", "paired_difference", "run_ablation",
    "run_lanes", "t975", "twin_report", "validate_ablation", "register_extra", "verdict", "with_quick",
    "write_results",
]


def __getattr__(name: str):
    if name == "EXTRAS":  # deprecated: the registry's named extras (jaxcnn.ablation.spec says so when read)
        return _spec.EXTRAS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
