"""1x1 bottlenecks: Szegedy et al. (2014), sec. 4-5 — 1x1 reductions before
the 3x3 and 5x5 branches cut the computation (seed 001: inception 4a's 5x5
branch on 14x14x480, 112.9M multiply-adds without vs 5.3M with a 16-map
reduction) without hurting accuracy.
Arms: GoogLeNet (no auxiliary heads) with `bottleneck` on vs off, Fashion-MNIST
padded to 32x32 and repeated to 3 channels. Scaled to a CPU: every channel
count of Table 1 times 0.25 (`width=0.25`; the structure and the reductions'
ratios stay), 3,000 steps of batch 128 (6.4 epochs)."""

from jaxcnn.ablation import ablation_config


def get_config():
    c = ablation_config(
        "bottleneck", title="1x1 bottleneck: GoogLeNet (width 0.25) with vs without 1x1 reductions "
                        "(Fashion-MNIST 32x32)",
        claim="Szegedy et al. 2014 (sec. 4-5): the 1x1 reductions keep the computational budget in check "
              "(GoogLeNet: 1.5G multiply-adds) while the network stays as accurate.",
        field="model.bottleneck",
        arms=[dict(label="with 1x1 reduce", overrides={"model.bottleneck": True}),
              dict(label="without", overrides={"model.bottleneck": False})],
        claims=("eval_accuracy: with 1x1 reduce ~ without within 0.01",),
        model=dict(name="googlenet", num_classes=10, aux_logits=False, width=0.25))
    c.preprocess.pad_to = 32
    c.preprocess.to_rgb = True
    # GoogLeNet has no BatchNorm: under SGD it stays at chance for the first few hundred steps, so both arms
    # train with AdamW (the same for both; the comparison is between the arms).
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 100
    c.num_steps, c.checkpoint_every = 3000, 250
    c.ablation.quick.update(num_steps=200, batch_size=32)
    c.ablation.facts = ("inception4a_5x5",)
    return c
