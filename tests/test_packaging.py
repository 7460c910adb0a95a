"""A library people can install: provenance records, the extras' one-line messages, the console scripts'
entry points, flags by the book (--config.KEY VALUE, --print_config, --step), and weights in and out
(safetensors + model card, StableHLO, jaxcnn.load_weights)."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_train_loop import tiny_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 6-step tiny run with checkpoints at steps 2, 4 and 6."""
    from jaxcnn.train import train_and_evaluate

    wd = str(tmp_path_factory.mktemp("run") / "w")
    final = train_and_evaluate(tiny_config(num_steps=6, checkpoint_every=2, keep_checkpoints=3), wd)
    return wd, final


# --- provenance ---------------------------------------------------------------------------------------------

def _check_provenance(p):
    import flax
    import jaxlib.version
    import jax
    import optax

    import jaxcnn
    from jaxcnn.train.provenance import KEYS

    assert set(p) == set(KEYS)
    assert p["jaxcnn"] == jaxcnn.__version__ and p["jax"] == jax.__version__
    assert p["flax"] == flax.__version__ and p["optax"] == optax.__version__
    assert p["jaxlib"] == jaxlib.version.__version__
    assert p["python"] == ".".join(map(str, sys.version_info[:3]))
    assert p["devices"] == {"backend": jax.default_backend(), "count": jax.device_count(),
                            "local_count": jax.local_device_count(),
                            "kinds": sorted({d.device_kind for d in jax.devices()})}
    assert p["process_count"] == jax.process_count() == 1


def test_provenance_names_the_versions_commit_and_devices():
    import subprocess

    from jaxcnn.train.provenance import provenance

    p = provenance()
    _check_provenance(p)
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout: its commit (an installed wheel records None)
        assert p["git_commit"] == head.stdout.strip() and isinstance(p["git_dirty"], bool)
    else:
        assert p["git_commit"] is None and p["git_dirty"] is None


def test_config_json_and_eval_json_carry_the_provenance(trained, monkeypatch):
    from jaxcnn.train.inference import evaluate_workdir
    from jaxcnn.train import provenance as prov

    wd, _ = trained
    record = json.load(open(os.path.join(wd, "config.json")))
    _check_provenance(record["provenance"])
    assert record["provenance"]["git_commit"] == prov.provenance()["git_commit"]
    # eval.json takes the same object from the same function
    monkeypatch.setattr(prov, "provenance", lambda: {"marker": 1})
    result = evaluate_workdir(wd, split="test[:8]")
    assert result["provenance"] == {"marker": 1}
    assert json.load(open(os.path.join(wd, "eval.json")))["provenance"] == {"marker": 1}


def test_ablation_run_json_takes_the_same_provenance(tmp_path, monkeypatch):
    from jaxcnn.ablation import report
    from jaxcnn.train import provenance as prov

    monkeypatch.setattr(prov, "provenance", lambda: {"marker": 2})
    monkeypatch.setattr(report, "plot_curves", lambda *a, **k: None)
    config = tiny_config()
    config.ablation.name, config.ablation.title = "t", "t"
    row = {"arm": "a", "eval_examples": 8, "steps": 6, "batch_size": 8}
    result = {"rows": [row], "claims": [], "curves": {}, "extras": {}, "seeds": [0]}
    monkeypatch.setattr(report, "markdown_table", lambda rows, claims: "")
    report.write_results(result, str(tmp_path), config=config, command="c", wall_time_s=1.0, quick=True,
                         load_before=[])
    assert json.load(open(tmp_path / "run.json"))["provenance"] == {"marker": 2}


# --- extras: the light core, and one line naming the extra a feature needs ---------------------------------

EXTRA_MODULES = ["tensorflow_datasets", "grain", "array_record", "PIL", "tensorboardX", "tqdm", "matplotlib",
                 "cv2", "pycocotools", "torch", "chex", "scipy"]


def test_the_light_core_builds_summarises_and_takes_a_train_step_without_any_extra():
    import subprocess
    import textwrap

    code = textwrap.dedent(f"""
        import sys
        for m in {EXTRA_MODULES!r}:
            sys.modules[m] = None  # as if not installed: importing it raises ImportError
        import jax, jax.numpy as jnp
        import jaxcnn
        from jaxcnn.train import base_config, create_train_state, make_optimizer, train_step
        print("122,570" in str(jaxcnn.summary("keras_cifar_cnn")))  # the README's count of Keras's CIFAR CNN
        model = jaxcnn.create_model("fashion_cnn_tiny", num_classes=10)
        tx, _ = make_optimizer(base_config().optimizer, 10)
        state = create_train_state(model, tx, jax.random.key(0), (12, 12, 1))
        batch = {{"image": jnp.ones((4, 12, 12, 1)), "label": jnp.arange(4)}}
        new, metrics = jax.jit(lambda s, b, k: train_step(s, b, k, preprocess=lambda x, k, t: x))(
            state, batch, jax.random.key(1))
        print(int(new.step), bool(jnp.isfinite(metrics["loss"])))
        import jaxcnn.data
        try:
            jaxcnn.data.load("synthetic", "train", synthetic_shape=(12, 12, 1), synthetic_size=8)
        except ImportError as e:
            print("DATA:", type(e).__name__, e)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines() == [
        "True", "1 True",
        "DATA: MissingExtra reading and preparing datasets (TFDS) needs tensorflow-datasets, which is not "
        "installed: pip install 'jaxcnn[data]' (or 'jaxcnn[all]')."]


def test_importing_the_ops_loads_neither_the_engine_nor_the_applications():
    """`import jaxcnn.ops` runs the package root, which loads ops, layers and models; the engine, the data and
    the applications load when first used, and the names the root re-exports from them still resolve."""
    import subprocess
    import textwrap

    code = textwrap.dedent("""
        import sys
        import jaxcnn.ops
        parts = {m.split(".")[1] for m in sys.modules if m.startswith("jaxcnn.") and not m.startswith("jaxcnn._")}
        print(sorted(parts))
        import jaxcnn
        from jaxcnn.pretrained import load_weights
        print(jaxcnn.load_weights is load_weights, jaxcnn.train.base_config().task, "load_weights" in dir(jaxcnn))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == ["['layers', 'models', 'ops', 'runtime']", "True classification True"]


@pytest.mark.parametrize("module,extra", [("tensorflow_datasets", "data"), ("grain", "data"), ("PIL", "data"),
                                          ("tensorboardX", "train"), ("tqdm", "train"), ("matplotlib", "train"),
                                          ("cv2", "detection"), ("pycocotools", "detection"), ("torch", "torch"),
                                          ("scipy", "stats")])
def test_a_missing_library_is_one_line_naming_its_extra(module, extra, monkeypatch):
    from jaxcnn._extras import MissingExtra, require

    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtra) as e:
        require(module)
    text = str(e.value)
    assert "\n" not in text and f"pip install 'jaxcnn[{extra}]'" in text


def test_an_import_error_inside_an_installed_package_is_not_hidden(monkeypatch):
    from jaxcnn._extras import MissingExtra, require

    monkeypatch.setitem(sys.modules, "tensorboardX.writer", None)
    monkeypatch.delitem(sys.modules, "tensorboardX", raising=False)
    with pytest.raises(ImportError) as e:
        require("tensorboardX")
    assert not isinstance(e.value, MissingExtra)


def test_a_feature_without_its_extra_exits_2_with_the_line(monkeypatch, capsys, tmp_path):
    from jaxcnn.train import cli
    from jaxcnn.train.records import MetricsLog

    monkeypatch.setitem(sys.modules, "tensorboardX", None)

    class Wd:
        path = str(tmp_path)
        metrics_path = str(tmp_path / "metrics.jsonl")

    code = cli.main(lambda: MetricsLog(Wd(), start=0, config=tiny_config(), tensorboard=True))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("error: TensorBoard event files (config.tensorboard) needs tensorboardX, which is "
                                 "not installed: pip install 'jaxcnn[train]' (or 'jaxcnn[all]').")


def test_evaluate_without_matplotlib_scores_and_says_why_there_is_no_picture(trained, monkeypatch):
    from jaxcnn.commands.evaluate import format_result
    from jaxcnn.train.inference import evaluate_workdir

    wd, _ = trained
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    result = evaluate_workdir(wd, split="test[:16]")
    assert result["images"] == 16 and not any(f.endswith(".png") for f in result["files"])
    assert result["notes"] == ["confusion_test__16.png not drawn: drawing plots (confusion matrices, ablation "
                               "curves) needs matplotlib, which is not installed: pip install 'jaxcnn[train]' "
                               "(or 'jaxcnn[all]')."]
    assert result["notes"][0] in format_result(result).splitlines()


# --- console scripts ----------------------------------------------------------------------------------------

def test_every_console_script_is_an_entry_point_of_the_library_and_its_scripts_file_runs_it():
    import importlib
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    scripts = project["scripts"]
    named = {"jaxcnn-train", "jaxcnn-evaluate", "jaxcnn-predict", "jaxcnn-ablate", "jaxcnn-prepare-data",
             "jaxcnn-summary", "jaxcnn-export"}
    assert named <= set(scripts)
    for command, target in scripts.items():
        module, _, attr = target.partition(":")
        assert module == "jaxcnn.commands." + command.removeprefix("jaxcnn-").replace("-", "_") and attr == "main"
        assert callable(getattr(importlib.import_module(module), attr))
        script = os.path.join(ROOT, "scripts", module.rsplit(".", 1)[1] + ".py")
        if os.path.exists(script):  # the checkout's file is the same command
            assert f"from {module} import main" in open(script).read()


def test_packaging_metadata_one_version_and_typed():
    import tomllib

    import jaxcnn

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        meta = tomllib.load(f)
    project = meta["project"]
    assert "version" in project["dynamic"] and "version" not in project
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "jaxcnn._version.__version__"}
    assert os.path.exists(os.path.join(ROOT, "jaxcnn", "py.typed"))
    assert "py.typed" in meta["tool"]["setuptools"]["package-data"]["jaxcnn"]
    assert project["urls"] and "Typing :: Typed" in project["classifiers"]
    core = " ".join(project["dependencies"])
    for heavy in ("tensorflow-datasets", "grain", "array_record", "opencv", "pycocotools", "chex", "torch",
                  "tqdm", "tensorboardX", "matplotlib"):
        assert heavy not in core
    extras = project["optional-dependencies"]
    assert {"data", "train", "detection", "native", "torch", "stats", "test", "all"} <= set(extras)
    assert any(d.startswith("chex") for d in extras["test"])
    assert sum(d.startswith("chex") for e in extras.values() for d in e) == 1  # chex only in [test]
    assert any(d.startswith("tensorboard>") for d in extras["train"])  # the viewer the docs name
    assert extras["all"] == ["jaxcnn[data,train,detection,native,stats,test]"]
    assert 'pip install -q --disable-pip-version-check -e ".[all]"' in open(os.path.join(ROOT, "scripts",
                                                                                             "setup.sh")).read()


# --- flags --------------------------------------------------------------------------------------------------

TRAIN_ARGS = ["--config", os.path.join(ROOT, "experiments", "configs", "default.py"), "--workdir", "unused"]


def _parse(argv):
    from jaxcnn.commands import train  # noqa: F401  (the parser below is train's)
    from jaxcnn.train import cli

    p = cli.parser("train")
    p.add_argument("--workdir", required=True)
    return cli.parse(p, argv)


def test_config_overrides_take_both_forms_as_config_flags_does():
    args, c = _parse(TRAIN_ARGS + ["--config.num_steps", "5", "--config.batch_size=64", "--config.model.skip=False",
                                   "--config.optimizer.learning_rate", "1", "--config.synthetic_shape=(28,28,1)",
                                   "--noconfig.progress", "--config.model.block=bottleneck"])
    assert args.workdir == "unused"
    assert c.num_steps == 5 and c.batch_size == 64 and c.model.skip is False and c.progress is False
    assert c.optimizer.learning_rate == 1.0 and isinstance(c.optimizer.learning_rate, float)
    assert c.synthetic_shape == (28, 28, 1) and c.model.block == "bottleneck"


@pytest.mark.parametrize("extra,message", [
    (["--config.num_step=5"], "unknown config key 'num_step'. Did you mean 'num_steps'"),
    (["--config.num_steps=five"], "--config.num_steps=five: invalid literal for int()"),
    (["--config.progress", "False"], "--config.progress False: a boolean, or a key the config file does not "
                                     "define, takes its value after '=': --config.progress=False."),
])
def test_a_bad_override_is_one_line_and_status_2(extra, message, capsys):
    with pytest.raises(SystemExit) as e:
        _parse(TRAIN_ARGS + extra)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_print_config_prints_the_resolved_config_and_exits(capsys):
    from jaxcnn.commands import train

    with pytest.raises(SystemExit) as e:  # --workdir is not needed to print
        train.main(["--config", "default", "--config.num_steps", "7", "--print_config"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "num_steps: 7\n" in out and "name: fashion_cnn_small" in out


def test_a_packaged_config_is_named_without_a_path_and_a_wrong_name_lists_them(capsys):
    from jaxcnn.train import cli

    assert cli.load_config("default").model.name == cli.load_config(
        os.path.join(ROOT, "experiments", "configs", "default.py")).model.name == "fashion_cnn_small"
    assert {"default", "resnet20", "lenet5"} <= set(cli.packaged_configs())
    with pytest.raises(cli.UsageError, match="no packaged config of that name.*default.*Did you mean 'resnet20'"):
        cli.load_config("resnet2")


def test_ablate_takes_overrides_for_every_arm_and_has_no_config_file_flag(capsys, monkeypatch, tmp_path):
    from jaxcnn import ablation
    from jaxcnn.commands import ablate

    def not_here(*args, **kwargs):
        raise AssertionError("the ablation must not run")

    monkeypatch.setattr(ablation, "run_ablation", not_here)
    safe = ["--out", str(tmp_path / "out"), "--workdirs", str(tmp_path / "runs")]
    with pytest.raises(SystemExit) as e:
        ablate.main(["skip", "--quick", "--config.num_steps", "3", "--print_config"] + safe)
    assert e.value.code == 0 and "num_steps: 3\n" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        ablate.main(["skip", "--config", "x.py"] + safe)
    assert e.value.code == 2 and "unrecognized arguments: --config x.py" in capsys.readouterr().err


# --- weights in and out -------------------------------------------------------------------------------------

def _images(n, seed):
    import jax

    return jax.random.normal(jax.random.key(seed), (n, 12, 12, 1))


def test_safetensors_export_round_trips_through_load_weights(trained, tmp_path):
    from safetensors.numpy import load_file

    import jaxcnn
    from jaxcnn.commands import export

    wd, _ = trained
    out = str(tmp_path / "tiny.safetensors")
    assert export.main(["--workdir", wd, "--format", "safetensors", "--out", out, "--step", "4"]) == 0
    names = sorted(load_file(out))
    assert "params/Dense_0/kernel" in names or any(n.startswith("params/") for n in names)
    assert all(n.split("/")[0] in ("params", "batch_stats") for n in names)
    card = json.load(open(tmp_path / "tiny.json"))
    assert card["model"] == "fashion_cnn_tiny" and card["step"] == 4 and card["input"]["shape"] == ["batch", 12, 12, 1]
    assert card["model_fields"]["widths"] == [4, 8, 8] and card["data"]["dataset"] == "synthetic"
    assert card["provenance"]["training"] == json.load(open(os.path.join(wd, "config.json")))["provenance"]
    assert card["tensors"] == names and os.path.exists(tmp_path / "tiny.md")
    assert "eval_accuracy" in card["metrics"]  # the step-3 evaluation logged before step 4
    model, variables = jaxcnn.load_weights(out)
    run_model, run_variables = jaxcnn.load_weights(wd, step=4)
    x = _images(5, 0)
    np.testing.assert_array_equal(np.asarray(model.apply(variables, x, train=False)),
                                  np.asarray(run_model.apply(run_variables, x, train=False)))
    latest_model, latest = jaxcnn.load_weights(wd)  # step 6: other weights
    assert not np.allclose(latest_model.apply(latest, x, train=False), model.apply(variables, x, train=False))


def test_stablehlo_export_runs_without_jaxcnn_at_two_batch_sizes(trained, tmp_path):
    import re

    import jax

    import jaxcnn
    from jaxcnn.commands import export

    wd, _ = trained
    out = str(tmp_path / "tiny.stablehlo")
    assert export.main(["--workdir", wd, "--format", "stablehlo", "--out", out]) == 0
    exported = jax.export.deserialize(bytearray(open(out, "rb").read()))
    assert {"cpu", "cuda", "tpu"} <= set(exported.platforms)
    assert str(exported.in_avals[0]) == "float32[batch,12,12,1]"
    targets = set(re.findall(r"custom_call @([\w.]+)", exported.mlir_module()))
    assert targets <= {"shape_assertion"}  # jax.export's own shape check; no jaxcnn kernel
    model, variables = jaxcnn.load_weights(wd)
    for n in (1, 7):
        x = _images(n, n)
        np.testing.assert_allclose(np.asarray(exported.call(x)), np.asarray(model.apply(variables, x, train=False)),
                                   rtol=1e-5, atol=1e-5)


def test_the_stablehlo_export_switches_the_native_convolutions_off():
    import re

    import jax

    import jaxcnn
    from jaxcnn.ops import native
    from jaxcnn.pretrained import export

    if native.status() != "enabled":
        pytest.skip(f"native convolutions {native.status()}")
    model = jaxcnn.create_model("fashion_cnn_tiny", num_classes=10)
    variables = model.init(jax.random.key(0), np.zeros((1, 12, 12, 1), np.float32), train=False)
    spec = jax.ShapeDtypeStruct((2, 12, 12, 1), np.float32)
    # the library's own CPU path is custom calls, which jax.export refuses to serialise without a guarantee
    with pytest.raises(ValueError, match="custom calls whose targets have no compatibility guarantees"):
        jax.export.export(jax.jit(export.inference_function(model, variables)), platforms=("cpu",))(spec)
    switched = export.stablehlo(model, variables, (12, 12, 1), platforms=("cpu",))
    assert not re.findall(r"jaxcnn_\w+", switched.mlir_module())
    assert native.status() == "enabled"  # switched back on afterwards


def test_load_weights_finds_named_weights_in_jaxcnn_home(trained, tmp_path, monkeypatch):
    import jaxcnn
    from jaxcnn.pretrained import export

    wd, _ = trained
    home = tmp_path / "home"
    export.export_safetensors(wd, str(home / "tiny_fmnist.safetensors"))
    monkeypatch.setenv("JAXCNN_HOME", str(home))
    model, variables = jaxcnn.load_weights("tiny_fmnist")
    run_model, run_variables = jaxcnn.load_weights(wd)
    x = _images(2, 3)
    np.testing.assert_array_equal(np.asarray(model.apply(variables, x, train=False)),
                                  np.asarray(run_model.apply(run_variables, x, train=False)))
    with pytest.raises(FileNotFoundError, match=f"not in the cache {home}"):
        jaxcnn.load_weights("nothing_here")


def test_load_weights_reads_a_torchvision_file_by_its_name(tmp_path):
    torch = pytest.importorskip("torch")
    import jax

    import jaxcnn
    from jaxcnn.pretrained import torchvision_keys

    keys = torchvision_keys("resnet18", num_classes=3)
    rng = np.random.default_rng(0)
    state = {k: torch.from_numpy(rng.standard_normal(s).astype(np.float32) if "num_batches" not in k
                                 else np.zeros(s, np.int64)) for k, s in keys.items()}
    path = str(tmp_path / "resnet18-00000000.pth")
    torch.save(state, path)
    model, variables = jaxcnn.load_weights(path, num_classes=3)
    assert model.num_classes == 3
    expected = jaxcnn.load_torchvision_weights("resnet18", path, num_classes=3)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)), variables,
                                                         expected))


def test_evaluate_and_predict_take_a_step(trained, tmp_path, capsys):
    from PIL import Image

    import jaxcnn
    from jaxcnn.commands import evaluate, predict
    from jaxcnn.data import datasets
    from jaxcnn.train.inference import load_run

    wd, _ = trained
    assert evaluate.main(["--workdir", wd, "--split", "test[:8]", "--step", "2"]) == 0
    assert "step: 2\n" in capsys.readouterr().out
    assert json.load(open(os.path.join(wd, "eval.json")))["step"] == 2
    assert evaluate.main(["--workdir", wd, "--split", "test[:8]", "--step", "3"]) == 2
    assert "has no checkpoint of step 3; its steps: 2, 4, 6" in capsys.readouterr().err
    run2, run6 = load_run(wd, step=2), load_run(wd)
    assert (run2.step, run6.step) == (2, 6)
    test = datasets.load("synthetic", "test", synthetic_shape=(12, 12, 1), synthetic_size=96)
    model, variables = jaxcnn.load_weights(wd, step=2)  # the same weights by the other road
    x = run2.preprocess(test.images[:4], None, False)
    np.testing.assert_allclose(run2.logits(test.images[:4]), model.apply(variables, x, train=False), atol=1e-5)
    path = str(tmp_path / "a.png")
    Image.fromarray(test.images[0, :, :, 0]).save(path)
    assert predict.main(["--workdir", wd, "--json", "--top", "1", "--step", "2", path]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"][0]
    assert top["probability"] == pytest.approx(float(run2.probabilities(test.images[:1]).max()), abs=1e-6)
