"""jaxcnn.ablation.detection_report (and experiments/detection/report.py, the script over it): committed per-seed
numbers carried for models whose workdirs are absent, and paired by seed with freshly scored runs."""

import importlib.util
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("detection_report_script",
                                                  os.path.join(ROOT, "experiments", "detection", "report.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def report():
    from jaxcnn.ablation import detection_report

    return detection_report


COMMITTED = {"table": {"detection": {"fast_rcnn": {
    "map50": [0.50, 0.52, 0.54], "map": [0.25, 0.26, 0.27], "seconds_per_image": [0.002] * 3, "passes": 1.0,
    "seeds": [0, 1, 2], "train_minutes": [1.0, 2.0, 3.0], "steps": 12000, "ap50_per_class": [[0.5]] * 3}}}}


def test_carried_rows_keep_each_seed_value(report):
    runs = report.carried_runs(COMMITTED, "detection", "fast_rcnn")
    assert sorted(runs) == [0, 1, 2]
    assert [runs[s]["eval_map50"] for s in (0, 1, 2)] == [0.50, 0.52, 0.54]
    assert runs[2]["train_wall_seconds"] == 180.0 and runs[1]["train_steps"] == 12000
    assert all(r["carried"] for r in runs.values())
    assert report.carried_runs(COMMITTED, "detection", "rcnn") == {}
    assert report.carried_runs(None, "detection", "fast_rcnn") == {}


def test_fresh_runs_pair_with_carried_ones_by_seed(report):
    carried = report.carried_runs(COMMITTED, "detection", "fast_rcnn")
    # fresh runs of the variant, seeds given out of order: the pairing must follow the seed, not the order
    fresh = {2: {"eval_map50": 0.60}, 0: {"eval_map50": 0.58}, 1: {"eval_map50": 0.59}}
    (row,) = report.claims({"fast_rcnn_stride4": fresh, "fast_rcnn": carried},
                           [("fast_rcnn_stride4", "fast_rcnn", "eval_map50")])
    # differences by seed: 0.08, 0.07, 0.06 -> mean 0.07, sd 0.01, t(0.975, 2) = 4.303 -> half width 0.0248
    assert row["seeds"] == [0, 1, 2]
    assert row["mean_difference"] == pytest.approx(0.07)
    half = 4.302653 * 0.01 / np.sqrt(3)
    assert row["ci95"] == pytest.approx([0.07 - half, 0.07 + half], abs=1e-5)  # float rounding of the inputs
    assert row["verdict"] == "reproduced"


def test_mean_curve_thins_to_the_point_limit(report):
    steps = list(range(100, 100 * 1001, 100))
    rs = [{"curve": (steps, [1.0] * 1000)}, {"curve": (steps, [3.0] * 1000)}]
    c = report.mean_curve(rs)
    assert len(c["steps"]) == report.CURVE_POINTS and c["steps"][0] == 100 and c["steps"][-1] == 100000
    assert c["mean"][0] == 2.0 and c["min"][0] == 1.0 and c["max"][0] == 3.0
    assert report.mean_curve([{"carried": True, "stored_curve": None}]) is None
    stored = {"steps": [100], "mean": [2.0], "min": [1.0], "max": [3.0]}
    committed = {"table": {"detection": {"fast_rcnn": dict(COMMITTED["table"]["detection"]["fast_rcnn"],
                                                         curve=stored)}}}
    carried = report.carried_runs(committed, "detection", "fast_rcnn")
    assert report.mean_curve(list(carried.values())) == stored  # a committed curve survives a carry


def test_pictures_keep_the_committed_file_when_models_are_carried(script):
    names = [("a", "A"), ("b", "B")]
    both = {"a": {0: {}}, "b": {0: {}}}
    _, path = script.pictures(both, {"a": {}, "b": {}}, names, "detections")
    assert os.path.basename(path) == "detections.png"
    some = {"a": {0: {"carried": True}}, "b": {0: {}}}
    have, path = script.pictures(some, {"a": {}, "b": {}}, names, "detections")
    assert have == [("b", "B")] and os.path.basename(path) == "detections_b.png"
    assert script.pictures({"a": {1: {}}}, {"a": {}}, names, "detections") == ([], None)


def test_miou_without_background_and_rows_of_different_code_not_compared(report):
    # 11 classes, background first: with background (0.7 + 10 * 0.1) / 11, without it 10 * 0.1 / 10
    ious = [0.7] + [0.1] * 10
    assert report.foreground_miou(ious) == pytest.approx(0.1)
    assert report.foreground_miou([0.7, None, 0.2, 0.4]) == pytest.approx(0.3)  # an absent class is left out
    table = {"detection": {}, "segmentation": {
        "fcn8s": {"mean_iou": [0.5, 0.52, 0.54], "seeds": [0, 1, 2], "iou_per_class": [ious] * 3,
                  "code_version": "aaaa"},
        "fcn16s": {"mean_iou": [0.4, 0.41, 0.43], "seeds": [0, 1, 2], "iou_per_class": [ious] * 3,
                   "code_version": "bbbb"},
        "fcn32s": {"mean_iou": [0.1, 0.1, 0.12], "seeds": [0, 1, 2], "iou_per_class": [ious] * 3,
                   "code_version": "aaaa"}}}
    report.refresh_table(table)
    assert table["segmentation"]["fcn8s"]["miou_foreground"] == pytest.approx([0.1] * 3)
    assert table["segmentation"]["fcn8s"]["miou"] == [0.5, 0.52, 0.54]
    rows = {r["claim"]: r for r in report.score_claims(table)}
    assert rows["eval_mean_iou: fcn8s > fcn16s"]["kind"] == "not compared"
    assert "different code versions" in rows["eval_mean_iou: fcn8s > fcn16s"]["verdict"]
    same = rows["eval_mean_iou: fcn8s > fcn32s"]  # one code version: a claim with its p value
    assert same["kind"] == "claim" and 0.0 < same["p_value"] < 0.05


def test_results_round_trip_through_the_folder_given(report, tmp_path):
    # the library writes results.json, results.md and README.md's block under the folder it is given
    (tmp_path / "README.md").write_text(f"intro\n{report.MARKERS[0]}\nold\n{report.MARKERS[1]}\nend\n")
    table = {"detection": {}, "segmentation": {
        "fcn8s": {"mean_iou": [0.5, 0.52, 0.54], "seeds": [0, 1, 2], "pixel_accuracy": [0.9] * 3,
                  "seconds_per_image": [0.001] * 3, "steps": 10, "train_minutes": [1.0] * 3},
        "fcn32s": {"mean_iou": [0.1, 0.1, 0.12], "seeds": [0, 1, 2], "pixel_accuracy": [0.8] * 3,
                   "seconds_per_image": [0.001] * 3, "steps": 10, "train_minutes": [1.0] * 3}}}
    report.refresh_table(table)
    results = {"table": table, "claims": report.score_claims(table)}
    report.write_outputs(results, str(tmp_path))
    assert report.load_results(str(tmp_path)) == results
    md = (tmp_path / "results.md").read_text()
    assert "| eval_mean_iou: fcn8s > fcn32s | 0,1,2 | +0.413 |" in md  # (0.4 + 0.42 + 0.42) / 3
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("intro\n") and readme.endswith("end\n") and "old" not in readme
    assert "### Segmentation" in readme and "\n## " not in readme


def test_the_old_p_text_path_warns_and_agrees():
    from jaxcnn.ablation import report as ablation_report
    from jaxcnn.ablation.stats import p_text

    assert p_text(None) == "" and p_text(0.0123) == "0.012" and p_text(0.0004) == "4.0e-04"
    with pytest.warns(DeprecationWarning, match="jaxcnn.ablation.stats.p_text"):
        assert ablation_report.p_text(0.0123) == "0.012"


def _workdir(root, model, seed, trained, scored, dirty=False):
    """A scored detection workdir as run.sh leaves it, with the commits its records name."""
    import json

    wd = root / "detection" / model / f"seed{seed}"
    wd.mkdir(parents=True)
    prov = lambda c: {"git_commit": c, "git_dirty": dirty}  # noqa: E731
    (wd / "config.json").write_text(json.dumps({"provenance": prov(trained)}))
    (wd / "eval_test.json").write_text(json.dumps({"eval_map50": 0.5 + seed / 100, "provenance": prov(scored)}))
    (wd / "metrics.jsonl").write_text("\n".join(json.dumps({"step": s, "train_loss": 1.0 / s, "wall_time_sec": s})
                                                for s in (1, 2)) + "\n")


def test_a_rows_code_version_is_what_its_runs_recorded(report, tmp_path):
    # The commit that trained and scored the runs, from their own records: not the checkout running the report
    # (design II's runs were trained on a pinned commit and reported from a later one).
    for seed in (0, 1, 2):
        _workdir(tmp_path, "fast_rcnn", seed, "a" * 40, "a" * 40)
    runs = report.runs_of(str(tmp_path), "detection", "fast_rcnn")
    assert {r["code_version"] for r in runs.values()} == {"a" * 40}
    assert report.row_code_version(list(runs.values()), "report-checkout") == "a" * 40
    # trained on one commit and scored on another; a dirty checkout; no record at all (the fallback)
    assert report.run_code_version({"provenance": {"git_commit": "b1"}}, {"provenance": {"git_commit": "c2"}}) \
        == "b1 scored at c2"
    assert report.run_code_version({"provenance": {"git_commit": "b1", "git_dirty": True}}, {}) == "b1+changes"
    assert report.run_code_version({}, {}) is None
    mixed = [{"code_version": "b1"}, {"code_version": "c2"}, {"code_version": None}]
    assert report.row_code_version(mixed, "d3") == "mixed: b1, c2, d3"


def test_before_and_after_shows_only_the_rerun_models(report, tmp_path):
    import json

    def row(map50, code, steps):
        return {"map50": map50, "map": [0.2] * 3, "seconds_per_image": [0.001] * 3, "passes": 1.0,
                "seeds": [0, 1, 2], "train_minutes": [1.0] * 3, "steps": steps, "code_version": code}

    ious = [0.7] + [0.1] * 10  # with background (0.7 + 1.0) / 11 = 0.155, without it 0.1
    seg = {"mean_iou": [1.7 / 11] * 3, "iou_per_class": [ious] * 3, "seeds": [0, 1, 2], "steps": 8000,
           "pixel_accuracy": [0.9] * 3, "seconds_per_image": [0.001] * 3, "train_minutes": [1.0] * 3,
           "code_version": "1111111aaaa"}  # as design I's record stores it: no miou fields yet
    before = {"table": {"detection": {"fast_rcnn": row([0.50, 0.52, 0.54], "1111111aaaa", 12000),
                                      "rcnn": row([0.6] * 3, "1111111aaaa", 12000)},
                        "segmentation": {"fcn8s": dict(seg)}}}
    # nothing rerun yet: every row of "after" is design I's own -> no table
    assert report.render_before_after(json.loads(json.dumps(before)), before) == ""
    after = {"table": {"detection": {"fast_rcnn": row([0.47, 0.48, 0.49], "2222222bbbb", 24000),
                                     "rcnn": row([0.6] * 3, "1111111aaaa", 12000)},
                       "segmentation": {"fcn8s": dict(seg, code_version="2222222bbbb", miou=[0.2] * 3,
                                                      miou_foreground=[0.15] * 3)}}}
    text = report.render_before_after(json.loads(json.dumps(before)), after)
    # fast_rcnn: 0.52 ± 0.02 (sd of 0.50/0.52/0.54) before, 0.48 ± 0.01 after; rcnn (not rerun) left out
    assert "| Fast R-CNN | 0.520 ± 0.020 → 0.480 ± 0.010 | 0.200 ± 0.000 → 0.200 ± 0.000 | 3 → 3 | 12000 → 24000 | "\
           "1111111 → 2222222 |" in text
    assert "| R-CNN |" not in text
    assert "| FCN-8s | 0.155 ± 0.000 → 0.200 ± 0.000 | 0.100 ± 0.000 → 0.150 ± 0.000 |" in text
    assert "no difference here is a claim" in text
    assert report.render_before_after(before, after) == text and "miou" not in before["table"]["segmentation"]["fcn8s"]
    # write_outputs appends it when design I's record sits in the folder, and only then
    (tmp_path / "README.md").write_text(f"{report.MARKERS[0]}\n{report.MARKERS[1]}\n")
    results = {"table": after["table"], "claims": []}
    report.write_outputs(results, str(tmp_path))
    assert "Before and after" not in (tmp_path / "results.md").read_text()
    (tmp_path / report.BEFORE).write_text(json.dumps(before))
    report.write_outputs(results, str(tmp_path))
    assert "### Before and after" in (tmp_path / "README.md").read_text()
    assert "| Fast R-CNN | 0.520 ± 0.020 → 0.480 ± 0.010 |" in (tmp_path / "results.md").read_text()
