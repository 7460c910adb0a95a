"""Convolution vs cross-correlation: the textbook operation flips the kernel,
frameworks compute cross-correlation. A "convolution" net started from the
"cross_correlation" net's initial kernels flipped is the same function, gets
flipped gradients, and so trains identically — its learned kernels are the flips.
Arms: lenet5_modern with conv_mode "cross_correlation" vs "convolution" (twin init)."""

from jaxcnn.ablation import ablation_config


def get_config():
    c = ablation_config(
        "conv_mode", title="Convolution vs cross-correlation: twin LeNet-5 (modern), flipped initial kernels",
        claim="Goodfellow et al. 2016 (sec. 9.1), d2l 7.2: the two differ by a flip of the kernel, so a "
              "network learns the flipped kernels and nothing else changes.",
        field="model.conv_mode",
        arms=[dict(label="cross_correlation", overrides={"model.conv_mode": "cross_correlation"}),
              dict(label="convolution", overrides={"model.conv_mode": "convolution"})],
        claims=("eval_accuracy: cross_correlation ~ convolution within 0.001",),
        model=dict(name="lenet5_modern"))
    c.preprocess.pad_to = 32
    c.ablation.extras = ("twin_flip", "kernels")  # adds the twin claim: kernels flips, predictions equal
    c.num_steps = 4700  # 10 epochs of 60,000 at batch 128
    return c
