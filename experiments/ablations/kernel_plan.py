"""3x3 stacking: Simonyan and Zisserman (2015), sec. 2.3 — a stack of n 3x3
convolutions sees the (2n+1)x(2n+1) field of one large convolution with fewer
weights (C channels in and out: two 3x3 hold 18C^2 against one 5x5's 25C^2,
three 27C^2 against one 7x7's 49C^2; seed 001) and more non-linearities, and
trains a better net (their net B with pairs of 3x3 replaced by one 5x5 had a
7% higher top-1 error).
Arms, like for like: MiniVGG (two stages, BatchNorm; scaled to a CPU: 16 and
32 maps, 28x28 inputs, instead of 32 and 64 maps at 32x32) with
`stage_entry="1x1"` — a 1x1 convolution takes each stage to its width, so
every stacked kernel maps C to C — and `kernel_plan` 3x3 vs large, with stacks
of two (vs 5x5) and of three (vs 7x7); Fashion-MNIST at 28x28, grey repeated
to 3 channels."""

from jaxcnn.ablation import ablation_config


def get_config():
    arms = []
    for n, k in ((2, 5), (3, 7)):
        sizes = {"model.stage_sizes": (n, n)}
        arms += [dict(label=f"{n}x 3x3", overrides={**sizes, "model.kernel_plan": "3x3"}),
                 dict(label=f"one {k}x{k}", overrides={**sizes, "model.kernel_plan": "large"})]
    c = ablation_config(
        "kernel_plan", title="3x3 stacking vs one large kernel, C maps in and out (MiniVGG, Fashion-MNIST 28x28)",
        claim="Simonyan & Zisserman 2015 (sec. 2.3, 4.1): n stacked 3x3 convolutions see (2n+1)x(2n+1) with "
              "fewer weights (18C^2 vs 25C^2, 27C^2 vs 49C^2) and more non-linearities; replacing pairs of 3x3 "
              "by one 5x5 raised top-1 error by 7% (ImageNet).",
        field="model.kernel_plan,model.stage_sizes", arms=arms,
        claims=("eval_accuracy: 2x 3x3 > one 5x5", "eval_accuracy: 3x 3x3 > one 7x7"),
        model=dict(name="minivgg", stage_entry="1x1", widths=(16, 32), image_size=28))
    c.ablation.seeds = (0, 1, 2, 3, 4)
    c.preprocess.to_rgb = True
    c.preprocess.crop_padding, c.preprocess.flip = 2, True
    c.optimizer.learning_rate = 0.05
    c.num_steps, c.checkpoint_every = 3000, 250  # 6.4 epochs at batch 128
    c.ablation.quick.update(num_steps=150, batch_size=32)
    c.ablation.facts = ("vgg_stack",)
    return c
