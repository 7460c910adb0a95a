"""3x3 stacking: Simonyan and Zisserman (2015), sec. 2.3 — a stack of n 3x3
convolutions has the receptive field of one (2n+1)x(2n+1) with fewer weights
(two 3x3: 18 C^2 vs one 5x5: 25 C^2, seed 001) and more non-linearities.
Arms: MiniVGG (two stages of two convs, BatchNorm) with kernel_plan "3x3" vs "large"
(one 5x5 per stage), Fashion-MNIST padded to 32x32 and repeated to 3 channels."""

from jaxcnn.ablation import ablation_config


def get_config():
    c = ablation_config(
        "kernel_plan", title="3x3 stacking: MiniVGG kernel_plan 3x3 vs large (5x5), Fashion-MNIST 32x32",
        claim="Simonyan & Zisserman 2015 (sec. 2.3, Table 3-4): two 3x3 layers see 5x5 with 18C^2 instead of "
              "25C^2 weights and an extra ReLU; net B with each pair of 3x3 replaced by one 5x5 had a "
              "7% higher top-1 error (sec. 4.1, ImageNet, centre crop).",
        field="model.kernel_plan",
        arms=[dict(label="3x3 stack", overrides={"model.kernel_plan": "3x3"}),
              dict(label="one 5x5", overrides={"model.kernel_plan": "large"})],
        claims=("eval_accuracy: 3x3 stack > one 5x5",), model=dict(name="minivgg"))
    c.preprocess.pad_to = 32
    c.preprocess.to_rgb = True
    c.optimizer.learning_rate = 0.05
    c.ablation.quick.update(num_steps=150, batch_size=32)
    c.ablation.facts = ("vgg_stack",)
    return c
