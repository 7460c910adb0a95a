"""Skip connections, residual depth alone: He et al. (2015), sec. 4.2 and figure 6 — ResNet-56 has a lower
training error than ResNet-20 (depth helps once the shortcuts are there).

Design III of skip's depth claims, fixed before its runs. Skip's design II (seeds 10-14) put every seed on the
paper's side in both training-error measures (-0.62 pp running, -0.50 pp in evaluation mode) with a paired sd of
0.30-0.45 pp, but p_holm 0.27 and 0.21 over 45 claims: inconclusive. This design replaces those two claims in
the family (`ablation.supersedes`) with a larger run at 12 fresh seeds (20-31, independent of design II's look),
every seed counted; skip's other claims (degradation, residual above plain) stay with design II.

Sample size from design II's numbers, not from new data: with a paired sd of 0.30 pp, 12 seeds give a paired t
of about 5.8 at a difference of -0.50 pp (p about 1e-4), past Holm's first step in a family of about 46. The
arms, data, schedule and budget are skip's: ResNet-20 and ResNet-56 with option A shortcuts at half width
(stages of 8-16-32 maps), Fashion-MNIST 28x28x1 with 2-pixel crops and flips, SGD 0.1 with momentum 0.9 and
weight decay 1e-4 (warm-up 200 steps), the rate divided by 10 at 50% and 75% of 4,000 steps of batch 128.
Both training errors are claims: the running error of the last log window (train mode, augmented batches, as
fig. 6 plots it) and `train_error_eval`, the whole 60,000-image training split in evaluation mode after training.
"""

from jaxcnn.ablation import ablation_config


def get_config():
    arms = [dict(label=f"{m} residual", overrides={"model.name": m}) for m in ("resnet20", "resnet56")]
    c = ablation_config(
        "skip_depth", title="Residual depth: ResNet-20 vs ResNet-56 (half width, Fashion-MNIST), 12 seeds",
        claim="He et al. 2015 (fig. 6, CIFAR-10): ResNet-56 has lower training error than ResNet-20.",
        field="model.stage_sizes", arms=arms,
        model=dict(name="resnet20", base_width=8, skip=True),
        claims=("train_error: resnet56 residual < resnet20 residual",
                "train_error_eval: resnet56 residual < resnet20 residual"))
    c.ablation.seeds = tuple(range(20, 32))
    c.ablation.supersedes = ("skip: train_error: resnet56 residual < resnet20 residual",
                             "skip: train_error_eval: resnet56 residual < resnet20 residual")
    c.preprocess.crop_padding, c.preprocess.flip = 2, True
    c.optimizer.update({"learning_rate": 0.1, "warmup_steps": 200, "schedule": "step",
                        "step_boundaries": (0.5, 0.75), "step_factor": 0.1})
    c.num_steps, c.batch_size, c.log_every, c.checkpoint_every = 4000, 128, 50, 250
    c.ablation.quick.update(num_steps=100, batch_size=32, ablation={"seeds": (20, 21, 22)})
    return c
