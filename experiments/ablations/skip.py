"""Skip connections: He et al. (2015), sec. 4.2 and figure 6 — plain nets get
worse with depth (plain-56 has a higher *training* error than plain-20:
degradation), residual nets do not (ResNet-56 below ResNet-20).
Arms: resnet20 and resnet56 (option A shortcuts) with `skip` on and off, on
Fashion-MNIST 28x28x1 with He et al.'s augmentation (2-pixel padding, random
crops, flips), SGD 0.1 with momentum 0.9 and weight decay 1e-4, the rate
divided by 10 at 50% and 75% of the steps (their 32k/48k of 64k). Scaled to a
CPU: stages of 8-16-32 maps instead of 16-32-64 (the depths, the claim, stay),
and 4,000 steps of batch 128 (about 8.5 epochs) instead of 64k (182 epochs).
Also the per-layer gradient norms at initialisation (seed 000: vanishing
gradients in deep plain nets).

Design II (fixed before its runs, replacing the 3-seed result at seeds 0-2,
whose claims stand at the edge of Holm's correction over the family:
p_holm 0.047, 0.30, 0.047 with the committed results of 4 December): the same four arms, data, schedule and budget
(4,000 steps of 128), at 5 fresh seeds 10-14 (independent of the 3-seed
look), all four arms. Training error is measured twice: the running error of
the last log window (train mode, augmented batches, as fig. 6 plots it) and
`train_error_eval`, the error on the whole 60,000-image training split after
training in evaluation mode (running BatchNorm statistics, no
augmentation). Claims, each decided under Holm's correction over the whole
family at 0.05: degradation (plain-56 above plain-20) and residual depth
(ResNet-56 below ResNet-20) on both training errors, and ResNet-56 residual
above plain on test accuracy."""

from jaxcnn.ablation import ablation_config


def get_config():
    arms = [dict(label=f"{m} {'residual' if s else 'plain'}", overrides={"model.name": m, "model.skip": s})
            for m in ("resnet20", "resnet56") for s in (True, False)]
    c = ablation_config(
        "skip", title="Skip connections: ResNet-20/56 residual vs plain (half width, Fashion-MNIST)",
        claim="He et al. 2015 (fig. 6, CIFAR-10): plain-56 has higher training error than plain-20 "
              "(degradation); ResNet-56 has lower training error than ResNet-20.",
        field="model.skip", arms=arms, model=dict(name="resnet20", base_width=8),
        claims=("train_error: resnet56 plain > resnet20 plain", "train_error_eval: resnet56 plain > resnet20 plain",
                "train_error: resnet56 residual < resnet20 residual",
                "train_error_eval: resnet56 residual < resnet20 residual",
                "eval_accuracy: resnet56 residual > resnet56 plain"))
    c.ablation.seeds = (10, 11, 12, 13, 14)
    c.preprocess.crop_padding, c.preprocess.flip = 2, True
    c.optimizer.update({"learning_rate": 0.1, "warmup_steps": 200, "schedule": "step",
                        "step_boundaries": (0.5, 0.75), "step_factor": 0.1})
    c.num_steps, c.batch_size, c.log_every, c.checkpoint_every = 4000, 128, 50, 250
    c.ablation.quick.update(num_steps=100, batch_size=32, ablation={"seeds": (10, 11, 12)})
    c.ablation.extras = ("grad_norms",)
    c.ablation.panels = [("plain", ["resnet20 plain", "resnet56 plain"]),
                         ("residual", ["resnet20 residual", "resnet56 residual"])]
    return c
