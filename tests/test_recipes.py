"""Training recipes (docs/recipes.md): EMA, label smoothing with mixup/CutMix, TrivialAugment, gradient
accumulation and the one-cycle schedule; their refusals; and the engine running all of them at once under jit,
pmap and mesh, resuming bit-identical."""

import math
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from PIL import Image, ImageEnhance, ImageOps

import jaxcnn
from jaxcnn.data import augment
from jaxcnn.train import build, create_train_state, eval_step, make_optimizer, make_schedule, train_and_evaluate
from jaxcnn.train import train_step, validate_config
from jaxcnn.train.state import with_ema
from jaxcnn.train.tasks import Classification

sys.path.insert(0, os.path.dirname(__file__))
from test_train_loop import _equal_trees, _metrics, tiny_config  # noqa: E402

OPS = {name: i for i, name in enumerate(augment.TRIVIAL_OPS)}


# --- refusals -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, message", [
    ("grad_accum_steps", 0, r"grad_accum_steps must be >= 1 \(1 = no accumulation\), got 0; e.g. 4"),
    ("grad_accum_steps", 4, r"grad_accum_steps=4 does not divide num_steps=6 .* e.g. 4"),
    ("ema_decay", 1.0, r"ema_decay must be in \[0, 1\) \(0 = off\), got 1.0; e.g. 0.999"),
    ("ema_decay", -0.5, r"ema_decay must be in \[0, 1\)"),
    ("mixup_alpha", -0.2, r"mixup_alpha must be >= 0 \(0 = off"),
    ("cutmix_alpha", float("nan"), r"cutmix_alpha must be a finite number"),
    ("mixup_prob", 1.5, r"mixup_prob is a probability, in \[0, 1\], got 1.5; e.g. 1.0"),
    ("mixup_switch_prob", -0.1, r"mixup_switch_prob is a probability"),
    ("augment", "autoaugment", r"unknown config.augment 'autoaugment'; allowed: 'none', 'flip_crop', 'trivial'"),
    ("optimizer.div_factor", 0.0, r"optimizer.div_factor must be positive"),
    ("optimizer.schedule", "one_cycle", r"allowed: .*'onecycle'"),
])
def test_bad_recipe_values_are_refused_in_one_line(key, value, message):
    with pytest.raises((ValueError, TypeError), match=message) as e:
        validate_config(tiny_config(**{key: value}))
    assert "\n" not in str(e.value)


def test_mixing_that_never_happens_is_refused():
    with pytest.raises(ValueError, match=r"mixup_prob=0 never mixes a batch.*--config.mixup_prob=1.0"):
        validate_config(tiny_config(mixup_alpha=0.2, mixup_prob=0.0))


def test_augmenting_per_pixel_labels_is_refused():
    with pytest.raises(ValueError, match=r"task='segmentation' .* --config.augment=none"):
        build(tiny_config(task="segmentation", augment="flip_crop"))


def test_onecycle_without_a_rise_is_refused():
    opt = tiny_config(**{"optimizer.schedule": "onecycle", "optimizer.warmup_steps": 0}).optimizer
    with pytest.raises(ValueError, match=r"'onecycle' rises over optimizer.warmup_steps, .* in 1..99 .*=25"):
        make_schedule(opt, 100)


# --- schedules and accumulation -----------------------------------------------------------------------------------

def test_onecycle_rises_to_the_peak_and_falls_to_its_floor():
    opt = tiny_config(**{"optimizer.schedule": "onecycle", "optimizer.warmup_steps": 30,
                         "optimizer.learning_rate": 0.1}).optimizer
    s = make_schedule(opt, 100)
    # lr / div_factor at the start, lr at the end of the rise, lr / (div_factor * final_div_factor) at the end
    np.testing.assert_allclose([s(0), s(30), s(100)], [0.1 / 25, 0.1, 0.1 / (25 * 1e4)], rtol=1e-5)
    # cosine halfway points: the mean of the ends
    np.testing.assert_allclose(s(15), (0.1 / 25 + 0.1) / 2, rtol=1e-5)
    np.testing.assert_allclose(s(65), (0.1 + 0.1 / 25e4) / 2, rtol=1e-5)


def test_grad_accumulation_is_one_update_of_the_mean_gradient():
    opt = tiny_config(**{"optimizer.name": "sgd", "optimizer.schedule": "constant", "optimizer.warmup_steps": 0,
                         "optimizer.learning_rate": 0.5, "optimizer.weight_decay": 0.0}).optimizer
    params = {"w": jnp.array([1.0, -2.0])}
    g1, g2 = {"w": jnp.array([0.2, 0.4])}, {"w": jnp.array([0.6, -0.8])}
    tx, sched = make_optimizer(opt, 4, grad_accum_steps=2)
    state = tx.init(params)
    u1, state = tx.update(g1, state, params)
    p1 = optax.apply_updates(params, u1)
    np.testing.assert_array_equal(p1["w"], params["w"])  # the first step of a group only accumulates
    u2, state = tx.update(g2, state, p1)
    p2 = optax.apply_updates(p1, u2)
    # one SGD step (momentum starts at zero) with the mean gradient (0.4, -0.2) at rate 0.5
    np.testing.assert_allclose(p2["w"], [1.0 - 0.5 * 0.4, -2.0 + 0.5 * 0.2], rtol=1e-6)
    assert [float(sched(s)) for s in range(4)] == [0.5] * 4


def test_accumulated_schedule_counts_steps():
    opt = tiny_config(**{"optimizer.schedule": "cosine", "optimizer.warmup_steps": 4,
                         "optimizer.learning_rate": 1.0}).optimizer
    base = make_schedule(opt, 12)
    _, sched = make_optimizer(opt, 12, grad_accum_steps=4)
    # each group of 4 steps runs at the rate of its first step
    assert [float(sched(s)) for s in range(12)] == [float(base(4 * (s // 4))) for s in range(12)]


# --- EMA --------------------------------------------------------------------------------------------------------

def _tiny_state(tx, ema=True):
    model = jaxcnn.create_model("fashion_cnn_tiny")
    state = create_train_state(model, tx, jax.random.key(0), (12, 12, 1))
    return with_ema(state) if ema else state


def _batch(seed=0, n=8):
    data = jaxcnn.data.synthetic((12, 12, 1), num_classes=10, size=n, seed=seed)
    return {"image": jnp.asarray(data.images), "label": jnp.asarray(data.labels)}


PRE = augment.make_preprocess(mean=(0.5,), std=(0.25,))


def test_ema_follows_its_decay_with_the_short_run_warmup_and_skips_bad_steps():
    step = jax.jit(lambda s, b, k: train_step(s, b, k, preprocess=PRE, ema_decay=0.99))
    state = _tiny_state(optax.sgd(0.1, momentum=0.9))
    init = state.params
    key = jax.random.key(1)
    s1, _ = step(state, _batch(0), key)
    # step 0: decay min(0.99, (1 + 0) / (10 + 0)) = 0.1
    for e, p0, p1 in zip(*(jax.tree_util.tree_leaves(t) for t in (s1.ema["params"], init, s1.params))):
        np.testing.assert_allclose(e, 0.1 * p0 + 0.9 * p1, rtol=1e-5, atol=1e-7)
    s2, _ = step(s1, _batch(1), key)
    d = 2.0 / 11.0  # step 1: (1 + 1) / (10 + 1)
    for e2, e1, p2 in zip(*(jax.tree_util.tree_leaves(t) for t in (s2.ema, s1.ema, {
            "params": s2.params, "batch_stats": s2.batch_stats}))):
        np.testing.assert_allclose(e2, d * e1 + (1 - d) * p2, rtol=1e-5, atol=1e-7)
    # a step whose parameters would be NaN changes neither the weights nor their EMA
    bad = s2.replace(tx=optax.sgd(float("nan")))
    s3, m = jax.jit(lambda s, b, k: train_step(s, b, k, preprocess=PRE, ema_decay=0.99))(bad, _batch(2), key)
    assert float(m["finite"]) == 0.0
    assert _equal_trees(s3.ema, s2.ema) and _equal_trees(s3.params, s2.params)


def test_evaluation_scores_the_ema():
    state = _tiny_state(optax.sgd(0.1))
    step = jax.jit(lambda s, b, k: train_step(s, b, k, preprocess=PRE, ema_decay=0.9))
    for i in range(3):
        state, _ = step(state, _batch(i), jax.random.key(1))
    batch = {**_batch(5, 16), "mask": jnp.ones(16)}
    ev = jax.jit(lambda s, b: eval_step(s, b, preprocess=PRE))
    as_weights = state.replace(params=state.ema["params"], batch_stats=state.ema["batch_stats"], ema=None)
    with_avg, plain, of_ema = ev(state, batch), ev(state.replace(ema=None), batch), ev(as_weights, batch)
    assert float(with_avg["loss_sum"]) == float(of_ema["loss_sum"])
    assert float(with_avg["loss_sum"]) != float(plain["loss_sum"])


# --- mixup, CutMix and the mixed loss ----------------------------------------------------------------------------

def _distinct(n=6, h=8, w=8):
    """Images whose every pixel value is unique, so each output pixel names its source."""
    return jnp.arange(n * h * w, dtype=jnp.float32).reshape(n, h, w, 1) / (n * h * w)


def test_mixup_blends_each_image_with_its_reverse_at_lambda():
    x = _distinct()
    out, lam = augment.mix_batch(jax.random.key(3), x, mixup_alpha=0.4)
    assert 0.0 < float(lam) < 1.0
    np.testing.assert_allclose(out, lam * x + (1 - lam) * x[::-1], rtol=1e-6)


def test_cutmix_pastes_a_box_whose_area_is_one_minus_lambda():
    x = _distinct()
    for seed in range(4):
        out, lam = augment.mix_batch(jax.random.key(seed), x, cutmix_alpha=1.0)
        from_reverse = np.asarray(out == x[::-1]).mean(axis=(1, 2, 3))
        from_self = np.asarray(out == x).mean(axis=(1, 2, 3))
        np.testing.assert_allclose(from_reverse, 1.0 - float(lam), atol=1e-6)
        np.testing.assert_allclose(from_self + from_reverse, 1.0)


@pytest.mark.parametrize("switch, cut", [(1.0, True), (0.0, False)])
def test_switch_probability_picks_cutmix_or_mixup(switch, cut):
    x = _distinct()
    out, lam = augment.mix_batch(jax.random.key(7), x, mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=switch)
    copied = np.asarray((out == x) | (out == x[::-1])).all()
    assert copied == cut and 0.0 < float(lam) < 1.0


def test_mix_probability_zero_leaves_the_batch():
    x = _distinct()
    out, lam = augment.mix_batch(jax.random.key(0), x, mixup_alpha=1.0, cutmix_alpha=1.0, prob=0.0)
    assert float(lam) == 1.0 and np.array_equal(out, x)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixed_loss_is_the_cross_entropy_of_the_mixed_smoothed_targets(smoothing):
    logits = jax.random.normal(jax.random.key(0), (6, 10))
    labels = jnp.array([0, 3, 3, 9, 1, 4])
    lam = 0.3
    loss, _ = Classification(label_smoothing=smoothing).loss(logits, {"label": labels, "mix_lambda": lam})
    onehot = jax.nn.one_hot(labels, 10)
    targets = lam * onehot + (1 - lam) * onehot[::-1]
    targets = targets * (1 - smoothing) + smoothing / 10
    np.testing.assert_allclose(loss, optax.softmax_cross_entropy(logits, targets).mean(), rtol=1e-6)


# --- TrivialAugment: each op against PIL or arithmetic -----------------------------------------------------------

def _grey_images(n=3, size=12, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, (n, size, size, 1))
    base[:, 3:7, 2:9] = rng.integers(0, 256, (n, 4, 7, 1))  # some texture and a wider range
    return base.astype(np.uint8)


def _ours(images, name, level, sign=1.0):
    n = images.shape[0]
    out = augment.trivial_op(jnp.asarray(images, jnp.float32) / 255.0, jnp.full(n, OPS[name]),
                             jnp.full(n, level), jnp.full(n, sign))
    return np.asarray(out) * 255.0


@pytest.mark.parametrize("name, level, sign, pil", [
    ("brightness", 0.6, 1.0, lambda im, f: ImageEnhance.Brightness(im).enhance(f)),
    ("brightness", 0.6, -1.0, lambda im, f: ImageEnhance.Brightness(im).enhance(f)),
    ("contrast", 0.5, 1.0, lambda im, f: ImageEnhance.Contrast(im).enhance(f)),
    ("sharpness", 0.9, 1.0, lambda im, f: ImageEnhance.Sharpness(im).enhance(f)),
    ("sharpness", 0.9, -1.0, lambda im, f: ImageEnhance.Sharpness(im).enhance(f)),
    ("autocontrast", 0.0, 1.0, lambda im, f: ImageOps.autocontrast(im)),
    ("equalize", 0.0, 1.0, lambda im, f: ImageOps.equalize(im)),
    ("posterize", 5 / 6, 1.0, lambda im, f: ImageOps.posterize(im, 3)),  # 8 - round(6 * level) bits
    ("solarize", 3 / 30, 1.0, lambda im, f: ImageOps.solarize(im, 229.5)),  # threshold 255 * (1 - level)
])
def test_colour_ops_match_pil(name, level, sign, pil):
    images = _grey_images()
    factor = 1.0 + 0.99 * level * sign
    want = np.stack([np.asarray(pil(Image.fromarray(im[..., 0], "L"), factor), np.float64)[..., None]
                     for im in images])
    got = _ours(images, name, level, sign)
    # PIL rounds its blends (and Contrast its mean) to 8 bits: within 1.5 levels; the integer ops are exact
    atol = 1e-3 if name in ("equalize", "posterize", "solarize") else 1.5
    np.testing.assert_allclose(got, want, atol=atol)


def test_colour_op_on_rgb_matches_pil():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 10, 10, 3)).astype(np.uint8)
    want = np.stack([np.asarray(ImageEnhance.Color(Image.fromarray(im, "RGB")).enhance(1.0 + 0.99 * 0.7),
                                np.float64) for im in images])
    np.testing.assert_allclose(_ours(images, "color", 0.7), want, atol=1.5)


def test_geometric_ops_move_pixels_as_their_arithmetic_says():
    images = _grey_images(size=12).astype(np.float64)
    np.testing.assert_allclose(_ours(images, "identity", 0.8), images, atol=1e-3)
    # translate_x at level 0.25: 0.25 of the width, 3 pixels right (sign +1 moves content right), zeros fill
    want = np.zeros_like(images)
    want[:, :, 3:] = images[:, :, :-3]
    np.testing.assert_allclose(_ours(images, "translate_x", 0.25), want, atol=1e-3)
    want = np.zeros_like(images)
    want[:, 3:] = images[:, :-3]
    np.testing.assert_allclose(_ours(images, "translate_y", 0.25), want, atol=1e-3)
    # rotate at level 2/3 of 135 degrees = 90 degrees about the centre: np.rot90's quarter turn
    np.testing.assert_allclose(_ours(images, "rotate", 2 / 3), np.rot90(images, 1, axes=(1, 2)), atol=1e-3)
    # shear_x of 1 (level 1/0.99): row y is shifted right by y pixels
    want = np.zeros_like(images)
    for y in range(12):
        want[:, y, y:] = images[:, y, :12 - y]
    np.testing.assert_allclose(_ours(images, "shear_x", 1 / 0.99), want, atol=1e-3)


def test_trivial_augment_draws_every_op_and_is_a_pure_function_of_its_key():
    images = jnp.asarray(_grey_images(n=64), jnp.float32) / 255.0
    a = augment.trivial_augment(jax.random.key(0), images)
    b = augment.trivial_augment(jax.random.key(0), images)
    assert np.array_equal(a, b) and a.shape == images.shape
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    changed = np.asarray(jnp.any(a != images, axis=(1, 2, 3))).mean()
    assert 0.5 < changed < 1.0  # most ops change an image; identity (and some weak draws) leave it


# --- the engine: all switches at once, every parallel mode, resumed bit-identical --------------------------------

RECIPE = dict(ema_decay=0.9, label_smoothing=0.1, mixup_alpha=0.2, cutmix_alpha=1.0, augment="trivial",
              grad_accum_steps=2, batch_size=16, num_steps=6, eval_every=0, checkpoint_every=3, log_every=2,
              **{"optimizer.schedule": "onecycle", "optimizer.warmup_steps": 2})


@pytest.mark.parametrize("parallel", ["none", "pmap", "mesh"])
def test_recipe_resumes_bit_identical(tmp_path, parallel):
    c = tiny_config(parallel=parallel, **RECIPE)
    full = train_and_evaluate(c, str(tmp_path / "full"))
    part = str(tmp_path / "part")
    # stopped after 5 steps: it resumes from the checkpoint of step 3, half-way through an accumulated update
    train_and_evaluate(c, part, stop_after_steps=5)
    resumed = train_and_evaluate(c, part)
    arrays = full["state"].arrays()
    assert "ema" in arrays and not _equal_trees(arrays["ema"]["params"], arrays["params"])
    assert _equal_trees(arrays, resumed["state"].arrays())
    assert _metrics(part) == _metrics(str(tmp_path / "full"))
    assert math.isfinite(full["eval_accuracy"])


# --- the speedrun's record ---------------------------------------------------------------------------------------

def _speedrun_module():
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "speedrun.py")
    spec = importlib.util.spec_from_file_location("speedrun_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speedrun_record_holds_the_issue_fields(tmp_path):
    sr = _speedrun_module()
    config = sr.load_config()
    assert config.eval_split == "test" and config.train_split == "train"  # scored on the test split, once
    per_seed = {}
    for seed, (acc, t) in {0: (0.94, 500.0), 1: (0.945, 520.0), 2: (0.935, 510.0)}.items():
        metrics = [{"step": 100, "train_loss": 1.0, "wall_time_sec": 50.0},
                   {"step": 750, "eval_accuracy": 0.9, "wall_time_sec": 60.0},
                   {"step": 6000, "eval_accuracy": acc, "wall_time_sec": t}]
        per_seed[seed] = sr.seed_record(metrics)
    run = sr.summarize(per_seed, config, provenance={"jaxcnn": "x"})
    assert run["selected_on"] == "validation" and run["seeds"] == [0, 1, 2] and run["provenance"] == {"jaxcnn": "x"}
    # mean 0.94; sample std of (0, +0.005, -0.005) = sqrt((0.005^2 * 2) / 2) = 0.005
    assert run["test_accuracy_mean"] == pytest.approx(0.94) and run["test_accuracy_std"] == pytest.approx(0.005)
    assert run["train_wall_time_s_max"] == 520.0 and run["target_met"] is True
    assert run["curves"]["1"] == [[60.0, 0.9, 750], [520.0, 0.945, 6000]]
    sr.plot(run, str(tmp_path / "curve.png"))
    assert open(tmp_path / "curve.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="holds no evaluation; it did not finish"):
        sr.seed_record([{"step": 10, "train_loss": 1.0, "wall_time_sec": 1.0}])


def test_warmup_fraction_scales_with_num_steps_and_excludes_warmup_steps():
    opt = tiny_config(**{"optimizer.schedule": "onecycle", "optimizer.warmup_steps": 0,
                         "optimizer.warmup_fraction": 0.25, "optimizer.learning_rate": 0.1}).optimizer
    for n in (8, 400):  # the peak at a quarter of the run, whatever its length
        assert float(make_schedule(opt, n)(n // 4)) == pytest.approx(0.1, rel=1e-5)
    assert math.isfinite(float(make_schedule(opt, 1)(0)))  # a one-step smoke run of such a config still runs
    with pytest.raises(ValueError, match=r"warmup_fraction=0.25 and warmup_steps=2 both set the warm-up; "
                                         r"set --config.optimizer.warmup_steps=0"):
        validate_config(tiny_config(**{"optimizer.warmup_fraction": 0.25}))
    with pytest.raises(ValueError, match=r"warmup_fraction must be in \[0, 1\)"):
        validate_config(tiny_config(**{"optimizer.warmup_fraction": 1.0, "optimizer.warmup_steps": 0}))
