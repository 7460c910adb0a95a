"""GoogLeNet: table 1 of Szegedy et al. 2014, the auxiliary classifiers and
the 1x1-reduction ablation."""

import chex
import jax
import jax.numpy as jnp
import pytest

import jaxcnn
from jaxcnn.models import create_model
from jaxcnn.models.googlenet import GoogLeNet

# Szegedy et al. 2014, table 1: (in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
TABLE1 = [
    (192, 64, 96, 128, 16, 32, 32),     # 3a
    (256, 128, 128, 192, 32, 96, 64),   # 3b
    (480, 192, 96, 208, 16, 48, 64),    # 4a
    (512, 160, 112, 224, 24, 64, 64),   # 4b
    (512, 128, 128, 256, 24, 64, 64),   # 4c
    (512, 112, 144, 288, 32, 64, 64),   # 4d
    (528, 256, 160, 320, 32, 128, 128),  # 4e
    (832, 256, 160, 320, 32, 128, 128),  # 5a
    (832, 384, 192, 384, 48, 128, 128),  # 5b
]


def conv(k, cin, cout):  # weights + biases (the published GoogLeNet has biases, no BN)
    return k * k * cin * cout + cout


def table1_count(aux=True, bottleneck=True, classes=1000):
    total = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192)   # 9,472 + 4,160 + 110,784
    for cin, c1, r3, c3, r5, c5, pp in TABLE1:
        total += conv(1, cin, c1) + conv(1, cin, pp)
        if bottleneck:
            total += conv(1, cin, r3) + conv(3, r3, c3) + conv(1, cin, r5) + conv(5, r5, c5)
        else:
            total += conv(3, cin, c3) + conv(5, cin, c5)
    total += 1024 * classes + classes
    if aux:  # after 4a (512 maps) and 4d (528): 1x1 conv 128, FC 4*4*128 -> 1024, FC 1024 -> classes
        for cin in (512, 528):
            total += conv(1, cin, 128) + 2048 * 1024 + 1024 + 1024 * classes + classes
    return total


def _variables(**overrides):
    model = jaxcnn.create_model("googlenet", **overrides)
    return model, jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 224, 224, 3)))


def test_counts_match_the_published_figures():
    # The Caffe bvlc_googlenet model as published: 6,998,552 parameters without
    # the auxiliary heads, 13,378,280 with them (each head: 65,664 or 67,712
    # for the 1x1 conv + 2,098,176 + 1,025,000 for the two FCs).
    assert table1_count(aux=False) == 6_998_552
    assert table1_count(aux=True) == 13_378_280
    assert jaxcnn.count_params(_variables()[1]) == 13_378_280
    assert jaxcnn.count_params(_variables(aux_logits=False)[1]) == 6_998_552


def test_bottleneck_false_removes_the_reductions():
    params = _variables(bottleneck=False)[1]["params"]
    assert "branch2_reduce" not in params["inception4a"]
    assert params["inception4a"]["branch3"]["kernel"].shape == (5, 5, 480, 48)
    assert jaxcnn.count_params(params) == table1_count(bottleneck=False)


def test_one_by_one_arithmetic_of_inception_4a():
    # The 5x5 branch of 4a: 14x14x480 in, 48 maps of 5x5 out (table 1).
    # Directly: 14*14*48 * 5*5*480 = 112,896,000 ~ 112.9M multiply-adds.
    # With the 16-map 1x1 reduction: 14*14*16*480 + 14*14*48*5*5*16
    #   = 1,505,280 + 3,763,200 = 5,268,480 ~ 5.3M.
    def macs(params):
        total = 0
        for name in ("branch3_reduce", "branch3"):
            if name in params:
                kh, kw, cin, cout = params[name]["kernel"].shape
                total += jaxcnn.ops.conv_macs(14, (kh, kw), cin, cout)
        return total

    _, with_red = _variables()
    _, without = _variables(bottleneck=False)
    assert macs(without["params"]["inception4a"]) == 112_896_000
    assert macs(with_red["params"]["inception4a"]) == 1_505_280 + 3_763_200 == 5_268_480
    # ... and 4a does see 14x14x480.
    model = GoogLeNet(aux_logits=False)
    _, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, capture_intermediates=lambda m, _: m.name == "inception4a",
                                 mutable=["intermediates"]),
        _variables(aux_logits=False)[1], jnp.zeros((1, 224, 224, 3)))
    assert state["intermediates"]["inception4a"]["__call__"][0].shape == (1, 14, 14, 512)


def test_aux_logits_sown_in_training_only():
    # Traced with eval_shape: the full 224x224 forward is too slow for a CPU test.
    model, variables = _variables()
    assert {"aux1", "aux2"} <= set(variables["params"])  # params exist though init ran with train=False
    x = jnp.zeros((2, 224, 224, 3))
    logits, state = jax.eval_shape(
        lambda v, x, key: model.apply(v, x, train=True, rngs={"dropout": key}, mutable=["intermediates"]),
        variables, x, jax.random.key(2))
    assert isinstance(logits, jax.ShapeDtypeStruct)  # the return value is the main logits alone
    assert logits.shape == (2, 1000)
    aux = state["intermediates"]["aux_logits"]
    assert [a.shape for a in aux] == [(2, 1000), (2, 1000)]
    # Evaluation: nothing sown, same return type.
    out, state = jax.eval_shape(lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, x)
    assert out.shape == (2, 1000)
    assert "aux_logits" not in state.get("intermediates", {})
    # aux_logits=False: no heads, nothing sown even in training.
    model, variables = _variables(aux_logits=False)
    assert not {"aux1", "aux2"} & set(variables["params"])
    _, state = jax.eval_shape(
        lambda v, x, key: model.apply(v, x, train=True, rngs={"dropout": key}, mutable=["intermediates"]),
        variables, x, jax.random.key(2))
    assert "aux_logits" not in state.get("intermediates", {})
    assert jaxcnn.create_model("googlenet").aux_weight == 0.3


def test_backward():
    # One Inception module computed for real; the whole network's gradient traced
    # with eval_shape (compiling all of GoogLeNet is too slow for a CPU test).
    from jaxcnn.models.googlenet import Inception
    block = Inception((4, 3, 5, 2, 3, 2))
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 8))
    v = jax.jit(block.init)(jax.random.key(0, impl="rbg"), x)
    y, grads = jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(block.apply({"params": p}, x) ** 2)))(v["params"], x)
    chex.assert_tree_all_finite(grads)
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree_util.tree_leaves(grads))
    chex.assert_shape(block.apply(v, x), (2, 6, 6, 4 + 5 + 3 + 2))

    model = jaxcnn.create_model("googlenet")
    _, variables = _variables()

    def loss(params, x, key):
        logits, state = model.apply({"params": params}, x, train=True, rngs={"dropout": key},
                                    mutable=["intermediates"])
        aux = state["intermediates"]["aux_logits"]
        ce = lambda z: jnp.mean(jax.nn.logsumexp(z, axis=-1) - z[:, 0])
        return ce(logits) + model.aux_weight * sum(ce(a) for a in aux)

    grads = jax.eval_shape(jax.grad(loss), variables["params"], jnp.zeros((2, 224, 224, 3)), jax.random.key(0))
    chex.assert_trees_all_equal_shapes(grads, variables["params"])


def test_wrong_inputs_are_refused():
    model = jaxcnn.create_model("googlenet")
    with pytest.raises(ValueError, match="224x224"):
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    with pytest.raises(ValueError, match="channel"):
        jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 224, 224, 1)))
    with pytest.raises(ValueError, match="conv_mode"):
        jax.eval_shape(jaxcnn.create_model("googlenet", conv_mode="flip").init, jax.random.key(0),
                       jnp.zeros((1, 224, 224, 3)))


def test_private_lrn_matches_the_ops_formula():
    from jaxcnn.models.googlenet import _lrn
    x = jax.random.normal(jax.random.key(0), (1, 3, 3, 7))
    chex.assert_trees_all_close(_lrn(x), jaxcnn.ops.local_response_norm(x, size=5, k=1.0, alpha=1e-4 / 5, beta=0.75),
                                rtol=1e-6)


def test_width_scales_every_channel_count():
    # width 0.5: every filter count of Table 1 halves, so a 1x1 conv's weights drop 4x; the stem's first
    # 7x7x3 conv has 7*7*3*32 + 32 parameters.
    model = create_model("googlenet", width=0.5, aux_logits=False, num_classes=10)
    s = jaxcnn.summary(model, (32, 32, 3))
    rows = {r.name: r.params for r in s.rows}
    assert rows["conv1"] == 7 * 7 * 3 * 32 + 32
    assert rows["inception3a/branch1"] == 96 * 32 + 32  # 192/2 = 96 maps in, 64/2 = 32 out
    with pytest.raises(ValueError, match="GoogLeNet width must be a number in"):
        jaxcnn.summary(create_model("googlenet", width=0.0, aux_logits=False), (32, 32, 3))
