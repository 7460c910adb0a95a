"""ResNet family: published parameter counts, shapes, forward/backward, the
skip=False (plain network) ablation, shortcut options and synchronised BatchNorm."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn
from jaxcnn.models.resnet import ResidualBlock, ResNet


def _count(name, **overrides):
    model = jaxcnn.create_model(name, **overrides)
    shape = jaxcnn.default_input_shape(name)
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *shape)))
    return jaxcnn.count_params(variables)


# torchvision.models.resnet*: the documented "num_params" of the IMAGENET1K_V1 weights.
@pytest.mark.parametrize("name, expected", [
    ("resnet18", 11_689_512),
    ("resnet34", 21_797_672),
    ("resnet50", 25_557_032),
    ("resnet101", 44_549_160),
    ("resnet152", 60_192_808),
])
def test_imagenet_counts_match_torchvision(name, expected):
    assert _count(name) == expected


def _cifar_resnet_count(n, classes=10):
    """He et al. 2015, section 4.2: 3x3 conv (3->16) + BN, then 3 stages of n
    basic blocks (two 3x3 conv + BN each) at 16, 32, 64 maps, option A
    shortcuts (no parameters), global average pool, FC 64->classes.
    A 3x3 conv cin->cout without bias has 9*cin*cout weights; BN has 2*cout."""
    conv_bn = lambda cin, cout: 9 * cin * cout + 2 * cout
    total = conv_bn(3, 16)                      # 432 + 32
    cin = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += conv_bn(cin, width) + conv_bn(width, width)
            cin = width
    return total + 64 * classes + classes       # fc: 650


def test_cifar_arithmetic_matches_the_published_figures():
    # The arithmetic above reproduces the figures quoted for the CIFAR ResNets
    # (He et al. 2015, table 6 gives 0.27M, 0.46M, 0.66M, 0.85M, 1.7M).
    # Worked for resnet20 (n=3): stem 464; stage1 3*(2304+32)*2 = 14,016;
    # stage2 (4608+64)+(9216+64) + 2*2*(9216+64) = 51,072;
    # stage3 (18432+128)+(36864+128) + 2*2*(36864+128) = 203,520; fc 650
    # -> 464 + 14,016 + 51,072 + 203,520 + 650 = 269,722.
    assert _cifar_resnet_count(3) == 269_722
    assert _cifar_resnet_count(18) == 1_727_962


@pytest.mark.parametrize("name, n, expected", [
    ("resnet20", 3, 269_722),
    ("resnet32", 5, 464_154),
    ("resnet44", 7, 658_586),
    ("resnet56", 9, 853_018),
    ("resnet110", 18, 1_727_962),
])
def test_cifar_counts(name, n, expected):
    assert _cifar_resnet_count(n) == expected
    assert _count(name) == expected


def _wrn_count(depth, k, classes=10):
    """Zagoruyko & Komodakis 2016, table 1: conv 3x3 3->16, then 3 stages of
    (depth-4)/6 pre-activation basic blocks at 16k, 32k, 64k maps; each block
    BN(cin) + 3x3 conv cin->w + BN(w) + 3x3 conv w->w, plus a 1x1 projection
    cin->w where cin != w; a final BN(64k), FC 64k->classes. No conv biases."""
    n = (depth - 4) // 6
    total, cin = 9 * 3 * 16, 16
    for width in (16 * k, 32 * k, 64 * k):
        for _ in range(n):
            total += 2 * cin + 9 * cin * width + 2 * width + 9 * width * width
            if cin != width:
                total += cin * width
            cin = width
    return total + 2 * cin + cin * classes + classes


def test_wide_resnet_counts():
    # WRN-28-10 on CIFAR-10: 36,479,194 (the authors' reference implementation;
    # the paper's table rounds it to 36.5M).
    assert _wrn_count(28, 10) == 36_479_194
    assert _count("wrn28_10") == 36_479_194
    # WRN-16-4 (the paper's 2.7M), worked out:
    # stem 432
    # stage 1 (64):  32 + 9216 + 128 + 36864 + 1024   + (128 + 36864 + 128 + 36864)      = 121,248
    # stage 2 (128): 128 + 73728 + 256 + 147456 + 8192 + (256 + 147456 + 256 + 147456)  = 525,184
    # stage 3 (256): 256 + 294912 + 512 + 589824 + 32768 + (512 + 589824 + 512 + 589824) = 2,098,944
    # final BN 512, FC 2570 -> 432 + 121,248 + 525,184 + 2,098,944 + 512 + 2,570 = 2,748,890
    assert 432 + 121_248 + 525_184 + 2_098_944 + 512 + 2_570 == 2_748_890
    assert _wrn_count(16, 4) == 2_748_890
    assert _count("wrn16_4") == 2_748_890


def test_preact_count():
    # He et al. 2016 pre-activation ResNet-110: the same 1.7M. Relative to
    # resnet110 the stem BN (32) goes, each block's first BN sees its input
    # channels (16 instead of 32 in stage 2's first block: -32; 32 instead of
    # 64 in stage 3's: -64) and a final BN(64) is added (+128): net 0.
    assert _count("preact_resnet110") == 1_727_962 - 32 - 32 - 64 + 128


def test_shortcut_b_adds_projections_and_skip_false_removes_them():
    # resnet20 with option B: projections 16->32 and 32->64 (1x1 conv + BN):
    # 512 + 64 + 2048 + 128 = 2,752 more than option A.
    assert _count("resnet20", shortcut="B") == 269_722 + 2_752
    assert _count("resnet20", shortcut="B", skip=False) == 269_722
    # resnet18 with skip=False: torchvision's three downsample paths
    # (64->128, 128->256, 256->512, 1x1 conv + BN) removed.
    down = (64 * 128 + 256) + (128 * 256 + 512) + (256 * 512 + 1024)
    assert _count("resnet18", skip=False) == 11_689_512 - down


def test_registry_names():
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet20", "resnet32",
                 "resnet44", "resnet56", "resnet110", "preact_resnet110", "wrn16_4", "wrn28_10"):
        assert name in jaxcnn.list_models()
        assert isinstance(jaxcnn.create_model(name), ResNet)
    assert jaxcnn.default_input_shape("resnet50") == (224, 224, 3)
    assert jaxcnn.default_input_shape("resnet20") == (32, 32, 3)


def test_torchvision_submodule_names():
    v = jax.eval_shape(jaxcnn.create_model("resnet50").init, jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
    p = v["params"]
    assert {"conv1", "bn1", "fc"} <= set(p)
    assert {k for k in p if k.startswith("layer")} == {
        f"layer{s}_{b}" for s, n in zip(range(1, 5), (3, 4, 6, 3)) for b in range(n)}
    assert set(p["layer1_0"]) == {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "downsample"}
    assert set(p["layer1_0"]["downsample"]) == {"conv", "bn"}
    # torchvision layer2.0.conv2.weight is (128, 128, 3, 3) OIHW; here HWIO, stride on the 3x3.
    assert p["layer2_0"]["conv2"]["kernel"].shape == (3, 3, 128, 128)
    assert p["fc"]["kernel"].shape == (2048, 1000)


@pytest.mark.parametrize("overrides", [{}, {"preact": True}])
def test_resnet20_forward_backward(overrides):
    model = jaxcnn.create_model("resnet20", **overrides)
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    variables = jax.jit(model.init)(jax.random.key(0, impl="rbg"), x)
    labels = jnp.array([3, 7])

    def loss(params):
        logits, updates = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                                      train=True, mutable=["batch_stats"])
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels]), (logits, updates)

    (value, (logits, updates)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
    chex.assert_shape(logits, (2, 10))
    chex.assert_tree_all_finite((value, grads))
    chex.assert_trees_all_equal_shapes(grads, variables["params"])
    assert float(jnp.abs(grads["conv1"]["kernel"]).sum()) > 0
    # Running statistics moved (momentum 0.9 from mean 0).
    bs = updates["batch_stats"]
    first_bn = "bn1" if not overrides else "bn_final"
    assert float(jnp.abs(bs[first_bn]["mean"]).sum()) > 0
    # Eval mode uses running statistics and is deterministic.
    out = model.apply(variables, x)
    chex.assert_shape(out, (2, 10))


def test_wrn_and_imagenet_shapes_by_eval_shape():
    for name in ("wrn16_4", "resnet50"):
        model = jaxcnn.create_model(name)
        shape = jaxcnn.default_input_shape(name)
        v = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, *shape)))
        out = jax.eval_shape(model.apply, v, jnp.zeros((2, *shape)))
        assert out.shape == (2, model.num_classes)


def _zero_last_conv(params):
    """Zero the kernel of every block's last convolution: the residual branch then outputs 0."""
    params = jax.tree_util.tree_map(lambda a: a, params)
    for name, blk in params.items():
        if name.startswith("layer"):
            last = max(k for k in blk if k.startswith("conv"))
            blk[last]["kernel"] = jnp.zeros_like(blk[last]["kernel"])
    return params


@pytest.mark.parametrize("preact", [False, True])
def test_skip_false_removes_every_identity_path(preact):
    # With every residual branch silenced, the output can depend on the input
    # only through shortcuts. skip=True: it does. skip=False: nothing reaches
    # the classifier, so the logits are the FC bias for every input.
    x1 = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
    x2 = x1 + jax.random.normal(jax.random.key(2), x1.shape)
    for skip in (True, False):
        model = ResNet(stage_sizes=(2, 1), stem="cifar", base_width=4, shortcut="A", preact=preact,
                       skip=skip, num_classes=5)
        v = jax.jit(model.init)(jax.random.key(0, impl="rbg"), x1)
        v = {**v, "params": _zero_last_conv(dict(v["params"]))}
        apply = jax.jit(model.apply)
        y1, y2 = apply(v, x1), apply(v, x2)
        if skip:
            assert float(jnp.max(jnp.abs(y1 - y2))) > 1e-3
        else:
            chex.assert_trees_all_close(y1, y2, atol=0)
            chex.assert_trees_all_close(y1, jnp.broadcast_to(v["params"]["fc"]["bias"], y1.shape), atol=1e-6)


def test_preact_block_output_is_branch_plus_identity():
    # A pre-activation block computes F(x) + x; with skip=False it is F(x)
    # alone, so the two differ by exactly the block's input.
    x = jax.random.normal(jax.random.key(3), (2, 8, 8, 6))
    with_skip = ResidualBlock(6, preact=True, skip=True)
    without = ResidualBlock(6, preact=True, skip=False)
    v = jax.jit(with_skip.init)(jax.random.key(0, impl="rbg"), x)
    chex.assert_trees_all_close(with_skip.apply(v, x) - without.apply(v, x), x, atol=1e-5)
    # ... and the plain block's output moves with its input only through F.
    dx = 0.1 * jax.random.normal(jax.random.key(4), x.shape)
    jac = lambda m: m.apply(v, x + dx) - m.apply(v, x)
    chex.assert_trees_all_close(jac(with_skip) - jac(without), dx, atol=1e-5)


def test_bottleneck_imagenet_stem_conv_mode_backward():
    # Bottleneck blocks behind the 7x7/2 stem and 3x3/2 max-pool, true convolution,
    # differentiated under jit on a small image.
    model = ResNet(stage_sizes=(1, 1), block="bottleneck", base_width=4, shortcut="B", num_classes=3,
                   conv_mode="convolution")
    x = jax.random.normal(jax.random.key(1), (1, 32, 32, 3))
    v = jax.jit(model.init)(jax.random.key(0, impl="rbg"), x)
    # Bottleneck 1x1 -> 3x3 -> 1x1 expanding 4x: layer1_0 outputs 16 maps.
    assert v["params"]["layer1_0"]["conv3"]["kernel"].shape == (1, 1, 4, 16)
    value, grads = jax.jit(jax.value_and_grad(
        lambda p: jnp.sum(model.apply({**v, "params": p}, x, train=True, mutable=["batch_stats"])[0] ** 2)))(
        v["params"])
    chex.assert_tree_all_finite((value, grads))
    assert float(jnp.abs(grads["conv1"]["kernel"]).sum()) > 0


def test_bad_values_are_refused():
    x = jnp.zeros((1, 32, 32, 3))
    with pytest.raises(ValueError, match="shortcut"):
        jaxcnn.create_model("resnet20", shortcut="D").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="block"):
        jaxcnn.create_model("resnet20", block="wide").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="stem"):
        jaxcnn.create_model("resnet20", stem="tiny").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="rank 4"):
        jaxcnn.create_model("resnet20").init(jax.random.key(0), jnp.zeros((32, 32, 3)))


def test_bn_axis_name_gives_global_batch_statistics_under_pmap():
    # Two simulated devices, two images each. With bn_axis_name the batch
    # statistics (hence the outputs and the updated running statistics) are
    # those of the whole global batch of four.
    n_dev = 2
    assert jax.local_device_count() >= n_dev
    x = jax.random.normal(jax.random.key(5), (n_dev * 2, 8, 8, 3)) * jnp.arange(1, 5)[:, None, None, None]
    kw = dict(stage_sizes=(1, 1), stem="cifar", base_width=4, shortcut="A", num_classes=3)
    ref_model = ResNet(**kw)
    v = jax.jit(ref_model.init)(jax.random.key(0, impl="rbg"), x)
    ref_out, ref_upd = ref_model.apply(v, x, train=True, mutable=["batch_stats"])

    sync = ResNet(**kw, bn_axis_name="batch")
    rep = jax.tree_util.tree_map(lambda a: jnp.stack([a] * n_dev), v)
    out, upd = jax.pmap(lambda v, x: sync.apply(v, x, train=True, mutable=["batch_stats"]), axis_name="batch")(
        rep, x.reshape(n_dev, 2, *x.shape[1:]))
    chex.assert_trees_all_close(out.reshape(ref_out.shape), ref_out, atol=1e-5, rtol=1e-5)
    for d in range(n_dev):
        chex.assert_trees_all_close(jax.tree_util.tree_map(lambda a: a[d], upd), ref_upd, atol=1e-5, rtol=1e-5)

    # Without it each device normalises with its own half: different statistics.
    _, local = jax.pmap(lambda v, x: ref_model.apply(v, x, train=True, mutable=["batch_stats"]))(
        rep, x.reshape(n_dev, 2, *x.shape[1:]))
    diff = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a[0] - b))), local, ref_upd)
    assert max(jax.tree_util.tree_leaves(diff)) > 1e-3
    assert np.isfinite(max(jax.tree_util.tree_leaves(diff)))

