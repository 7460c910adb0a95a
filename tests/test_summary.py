"""jaxcnn.summary: the layer table, its totals and its multiply-adds."""

import flax.linen as nn
import pytest

import jaxcnn
from jaxcnn import ops
from jaxcnn.layers import Conv


def test_keras_cifar_cnn_reproduces_the_seed_table_row_for_row():
    # The TensorFlow CIFAR-10 tutorial's model.summary(), as printed in the study notes (seed 004):
    seed_table = [
        ("Conv", (30, 30, 32), 896),       # 32 x (27 + 1)
        ("MaxPool", (15, 15, 32), 0),
        ("Conv", (13, 13, 64), 18_496),    # (9 x 32 + 1) x 64
        ("MaxPool", (6, 6, 64), 0),
        ("Conv", (4, 4, 64), 36_928),      # (9 x 64 + 1) x 64
        ("Flatten", (1024,), 0),
        ("Dense", (64,), 65_600),          # (1024 + 1) x 64
        ("Dense", (10,), 650),             # (64 + 1) x 10
    ]
    s = jaxcnn.summary("keras_cifar_cnn")
    assert [(r.layer_type, r.output_shape, r.params) for r in s.rows] == seed_table
    assert [r.name for r in s.rows] == ["conv1", "pool1", "conv2", "pool2", "conv3", "flatten", "fc1", "fc2"]
    assert s.total_params == s.trainable_params == 122_570
    assert s.non_trainable_params == 0
    text = str(s)
    for line in ("conv1 (Conv)", "(None, 30, 30, 32)", "896", "(None, 1024)", "65,600",
                 "Total params: 122,570", "Trainable params: 122,570", "Non-trainable params: 0"):
        assert line in text
    assert text.index("conv1 (Conv)") < text.index("pool1 (MaxPool)") < text.index("fc2 (Dense)")


def test_multiply_adds_of_keras_cifar_cnn():
    # OH*OW*C_out * KH*KW*C_in per convolution, in*out per dense layer.
    expected = [30 * 30 * 32 * 27, 0, 13 * 13 * 64 * 288, 0, 4 * 4 * 64 * 576, 0, 1024 * 64, 64 * 10]
    s = jaxcnn.summary("keras_cifar_cnn")
    assert [r.macs for r in s.rows] == expected
    assert s.total_macs == sum(expected) == 4_548_608
    assert "Multiply-adds per image: 4,548,608" in str(s)


# torchvision's weights' meta "_ops" (torchvision/models/*.py, e.g. ResNet50_Weights.IMAGENET1K_V1): the
# multiply-adds of the convolutions and linear layers per 224x224 image, in billions, to 3 decimals. An
# independent count of the same networks: summary's must round to it.
TORCHVISION_OPS = {"alexnet_owt": 0.714, "vgg11": 7.609, "vgg13": 11.308, "vgg16": 15.47, "vgg19": 19.632,
                   "resnet18": 1.814, "resnet50": 4.089, "resnet152": 11.514, "densenet121": 2.834}


@pytest.mark.parametrize("name", sorted(TORCHVISION_OPS))
def test_multiply_adds_match_torchvisions_published_ops(name):
    s = jaxcnn.summary(name, (224, 224, 3))
    assert round(s.total_macs / 1e9, 3) == TORCHVISION_OPS[name], s.total_macs


class Direct(nn.Module):
    """One k x k convolution to `filters` maps (size kept)."""
    filters: int
    kernel: int

    @nn.compact
    def __call__(self, x):
        return Conv(self.filters, self.kernel, padding="SAME", name=f"conv{self.kernel}x{self.kernel}")(x)


class Reduced(nn.Module):
    """The same convolution behind a 1x1 reduction to `reduce_to` maps (GoogLeNet's bottleneck)."""
    reduce_to: int
    filters: int
    kernel: int

    @nn.compact
    def __call__(self, x):
        x = Conv(self.reduce_to, 1, name="reduce1x1")(x)
        return Conv(self.filters, self.kernel, padding="SAME", name=f"conv{self.kernel}x{self.kernel}")(x)


def test_one_by_one_reduction_arithmetic_of_seed_001():
    # Seed 001 (GoogLeNet's 1x1 convolutions): 14x14x480 to 48 maps of 5x5 costs
    # 14*14*48 * 5*5*480 = 112,896,000 ~ 112.9M multiply-adds; reducing to 16 channels first costs
    # 14*14*16 * 480 + 14*14*48 * 5*5*16 = 1,505,280 + 3,763,200 = 5,268,480 ~ 5.3M.
    direct = jaxcnn.summary(Direct(48, 5), input_shape=(14, 14, 480))
    reduced = jaxcnn.summary(Reduced(16, 48, 5), input_shape=(14, 14, 480))
    assert direct.total_macs == 14 * 14 * 48 * 5 * 5 * 480 == 112_896_000
    assert [r.macs for r in reduced.rows] == [1_505_280, 3_763_200]
    assert reduced.total_macs == 5_268_480
    assert round(direct.total_macs / 1e6, 1) == 112.9 and round(reduced.total_macs / 1e6, 1) == 5.3
    assert direct.rows[0].output_shape == reduced.rows[-1].output_shape == (14, 14, 48)


def _weights(s):
    """Parameters less biases: the seed notes count kernels only (a bias per output map is in `params`)."""
    return s.trainable_params - sum(r.output_shape[-1] for r in s.rows if r.params)


def test_worked_parameter_examples_of_the_seed_notes():
    # Seed 000, the Inception bottleneck: a 3x3 convolution from 16 to 32 maps has (3*3*16)*32 = 4,608 weights;
    # through 5 maps of 1x1 first, (1*1*16*5) + (3*3*5*32) = 80 + 1,440 = 1,520. With biases, 4,640 and 1,557.
    direct, reduced = jaxcnn.summary(Direct(32, 3), (8, 8, 16)), jaxcnn.summary(Reduced(5, 32, 3), (8, 8, 16))
    assert (_weights(direct), _weights(reduced)) == (3 * 3 * 16 * 32, 1 * 1 * 16 * 5 + 3 * 3 * 5 * 32) == (4_608, 1_520)
    assert (direct.trainable_params, reduced.trainable_params) == (4_640, 1_557)
    # Seed 003: a 3x3 convolution from 128 to 64 maps, 3*3*128*64 = 73,728 weights (73,792 with biases).
    s = jaxcnn.summary(Direct(64, 3), (8, 8, 128))
    assert (_weights(s), s.trainable_params) == (73_728, 73_792)
    # Seed 000's question: Keras' Conv2D(32, 3, padding="same") has (3*3*C + 1) * 32 parameters, 896 on RGB and 320
    # on grey, and keeps the image's height and width ("same", stride 1).
    rgb, grey = jaxcnn.summary(Direct(32, 3), (28, 28, 3)), jaxcnn.summary(Direct(32, 3), (28, 28, 1))
    assert (rgb.trainable_params, grey.trainable_params) == ((27 + 1) * 32, (9 + 1) * 32) == (896, 320)
    assert rgb.rows[0].output_shape == (28, 28, 32)
    # Seed 001 (GoogLeNet's global average pooling): a fully connected head as 1,024 kernels of 7x7x1024 would
    # need 7*7*1024*1024 = 51,380,224 weights (about 51.4M; the notes round it to 51.3M), GAP none.
    assert ops.conv_macs(1, 7, 1024, 1024) == 7 * 7 * 1024 * 1024 == 51_380_224
    g = jaxcnn.summary("googlenet")
    gap = next(r for r in g.rows if r.layer_type == "GlobalAvgPool")
    assert gap.params == 0 and gap.output_shape == (1024,) and g.row("fc").params == 1024 * 1000 + 1000


def test_non_trainable_counts_batch_stats_and_constants():
    # vgg11_bn: running mean and variance for every conv's maps (configuration A:
    # 64, 128, 256, 256, 512, 512, 512, 512) = 2 x 2,752 = 5,504, not parameters.
    s = jaxcnn.summary("vgg11_bn")
    assert s.non_trainable_params == 2 * (64 + 128 + 256 * 2 + 512 * 4) == 5_504
    assert s.total_params == s.trainable_params + 5_504
    bn = s.row("bn1_1")
    assert (bn.layer_type, bn.params, bn.non_trainable) == ("BatchNorm", 2 * 64, 2 * 64)
    # LeNet-5's 84 x 10 RBF prototypes are constants, not parameters.
    lenet = jaxcnn.summary("lenet5")
    assert (lenet.trainable_params, lenet.non_trainable_params) == (60_000, 840)
    assert lenet.row("output").non_trainable == 840 and lenet.row("output").macs == 840


def test_input_shape_override_and_refusals():
    s = jaxcnn.summary("keras_cifar_cnn", input_shape=(32, 32, 3))
    assert s.input_shape == (32, 32, 3)
    with pytest.raises(ValueError, match="input_shape"):
        jaxcnn.summary(Direct(48, 5))
    with pytest.raises(ValueError, match="Did you mean"):
        jaxcnn.summary("keras_cifar_cn")
    with pytest.raises(ValueError, match=r"\(N, 32, 32, 3\)"):
        jaxcnn.summary("keras_cifar_cnn", input_shape=(28, 28, 3))
    with pytest.raises(TypeError):
        jaxcnn.summary(3)


def test_summary_script(capsys):
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "summary.py"
    spec = importlib.util.spec_from_file_location("summary_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["simple_convnet"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 433,890" in out and "conv1 (Conv)" in out
    assert script.main(["vgg61"]) == 2
    assert "vgg16" in capsys.readouterr().err
