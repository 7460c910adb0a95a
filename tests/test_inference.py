"""Using a finished run: scripts/evaluate.py's per-class accuracy and confusion matrix (eval.json, PNG) and
scripts/predict.py's top-k classes of image files, both from the workdir's own config and latest checkpoint."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxcnn.train import train_and_evaluate
from jaxcnn.train.inference import (classification_report, confusion_matrix, load_run, predict_files,
                                    read_image)

sys.path.insert(0, os.path.dirname(__file__))
from test_train_loop import tiny_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_confusion_matrix_and_report_by_hand():
    # true 0 0 1 1 2, predicted 0 1 1 1 0: row 0 = (1, 1, 0), row 1 = (0, 2, 0), row 2 = (1, 0, 0)
    m = confusion_matrix([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], 4)
    np.testing.assert_array_equal(m, [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    r = classification_report(m, ["a", "b", "c", "d"])
    assert r["accuracy"] == 3 / 5
    assert r["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.0, "d": None}  # d has no examples
    with pytest.raises(ValueError, match="class ids must lie in 0..3"):
        confusion_matrix([4], [0], 4)


def test_classification_eval_sums_carry_the_confusion_matrix_of_the_unmasked_rows():
    import jax.numpy as jnp

    from jaxcnn.train.tasks import Classification

    # the five rows of the test above (predicted 0 1 1 1 0 as one-hot logits) plus a padded sixth row (mask 0,
    # label 3 predicted 3) that must not count: the same matrix, count 5, 3 correct
    pred, labels = [0, 1, 1, 1, 0, 3], [0, 0, 1, 1, 2, 3]
    logits = jnp.eye(4)[jnp.array(pred)] * 5.0
    sums = Classification().eval_sums(logits, {"label": jnp.array(labels),
                                               "mask": jnp.array([1, 1, 1, 1, 1, 0], jnp.float32)})
    np.testing.assert_array_equal(sums["confusion"], [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert sums["confusion"].dtype == jnp.int32 and float(sums["count"]) == 5 and float(sums["correct"]) == 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("run") / "w")
    final = train_and_evaluate(tiny_config(num_steps=6), wd)
    return wd, final


def test_evaluate_reports_per_class_accuracy_and_the_confusion_matrix(trained):
    from jaxcnn.data import datasets
    from jaxcnn.train.inference import evaluate_workdir

    wd, final = trained
    result = evaluate_workdir(wd)
    m = np.asarray(result["confusion_matrix"])
    test = datasets.load("synthetic", "test", synthetic_shape=(12, 12, 1), synthetic_size=96)
    assert m.shape == (10, 10) and m.sum() == 96  # every test example counted once
    np.testing.assert_array_equal(m.sum(1), np.bincount(test.labels, minlength=10))  # rows: true classes
    # the engine's own final accuracy equals the matrix's trace over its total
    assert result["eval_accuracy"] == pytest.approx(final["eval_accuracy"], abs=1e-6)
    assert np.trace(m) / m.sum() == pytest.approx(final["eval_accuracy"], abs=1e-6)
    for i, (name, acc) in enumerate(result["per_class_accuracy"].items()):
        assert acc == (pytest.approx(m[i, i] / m[i].sum()) if m[i].sum() else None)
    saved = json.loads(open(os.path.join(wd, "eval.json")).read())
    assert saved["confusion_matrix"] == result["confusion_matrix"] and saved["step"] == 6
    with Image.open(os.path.join(wd, "confusion_test.png")) as im:
        assert im.size[0] > 100


def test_old_detection_paths_of_the_workdir_layer_still_work_with_a_deprecation_warning(trained):
    from jaxcnn.detection import evaluate as old
    from jaxcnn.train import workdir

    wd, _ = trained
    with pytest.warns(DeprecationWarning, match="jaxcnn.train.workdir.workdir_config"):
        config = old.workdir_config(wd)
    assert config.to_dict() == workdir.workdir_config(wd).to_dict()
    with pytest.warns(DeprecationWarning, match="jaxcnn.train.inference.evaluate_workdir"):
        result = old.evaluate_workdir(wd, write=False)
    assert result["step"] == 6 and "written" not in result


def test_evaluate_script_prints_the_tables(trained):
    wd, _ = trained
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "evaluate.py"), "--workdir", wd,
                        "--split", "test[:48]"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 0, r.stderr
    assert "per-class accuracy:" in r.stdout and "confusion matrix (rows: true class" in r.stdout
    assert "images: 48" in r.stdout and os.path.exists(os.path.join(wd, "eval_test__48.json"))


def test_predict_ranks_the_classes_of_image_files(trained, tmp_path):
    from jaxcnn.data import datasets

    wd, _ = trained
    test = datasets.load("synthetic", "test", synthetic_shape=(12, 12, 1), synthetic_size=96)
    paths = []
    for i in range(3):
        p = str(tmp_path / f"img{i}.png")
        Image.fromarray(test.images[i, :, :, 0]).save(p)
        paths.append(p)
    big = str(tmp_path / "big.jpg")  # another size and RGB: converted and resized
    Image.fromarray(np.repeat(np.kron(test.images[0, :, :, 0], np.ones((3, 3), np.uint8))[..., None], 3, -1)
                    ).save(big)
    assert read_image(big, (12, 12, 1)).shape == (12, 12, 1)
    out = predict_files(wd, paths + [big], top=5)
    run = load_run(wd)
    probs = run.probabilities(test.images[:3])
    for r, p in zip(out[:3], probs):  # PNG is lossless: the same images, the same probabilities
        ranked = [t["class"] for t in r["top"]]
        assert ranked == list(np.argsort(-p, kind="stable")[:5])
        assert [t["probability"] for t in r["top"]] == pytest.approx(list(np.sort(p)[::-1][:5]), abs=1e-6)
    assert all(len(r["top"]) == 5 for r in out) and out[3]["path"] == big

    script = [sys.executable, os.path.join(ROOT, "scripts", "predict.py"), "--workdir", wd, "--top", "2"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run(script + paths[:1], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == paths[0] and len(lines) == 3 and "%" in lines[1]
    bad = str(tmp_path / "not_an_image.png")
    open(bad, "w").write("text")
    r = subprocess.run(script + [bad], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2 and "is not a readable image" in r.stderr
