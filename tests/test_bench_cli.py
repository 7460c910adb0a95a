"""scripts/bench.py's command line, round order and results files (no timing, no JAX compilation)."""

import argparse
import itertools
import json

import pytest

from benchmarks import cli
from benchmarks.timing import round_order


def test_only_parses_sections_in_canonical_order_and_refuses_unknown():
    args = cli.build_parser().parse_args(["--quick", "--only", "memory,train"])
    assert args.quick and args.only == ["train", "memory"]
    with pytest.raises(argparse.ArgumentTypeError, match="choose from train, ops, compile, memory, parallel, gpu"):
        cli.parse_sections("train,speed")


def test_xla_flags_refused_once_jax_is_imported():
    import jax  # noqa: F401  (conftest's XLA_FLAGS are in effect already)

    with pytest.raises(RuntimeError, match="before jax is imported"):
        cli.apply_xla_flags("--xla_cpu_multi_thread_eigen=false")


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7, 12])
def test_round_order_balances_first_place_predecessors_and_mean_place(n):
    items = list(range(n))
    rounds = [round_order(items, r) for r in range(2 * n)]
    assert all(sorted(o) == items for o in rounds)
    firsts = [o[0] for o in rounds]
    assert all(firsts.count(i) == 2 for i in items)  # each variant leads 2 of 2n rounds
    # Within rounds every variant directly follows every other variant exactly twice in 2n rounds: n(n-1)
    # ordered pairs, 2n rounds of n-1 neighbours each.
    pairs = [(a, b) for o in rounds for a, b in zip(o, o[1:])]
    assert len(pairs) == 2 * n * (n - 1)
    assert all(pairs.count(p) == 2 for p in itertools.permutations(items, 2)), pairs
    # After every pair of rounds (a row and its reverse) every variant has the same total place, n - 1.
    for r in range(0, 2 * n, 2):
        assert all(rounds[r].index(i) + rounds[r + 1].index(i) == n - 1 for i in items)


def test_three_variants_run_all_six_orders():
    assert sorted(tuple(round_order("abc", r)) for r in range(6)) == sorted(itertools.permutations("abc"))


def _record(section, date, data):
    env = {"device_kind": "cpu", "backend": "cpu", "device_count": 1, "cpu_model": "X", "cpu_count": 2,
           "cpus_usable": 2, "threads": {}, "xla_flags": "", "python": "3", "platform": "p", "versions": {}}
    return {"run": {"command": f"python scripts/bench.py --only {section}", "date": date, "load_before": [0.1],
                    "load_after": [0.2], "env": env}, "data": data}


def test_a_partial_run_replaces_its_sections_and_keeps_the_others(tmp_path):
    from benchmarks import report

    compile_data = {"model": "m", "notes": [], "cold_over_warm": 4.0,
                    "pairs": [{k: {p: 1.0 for p in ("import_s", "init_s", "lower_s", "compile_s", "first_step_s",
                                                     "compile_and_first_step_s", "process_wall_s")}
                               for k in ("cold", "warm")}]}
    first = _record("compile", "2020-01-01T00:00:00", compile_data)
    results = report.merge(str(tmp_path), False, {"compile": first}, dict(first["run"], sections=["compile"], wall_s=1))
    report.write(str(tmp_path), results)
    par = {"model": "resnet20", "batch": 128, "xla_flags": "f", "rounds": 1, "reps": 1, "notes": [],
           "modes": {m: {"median_s": 0.1, "min_s": 0.1, "max_s": 0.1, "images_per_s": 1280.0,
                         "devices_used": "1 device(s)"} for m in ("none", "pmap", "mesh")},
           "ratios": {"pmap/none": 1.0}}
    second = _record("parallel", "2020-01-02T00:00:00", par)
    merged = report.merge(str(tmp_path), False, {"parallel": second}, dict(second["run"], sections=["parallel"],
                                                                         wall_s=1))
    assert list(merged["sections"]) == ["compile", "parallel"]
    md, js = report.write(str(tmp_path), merged)
    text = open(md).read()
    assert "## compile" in text and "## parallel" in text and "--only parallel" in text
    assert json.load(open(js))["sections"]["compile"]["run"]["date"] == "2020-01-01T00:00:00"
    # A quick run never mixes with a full one.
    assert list(report.merge(str(tmp_path), True, {}, {})["sections"]) == []
