"""Skip connections: He et al. (2015), sec. 4.2 and fig. 6 — plain nets get worse
with depth (20 -> 56 layers: higher *training* error), residual nets do not.
Arms: resnet20 and resnet56 with `skip` on and off, on Fashion-MNIST 28x28x1.
Also the per-layer gradient norms at initialisation (seed 000: vanishing gradients)."""

from jaxcnn.ablation import ablation_config


def get_config():
    arms = [dict(label=f"{m} {'residual' if s else 'plain'}", overrides={"model.name": m, "model.skip": s})
            for m in ("resnet20", "resnet56") for s in (True, False)]
    c = ablation_config(
        "skip", title="Skip connections: ResNet-20/56 residual vs plain (Fashion-MNIST)",
        claim="He et al. 2015 (fig. 6, CIFAR-10): plain-56 has higher training error than plain-20 "
              "(degradation); ResNet-56 has lower training error than ResNet-20.",
        field="model.skip", arms=arms, model=dict(name="resnet20"),
        claims=("train_error: resnet56 plain > resnet20 plain", "train_error: resnet56 residual < resnet20 residual"))
    c.optimizer.learning_rate = 0.1  # sec. 4.2: SGD 0.1, momentum 0.9, weight decay 1e-4
    c.optimizer.warmup_steps = 30
    c.ablation.quick.update(num_steps=100, batch_size=32)
    c.ablation.extras = ("grad_norms",)
    c.ablation.panels = [("plain", ["resnet20 plain", "resnet56 plain"]),
                         ("residual", ["resnet20 residual", "resnet56 residual"])]
    return c
