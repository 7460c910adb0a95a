"""The family of claims: checks set apart, Holm's step-down over every committed result, the committed results
scored again from their files (scripts/ablate.py --rescore), rule cells, and whether a design preceded its
results (git history, skipped cleanly without it). Expected numbers come from scipy or arithmetic here."""

import csv
import json
import math
import os
import subprocess

import pytest
from scipy import stats as st

from jaxcnn.ablation import design, family, rescore, stats
from jaxcnn.ablation.protocol import checked_arms_of
from jaxcnn.ablation.spec import parse_claim

LABELS = {"a", "b", "c"}


def test_checks_are_twin_claims_and_equivalences_at_a_ceiling():
    twin = parse_claim("eval_accuracy: a ~ b within 0.001", LABELS)
    assert "by construction" in family.check_reason(twin, [0.9] * 3, [0.9] * 3, twin_arms=("a", "b"))
    assert family.check_reason(twin, [0.9] * 3, [0.9] * 3) is None  # no twins: an ordinary equivalence
    ceiling = parse_claim("eval_accuracy: a ~ c within 0.01", LABELS)
    assert "ceiling" in family.check_reason(ceiling, [0.998, 0.999, 0.999], [1.0, 1.0, 1.0])
    assert family.check_reason(ceiling, [0.998, 0.999, 0.999], [1.0, 0.999, 1.0]) is None
    superiority = parse_claim("eval_accuracy: c > a", LABELS)  # a superiority at the ceiling can still fail
    assert family.check_reason(superiority, [1.0] * 3, [0.99] * 3) is None


def test_non_inferiority_claims_parse_print_and_count_as_checks_only_at_a_ceiling():
    c = parse_claim("eval_accuracy: a >= b within 0.005", LABELS)
    assert (c.a, c.op, c.b, c.margin) == ("a", ">=", "b", 0.005)
    assert str(c) == "eval_accuracy: a >= b within 0.005"
    assert family._op_margin(str(c)) == (">=", 0.005)
    assert parse_claim("train_error: a <= b within 0.01", LABELS).op == "<="
    with pytest.raises(ValueError, match="needs a margin"):
        parse_claim("eval_accuracy: a >= b", LABELS)
    with pytest.raises(ValueError, match="margin must be > 0"):
        parse_claim("eval_accuracy: a >= b within 0", LABELS)
    # a at 100% on every seed: "a >= b" holds whatever b does, so it is a check; b at 100% is a real test
    assert "ceiling" in family.check_reason(c, [1.0] * 3, [0.95, 0.97, 0.96])
    assert family.check_reason(c, [0.95, 0.97, 0.96], [1.0] * 3) is None
    errors = parse_claim("train_error: a <= b within 0.01", LABELS)
    assert "ceiling" in family.check_reason(errors, [0.0] * 3, [0.02, 0.01, 0.03])
    row = family.claim_row(c, [0.912, 0.918, 0.921], [0.910, 0.916, 0.915])
    ref = st.ttest_1samp([0.002, 0.002, 0.006], -0.005, alternative="greater").pvalue
    assert row["kind"] == family.CLAIM and row["p_value"] == pytest.approx(2 * ref, rel=1e-6)


def test_holm_over_the_family_leaves_checks_out():
    # three claims with p from scipy's paired t, one check
    data = {"eval_accuracy: a > b": ([0.91, 0.92, 0.93], [0.90, 0.905, 0.91]),
            "eval_accuracy: b > c": ([0.90, 0.905, 0.91], [0.901, 0.902, 0.915]),
            "eval_accuracy: a > c": ([0.91, 0.92, 0.93], [0.80, 0.81, 0.815])}
    rows = [family.claim_row(parse_claim(t, LABELS), a, b) for t, (a, b) in data.items()]
    rows.append(family.claim_row(parse_claim("eval_accuracy: a ~ b within 0.001", LABELS), [0.9] * 3, [0.9] * 3,
                                 twin_arms=("a", "b")))
    p = [st.ttest_rel(a, b).pvalue for a, b in data.values()]
    assert [r["p_value"] for r in rows[:3]] == pytest.approx(p)
    assert family.apply_holm(rows) == 3
    assert [r["p_holm"] for r in rows[:3]] == pytest.approx(stats.holm(p)) and rows[3]["p_holm"] is None
    assert rows[3]["kind"] == family.CHECK
    # each claim's family-wise verdict follows from its p_holm: reproduced only under 0.05
    for r in rows[:3]:
        assert (r["verdict"] == stats.REPRODUCED) == (r["p_holm"] < 0.05 and r["difference"]["mean"] > 0)
        assert r["verdict_unadjusted"] == stats.verdict(r["difference"], ">")


def test_rule_cell_needs_a_recommended_arm_above_every_other():
    rows = [{"claim": "eval_accuracy: a > b", "verdict": stats.REPRODUCED},
            {"claim": "eval_accuracy: a > c", "verdict": stats.INCONCLUSIVE},
            {"claim": "eval_accuracy: b > c", "verdict": stats.NOT_REPRODUCED}]
    (cell,) = family.rule_verdicts([("cell", ("a",), ("b", "c"))], rows)
    assert cell["verdict"] == stats.INCONCLUSIVE  # a beats b, but not (yet) c
    rows[1]["verdict"] = stats.REPRODUCED
    assert family.rule_verdicts([("cell", ("a",), ("b", "c"))], rows)[0]["verdict"] == stats.REPRODUCED
    rows[1]["verdict"] = stats.NOT_REPRODUCED
    assert family.rule_verdicts([("cell", ("a",), ("b", "c"))], rows)[0]["verdict"] == stats.NOT_REPRODUCED


def test_gap_split_and_steps_ratio():
    gap = parse_claim("generalization_gap: b > a", LABELS)
    # gap = train - test; b's training accuracy higher by 0.010 and test accuracy lower by 0.002 per seed
    parts = family.gap_parts(gap, {"a": [0.98, 0.985, 0.99], "b": [0.99, 0.995, 1.0]},
                             {"a": [0.87, 0.871, 0.872], "b": [0.868, 0.869, 0.87]})
    assert parts["train_accuracy"]["mean"] == pytest.approx(0.010) and parts["test_accuracy"]["mean"] == \
        pytest.approx(-0.002) and parts["gap"] == pytest.approx(0.012)
    steps = parse_claim("steps_to_target: a > b", LABELS)
    r = family.steps_ratio(steps, [600.0, 1200.0, 2400.0], [100.0, 200.0, 400.0])
    assert r["ratio"] == pytest.approx(6.0) and r["low"] == pytest.approx(6.0)  # every seed exactly 6x
    assert family.steps_ratio(steps, [math.inf, 1.0, 1.0], [1.0, 1.0, 1.0])["censored"] == 1


def _result(folder, name, claims, rows, extras=(), supersedes=()):
    os.makedirs(folder / name)
    run = {"ablation": name, "title": name, "claim": "paper", "quick": False, "seeds": [0, 1, 2], "num_steps": 100,
           "batch_size": 8, "eval_examples": 10, "arms": [{"label": r["arm"]} for r in rows],
           "claims": [{"claim": c} for c in claims], "wall_time_s": 1.0, "environment": {"cpu_count": 2},
           "config": {"ablation": {"extras": list(extras), "supersedes": list(supersedes)}}}
    (folder / name / "run.json").write_text(json.dumps(run))
    with open(folder / name / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["arm", "params", "macs", "step_time_ms", "train_error_mean",
                                          "train_error_std", "eval_accuracy_mean", "eval_accuracy_std",
                                          "eval_accuracy_per_seed", "steps_to_target_per_seed", "seeds"])
        w.writeheader()
        for r in rows:
            w.writerow({"params": 10, "macs": 20, "step_time_ms": 1.0, "train_error_mean": 0.1,
                        "train_error_std": 0.01, "eval_accuracy_mean": 0.9, "eval_accuracy_std": 0.01, "seeds": 3,
                        **r})


def test_rescore_scores_committed_results_as_one_family(tmp_path):
    results = tmp_path / "results"
    # p 0.0256 on its own (lenet5's committed accuracy claim: d = (0.0182, 0.027, 0.0328)): reproduced alone,
    # but Holm over three claims doubles it past 0.05; the second p is tiny, and a censored comparison goes to
    # the sign test
    _result(results, "one", ["eval_accuracy: b > a"],
            [{"arm": "a", "eval_accuracy_per_seed": "0.8902 0.8845 0.8830"},
             {"arm": "b", "eval_accuracy_per_seed": "0.9084 0.9115 0.9158"}])
    _result(results, "two", ["eval_accuracy: a > b", "steps_to_target: a > b"],
            [{"arm": "a", "eval_accuracy_per_seed": "0.95 0.951 0.952", "steps_to_target_per_seed": "900 inf 800"},
             {"arm": "b", "eval_accuracy_per_seed": "0.80 0.80 0.801", "steps_to_target_per_seed": "100 200 300"}])
    out = rescore.rescore_all(str(results), None, command="test", log=lambda s: None)
    assert out["size"] == 3
    p_one = st.ttest_rel([0.9084, 0.9115, 0.9158], [0.8902, 0.8845, 0.8830]).pvalue
    assert p_one == pytest.approx(0.0256, abs=5e-4)
    claims = {r["claim"]: r for r in csv.DictReader(open(results / "one" / "claims.csv"))}
    row = claims["eval_accuracy: b > a"]
    assert float(row["p_value"]) == pytest.approx(p_one, rel=1e-4)
    # Holm: the sign test's p (3 of 3 pairs, 2 * 1/8 = 0.25) is largest; p_one is second: times 2
    assert float(row["p_holm"]) == pytest.approx(2 * p_one, rel=1e-4)
    assert row["verdict_unadjusted"] == stats.REPRODUCED and row["verdict"] == stats.INCONCLUSIVE
    two = json.loads((results / "two" / "run.json").read_text())
    steps = [c for c in two["claims"] if c["claim"].startswith("steps")][0]
    assert steps["method"] == "sign test" and steps["censored"] == [1, 0] and steps["p_value"] == pytest.approx(0.25)
    assert steps["mean"] is None and steps["a"] == [900.0, None, 800.0]  # censored: None, never a number
    assert two["family"]["size"] == 3 and "verdict_unadjusted" in two
    table = (results / "two" / "table.md").read_text()
    assert "sign test" in table and "p_holm" in table


def test_a_committed_larger_design_takes_the_claims_it_supersedes_out_of_the_family(tmp_path):
    results = tmp_path / "results"
    old_a, old_b = "0.90 0.91 0.92", "0.89 0.905 0.915"  # design II's 3 seeds
    new_a, new_b = "0.90 0.91 0.92 0.93 0.90", "0.88 0.90 0.91 0.925 0.89"  # the larger design, fresh seeds
    _result(results, "old", ["eval_accuracy: a > b", "eval_accuracy: a > c"],
            [{"arm": "a", "eval_accuracy_per_seed": old_a}, {"arm": "b", "eval_accuracy_per_seed": old_b},
             {"arm": "c", "eval_accuracy_per_seed": "0.80 0.81 0.815"}])
    out = rescore.rescore_all(str(results), None, command="test", log=lambda s: None)
    assert out["size"] == 2 and out["family"]["superseded"] == 0  # nothing replaces it yet
    _result(results, "new", ["eval_accuracy: a > b"],
            [{"arm": "a", "eval_accuracy_per_seed": new_a}, {"arm": "b", "eval_accuracy_per_seed": new_b}],
            supersedes=["old: eval_accuracy: a > b"])
    out = rescore.rescore_all(str(results), None, command="test", log=lambda s: None)
    # the family: old's a > c and new's a > b; old's a > b is scored and listed, not counted
    assert out["size"] == 2 and out["family"]["superseded"] == 1
    old = {c["claim"]: c for c in json.loads((results / "old" / "run.json").read_text())["claims"]}
    gone = old["eval_accuracy: a > b"]
    assert gone["kind"] == family.SUPERSEDED and gone["superseded_by"] == "new" and gone["p_holm"] is None
    assert gone["p_value"] == pytest.approx(st.ttest_rel([0.90, 0.91, 0.92], [0.89, 0.905, 0.915]).pvalue)
    p_new = st.ttest_rel([0.90, 0.91, 0.92, 0.93, 0.90], [0.88, 0.90, 0.91, 0.925, 0.89]).pvalue
    p_c = st.ttest_rel([0.90, 0.91, 0.92], [0.80, 0.81, 0.815]).pvalue
    new = json.loads((results / "new" / "run.json").read_text())["claims"][0]
    assert new["p_holm"] == pytest.approx(stats.holm([p_new, p_c])[0])  # Holm over two claims, not three
    table = (results / "old" / "table.md").read_text()
    assert "Superseded" in table and "| new |" in table
    # a name or claim that is not there is refused: the old claim would otherwise stay counted
    for bad, match in (("gone: eval_accuracy: a > b", "no committed result 'gone'"),
                       ("old: eval_accuracy: b > a", "write the claim as there"),
                       ("old eval_accuracy a > b", "RESULT: CLAIM")):
        run = json.loads((results / "new" / "run.json").read_text())
        run["config"]["ablation"]["supersedes"] = [bad]
        (results / "new" / "run.json").write_text(json.dumps(run))
        with pytest.raises(ValueError, match=match):
            rescore.rescore_all(str(results), None, command="test", log=lambda s: None)


def test_design_status_from_git_history_and_without(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})

    results = tmp_path / "experiments" / "results"
    assert design.design_status("x", {}, str(results)).startswith("unknown")  # no repository at all: no error
    git("init", "-q")
    (tmp_path / "experiments" / "ablations").mkdir(parents=True)
    (tmp_path / "experiments" / "ablations" / "x.py").write_text("seeds = 5\n")
    git("add", "-A")
    git("commit", "-qm", "design")
    (results / "x").mkdir(parents=True)
    (results / "x" / "results.csv").write_text("arm\n")
    git("add", "-A")
    git("commit", "-qm", "results")
    assert design.design_status("x", {}, str(results)).startswith("yes: config")
    (tmp_path / "experiments" / "ablations" / "x.py").write_text("seeds = 10\n")  # more seeds, after a look
    (results / "x" / "results.csv").write_text("arm\nmore\n")
    git("add", "-A")
    git("commit", "-qm", "more seeds and results together")
    assert design.design_status("x", {}, str(results)).startswith("no: the config changed in the results commit")
    rec = design.design_commit(str(tmp_path / "experiments" / "ablations" / "x.py"))
    assert rec["commit"] and rec["uncommitted_changes"] is False
    assert design.design_status("x", {"design": rec}, str(results)).startswith("yes")
    (tmp_path / "experiments" / "ablations" / "x.py").write_text("seeds = 11\n")
    assert design.design_commit(str(tmp_path / "experiments" / "ablations" / "x.py"))["uncommitted_changes"]
    # a shallow clone (CI) has no history to read: unknown, never an error
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{tmp_path}", str(clone)], check=True,
                   capture_output=True)
    assert design.design_status("x", {}, str(clone / "experiments" / "results")).startswith("unknown")


def test_rescore_asks_the_extras_which_arms_are_one_function(tmp_path):
    # The same per-seed values scored twice: with the flipped-twin extra its two arms are one function by
    # construction, so the claim between them is a check outside the family (no p_holm); without the extra it
    # is a claim of the family. Which arms are checked comes from the extra (checked_arms), not from its name.
    rows = [{"arm": "conv", "eval_accuracy_per_seed": "0.91 0.92 0.93"},
            {"arm": "flip", "eval_accuracy_per_seed": "0.91 0.92 0.93"}]
    _result(tmp_path / "twin", "t", ["eval_accuracy: conv > flip"], rows, extras=("twin_flip",))
    _result(tmp_path / "plain", "t", ["eval_accuracy: conv > flip"], rows)
    twin = rescore.score_result(str(tmp_path / "twin" / "t"))
    plain = rescore.score_result(str(tmp_path / "plain" / "t"))
    stand_in, extras = rescore._stand_in(json.loads((tmp_path / "twin" / "t" / "run.json").read_text()),
                                         ["conv", "flip"])
    assert checked_arms_of(extras, stand_in) == ("conv", "flip")
    assert [r["kind"] for r in twin["claims"]] == [family.CHECK]
    assert [r["kind"] for r in plain["claims"]] != [family.CHECK]
