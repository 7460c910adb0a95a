"""The benchmark's twins are the same networks as jaxcnn's models.

scripts/bench.py times each benchmarked model three ways (jaxcnn, a plain Flax
twin, a PyTorch twin); a ratio means something only if the three are one
network. Checked here: parameter counts (jaxcnn.count_params, torchvision's
convention) and output shapes for every benchmarked model at its benchmark
size, built abstractly (jax.eval_shape; torch's meta device); for the small
models the Flax twin's outputs on jaxcnn's own variables; and for every model
but LeNet-5 the PyTorch twin's outputs with jaxcnn's variables copied in.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcnn
from benchmarks.steps import QUICK_CASES, TRAIN_CASES
from benchmarks.twins_flax import C3_TABLE, flax_twin

CASES = {c.model: c for c in TRAIN_CASES}

def _basic(cin, c):
    """A basic block: two bias-free 3x3 convolutions and two BatchNorms (scale, bias); option A
    shortcuts have no parameters."""
    return 9 * cin * c + 9 * c * c + 2 * 2 * c


def _densenet_bc(blocks=(16, 16, 16), k=12, classes=10):
    """DenseNet-BC on CIFAR (Huang et al. 2017): a 3x3 stem of 2k maps; each layer on c maps has BN (2c),
    a 1x1 conv to 4k (4k c), BN (2 * 4k) and a 3x3 conv to k (9 * 4k * k); a transition on c maps BN (2c)
    and a 1x1 conv to c // 2; then BN and the classifier. DenseNet-BC-100 k=12: 0.8M in the paper's Table 2."""
    c, total = 2 * k, 27 * 2 * k
    for i, n in enumerate(blocks):
        for _ in range(n):
            total += 2 * c + 4 * k * c + 2 * 4 * k + 9 * 4 * k * k
            c += k
        if i < len(blocks) - 1:
            total += 2 * c + c * (c // 2)
            c //= 2
    return total + 2 * c + c * classes + classes


# Parameter counts by arithmetic (weights + biases; BatchNorm: scale + bias).
VGG11_64 = (  # Simonyan & Zisserman 2015, Table 1 config A, at 64x64 with 10 classes: fc6 sees 2x2x512
    (3 * 9 + 1) * 64 + (64 * 9 + 1) * 128 + (128 * 9 + 1) * 256 + (256 * 9 + 1) * 256
    + (256 * 9 + 1) * 512 + 3 * ((512 * 9 + 1) * 512)
    + (2 * 2 * 512 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 10)
EXPECTED = {
    "lenet5": 60_000,  # LeCun et al. 1998, section II.B: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164
    "keras_cifar_cnn": 896 + 18_496 + 36_928 + 65_600 + 650,  # 122,570 (TensorFlow CIFAR-10 tutorial)
    # He et al. 2015 section 4.2, n = 3: 269,722.
    "resnet20": 27 * 16 + 2 * 16 + 3 * _basic(16, 16) + _basic(16, 32) + 2 * _basic(32, 32)
                + _basic(32, 64) + 2 * _basic(64, 64) + 64 * 10 + 10,
    "vgg11": VGG11_64,
    "resnet50": 25_557_032,  # torchvision's resnet50 (He et al. 2015, table 1, 50-layer)
    "resnet18": 11_689_512,  # torchvision's resnet18 (He et al. 2015, table 1, 18-layer); global pool, so any size
    "densenet_bc_100_12": _densenet_bc(),
    # Krizhevsky et al. 2012 with its two towers (groups 2 in conv2, conv4, conv5): conv1 34,944, conv2 307,456,
    # conv3 885,120, conv4 663,936, conv5 442,624, fc6 37,752,832, fc7 16,781,312, fc8 4,097,000.
    "alexnet": 34_944 + 307_456 + 885_120 + 663_936 + 442_624 + 37_752_832 + 16_781_312 + 4_097_000,
}


def _abstract(case, module):
    x = jax.ShapeDtypeStruct((2,) + tuple(case.input_shape), jnp.float32)
    variables = jax.eval_shape(lambda x: module.init(jax.random.key(0), x), x)
    out = jax.eval_shape(
        lambda v, x: module.apply(v, x, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"])[0],
        variables, x)
    return variables, out


def _model(case):
    return jaxcnn.create_model(case.model, **case.overrides)


@pytest.mark.parametrize("name", list(CASES))
def test_flax_twin_same_parameter_count_and_output_shape(name):
    case = CASES[name]
    model = _model(case)
    ref_vars, ref_out = _abstract(case, model)
    twin_vars, twin_out = _abstract(case, flax_twin(name, model))
    assert jaxcnn.count_params(ref_vars) == EXPECTED[name]
    assert jaxcnn.count_params(twin_vars) == jaxcnn.count_params(ref_vars)
    assert twin_out.shape == ref_out.shape == (2, model.num_classes)
    shapes = lambda tree: jax.tree_util.tree_map(lambda a: a.shape, tree)
    assert shapes(twin_vars.get("batch_stats", {})) == shapes(ref_vars.get("batch_stats", {}))
    if name != "lenet5":  # the same submodule names: the same tree, leaf for leaf
        assert shapes(twin_vars["params"]) == shapes(ref_vars["params"])


@pytest.mark.parametrize("name", list(CASES))
def test_torch_twin_same_parameter_count_and_output_shape(name):
    torch = pytest.importorskip("torch")
    from benchmarks.twins_torch import count_params, torch_twin

    case = CASES[name]
    model = _model(case)
    h, w, c = case.input_shape
    with torch.device("meta"):  # shapes only: nothing allocated
        twin = torch_twin(name, model)
        out = twin(torch.empty((2, c, h, w)))
    assert count_params(twin) == EXPECTED[name]
    assert tuple(out.shape) == (2, model.num_classes)
    bn_stats = sum(b.numel() for n, b in twin.named_buffers() if n.endswith(("running_mean", "running_var")))
    ref_vars, _ = _abstract(case, model)
    assert bn_stats == jaxcnn.count_params({"params": ref_vars.get("batch_stats", {})})


def _lenet_twin_params(params):
    """jaxcnn's LeNet-5 params in the twin's layout: C3's runs kernel_k[:, :, f, m] (input
    runs[k].maps[m][f] -> output first + m) become one (5, 5, 60) kernel in Table I order."""
    from jaxcnn.layers import PartialConv

    c3 = params["C3"]
    flat = {}
    for k, (first, maps) in enumerate(PartialConv(C3_TABLE).runs()):
        for m, inputs in enumerate(maps):
            for f in range(len(inputs)):
                flat[(first + m, f)] = c3[f"kernel_{k}"][:, :, f, m]
    order = [(j, f) for j, ins in enumerate(C3_TABLE) for f in range(len(ins))]
    out = dict(params)
    out["C3"] = {"kernel": jnp.stack([flat[o] for o in order], axis=-1), "bias": c3["bias"]}
    return out


def _random_variables(case, model, seed=0):
    """Variables of `model` filled with random values (faster than compiling its initialisers)."""
    from jaxcnn.layers import rbf_prototypes

    abstract = jax.eval_shape(lambda x: model.init(jax.random.key(0), x),
                              jax.ShapeDtypeStruct((1,) + tuple(case.input_shape), jnp.float32))
    rng = np.random.default_rng(seed)

    def fill(a):  # vectors (biases, BatchNorm) in [0.5, 1.5]; kernels at LeCun's scale, so nothing saturates
        if a.ndim == 1:
            return jnp.asarray(rng.uniform(0.5, 1.5, a.shape), a.dtype)
        return jnp.asarray(rng.standard_normal(a.shape) / np.sqrt(np.prod(a.shape[:-1])), a.dtype)

    variables = {k: jax.tree_util.tree_map(fill, v) for k, v in abstract.items() if k != "constants"}
    if "constants" in abstract:  # LeNet-5's fixed RBF prototypes
        variables["constants"] = {"output": {"prototypes": jnp.asarray(rbf_prototypes(model.num_classes, 84))}}
    return variables


@pytest.mark.parametrize("name", ["lenet5", "keras_cifar_cnn", "resnet20"])
def test_flax_twin_computes_the_same_function(name, monkeypatch):
    """Training-mode forward on jaxcnn's own variables: the same logits and BatchNorm statistics."""
    # The twins call XLA's convolution; so does jaxcnn here, for the same operations in the same order
    # (its native CPU convolutions equal XLA's to rounding: tests/test_ops_native.py).
    from jaxcnn.ops import native

    for switch in native.SWITCHES.values():  # XLA's convolutions, BatchNorm and pooling, as the twins
        monkeypatch.setenv(switch, "0")
    case = next(c for c in QUICK_CASES if c.model == name)
    model = _model(case)
    x = jax.random.normal(jax.random.key(2), (4,) + tuple(case.input_shape))
    variables = _random_variables(case, model)
    ref, ref_upd = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    # LeNet-5's RBF prototypes (collection `constants`) are a constant inside the twin.
    twin_vars = {k: v for k, v in variables.items() if k != "constants"}
    if name == "lenet5":
        twin_vars["params"] = _lenet_twin_params(variables["params"])
    twin = flax_twin(name, model)
    out, upd = jax.jit(lambda v, x: twin.apply(v, x, train=True, mutable=["batch_stats"]))(twin_vars, x)
    assert out.shape == (4, model.num_classes)
    # The same operations in the same order: equal to a few float32 ulps (LeNet-5's RBF penalties are
    # ~200, and one swapped C3 connection moves them by ~3e-4, well above 8 ulps = 1.2e-4).
    ulps = lambda a: 8 * np.spacing(np.abs(np.asarray(a)).max())
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=0, atol=ulps(ref))
    assert jax.tree_util.tree_structure(upd) == jax.tree_util.tree_structure(ref_upd)
    for a, b in zip(jax.tree_util.tree_leaves(upd), jax.tree_util.tree_leaves(ref_upd)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=ulps(b))


def _subtree(tree, path):
    for part in path.split("/"):
        tree = tree[part]
    return tree


def _load_into_torch(torch, twin, model, variables, shape):
    """Copy jaxcnn's variables into the torch twin, layer by layer in the order each net calls its layers
    (jaxcnn's from its summary, the twin's from forward hooks): HWIO -> OIHW kernels, (in, out) -> (out, in)
    dense kernels, the first dense layer after a flattened map re-ordered from NHWC's (h, w, c) to NCHW's
    (c, h, w), BatchNorm scale/bias/mean/var -> weight/bias/running_mean/running_var."""
    paths = [r.name for r in jaxcnn.summary(model, shape).rows if r.params]
    kinds = (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d)
    called, hooks = [], [m.register_forward_hook(lambda m, i, o: called.append(m))
                         for m in twin.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        twin(torch.zeros((1, shape[2], shape[0], shape[1])))
    for h in hooks:
        h.remove()
    assert len(called) == len(set(map(id, called))) == len(paths), ([type(m).__name__ for m in called], paths)
    t = lambda a: torch.from_numpy(np.array(a, np.float32))  # noqa: E731  (a writable copy)
    channels = None
    with torch.no_grad():
        for m, path in zip(called, paths):
            p = _subtree(variables["params"], path)
            if isinstance(m, torch.nn.BatchNorm2d):
                assert set(p) == {"scale", "bias"}, path
                s = _subtree(variables["batch_stats"], path)
                m.weight.copy_(t(p["scale"])), m.bias.copy_(t(p["bias"]))
                m.running_mean.copy_(t(s["mean"])), m.running_var.copy_(t(s["var"]))
                continue
            k = np.asarray(p["kernel"])
            if isinstance(m, torch.nn.Conv2d):
                assert k.ndim == 4, path
                m.weight.copy_(t(k.transpose(3, 2, 0, 1)))
                channels = k.shape[-1]
            else:
                assert k.ndim == 2, path
                if channels and k.shape[0] != channels and k.shape[0] % channels == 0:  # after a flatten
                    side = int(round((k.shape[0] // channels) ** 0.5))
                    k = k.reshape(side, side, channels, -1).transpose(2, 0, 1, 3).reshape(k.shape)
                m.weight.copy_(t(k.T))
                channels = None
            if m.bias is not None:
                m.bias.copy_(t(p["bias"]))


# The torch twins at their benchmark sizes, except ResNet-50 and DenseNet-BC (global pooling: any size), checked
# smaller to keep the suite's time.
TORCH_VALUE_SIZES = {"resnet50": (64, 64, 3), "densenet_bc_100_12": (16, 16, 3)}


@pytest.mark.parametrize("name", [n for n in CASES if n != "lenet5"])
def test_torch_twin_computes_the_same_function(name):
    """Evaluation-mode forward with jaxcnn's own variables copied in: the same logits to float32 rounding over
    the depth of the net. (LeNet-5's twin, with its partial C3 and RBF output, is checked against the Flax twin
    above, which shares its layout.)"""
    torch = pytest.importorskip("torch")
    from benchmarks.twins_torch import torch_twin

    case = CASES[name]
    shape = TORCH_VALUE_SIZES.get(name, case.input_shape)
    model = _model(case)
    variables = _random_variables(case, model)
    x = np.asarray(jax.random.normal(jax.random.key(3), (2,) + tuple(shape)))
    ref = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, jnp.asarray(x)))
    twin = torch_twin(name, model).eval()
    _load_into_torch(torch, twin, model, variables, shape)
    with torch.no_grad():
        out = twin(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    # Different kernels summing in different orders: agreement to 1e-4 of the logits' scale; a swapped layer,
    # a missing ReLU or a pool in the wrong place moves them by far more.
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
