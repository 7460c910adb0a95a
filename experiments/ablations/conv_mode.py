"""Convolution vs cross-correlation: the textbook convolution flips the kernel;
frameworks compute cross-correlation. A "convolution" net started from the
"cross_correlation" net's initial kernels flipped is the same function, gets
flipped gradients, and so trains identically — its learned kernels are the flips.
Arms: lenet5_modern with conv_mode "cross_correlation" vs "convolution" (twin init)."""

from jaxcnn.experiments import ablation_config


def get_config():
    c = ablation_config(
        "conv_mode", title="Convolution vs cross-correlation: twin LeNet-5 (modern), flipped initial kernels",
        claim="Goodfellow et al. 2016 (sec. 9.1), d2l 7.2: the two differ by a flip of the kernel, so a "
              "network learns the flipped kernels and nothing else changes.",
        field="conv_mode",
        arms=[dict(label="cross_correlation", model="lenet5_modern", overrides={"conv_mode": "cross_correlation"}),
              dict(label="convolution", model="lenet5_modern", overrides={"conv_mode": "convolution"})])
    c.preprocess.pad_to = 32
    c.quick.steps = 300
    c.extras = ("twin_flip", "kernels")
    return c
