"""AlexNet-style nets: overlapping 3x3 stride-2 max pooling vs non-overlapping 2x2 stride 2 (sec. 3.4).
A half-width AlexNet (widths 48-128-192-192-128, fc 512-512, the two-tower
groups kept) on Fashion-MNIST resized to 67x67 and repeated to 3 channels:
conv1 (11x11/4) gives 15x15, and both poolings give 7 -> 3 -> 1, so the arms
have the same parameters."""

from jaxcnn.ablation import ablation_config


def get_config():
    c = ablation_config(
        "alexnet_pooling", title="AlexNet-style pooling: overlapping 3x3/2 vs 2x2/2 (half-width AlexNet, Fashion-MNIST 67x67)",
        claim="Krizhevsky et al. 2012 (sec. 3.4): overlapping pooling (z=3, s=2) reduces top-1 / top-5 error by 0.4% / 0.3% against z=2, s=2, and nets with it are slightly harder to overfit.",
        field="model.overlap_pool",
        arms=[dict(label="overlapping 3x3/2", overrides={"model.overlap_pool": True}),
              dict(label="non-overlapping 2x2/2", overrides={"model.overlap_pool": False})],
        claims=("eval_accuracy: overlapping 3x3/2 > non-overlapping 2x2/2",),
        model=dict(name="alexnet", num_classes=10, image_size=67, widths=(48, 128, 192, 192, 128),
                   fc_features=(512, 512)))
    c.preprocess.resize_to = 67
    c.preprocess.to_rgb = True
    c.optimizer.learning_rate = 0.01  # sec. 5: SGD 0.01, momentum 0.9, weight decay 5e-4
    c.optimizer.weight_decay = 5e-4
    c.ablation.seeds = (0, 1, 2, 3, 4)  # the paper's effects are fractions of a percent
    c.num_steps, c.checkpoint_every = 3000, 250  # 6.4 epochs at batch 128
    c.ablation.quick.update(num_steps=100, batch_size=32)
    return c
