"""1x1 bottlenecks at a matched compute budget: Szegedy et al. (2014), sec. 4-5 —
the 1x1 reductions before the 3x3 and 5x5 branches are what lets the network
grow at a fixed computational budget (seed 001: inception 4a's 5x5 branch on
14x14x480, 112.9M multiply-adds without vs 5.3M with a 16-map reduction); at
the same budget the net with reductions is at least as accurate.

Design II (fixed before its runs, replacing the first design: that compared
the two nets at the same width, so the arm without reductions had 4x the
parameters and 2.5x the multiply-adds, and 3,000 steps left both curves
falling by about 1 pp per 500 steps):
- arms: GoogLeNet (no auxiliary heads) with the reductions at width 0.25
  (2,471,552 multiply-adds per 32x32x3 image, 379,046 parameters) against the
  same net without reductions narrowed to width 0.155 (2,514,440
  multiply-adds, 1.7% more, so the comparison leans against the claim;
  593,991 parameters). Widths scale every channel count of Table 1, rounded.
- data: Fashion-MNIST padded to 32x32 and repeated to 3 channels, the whole
  10,000-image test split.
- budget: 9,000 steps of batch 128 (19.2 epochs), AdamW 1e-3 with 100 warmup
  steps and a cosine decay (GoogLeNet has no BatchNorm and stays at chance
  for hundreds of steps under SGD), the same for both arms.
- seeds 10-14: seeds no earlier bottleneck result was looked at on.
- claims, both decided under Holm's correction over the whole family:
  with 1x1 reduce > without on test accuracy (superiority), and the two
  within 0.5 pp (the margin fixed here, before the runs).
Result: +0.30 pp [-0.22, +0.82], both inconclusive (p 0.18; sd of the
paired differences 0.42 pp).

Design III (fixed before its runs, replacing design II; every seed of it
counted, none of design II's): the same arms, data, optimizer and budget
(9,000 steps of 128; design II's curves had flattened by then), at 15 fresh
seeds 20-34, and the claim as the paper states it, "at least as accurate":
non-inferiority, with 1x1 reduce >= without (matched) within 0.5 pp (the
margin design II fixed before its runs), decided under Holm over the whole
family. Its p is twice the one-sided paired t test of mean(with - without)
<= -0.5 pp, so it is reproduced when the 95% interval lies above -0.5 pp
(jaxcnn.ablation.stats). Design II's superiority claim is not carried: the
paper claims no gain at a matched budget, and design II's equivalence asked
the upper side too, which the paper does not. Why 15 seeds: with design II's
spread (sd 0.42 pp), a true difference of 0 gives t = 0.5 / (0.42 / sqrt 15)
= 4.6 (p about 4e-4), +0.3 pp gives t = 7.4; about 3.4 h on the native CPU
path (51 and 40 ms per step, `python -m benchmarks.ablation_steps
--ablations bottleneck`).
"""

from jaxcnn.ablation import ablation_config

WIDTH_WITH, WIDTH_WITHOUT = 0.25, 0.155  # multiply-adds per image 2,471,552 vs 2,514,440


def get_config():
    c = ablation_config(
        "bottleneck", title="1x1 bottleneck at matched multiply-adds: GoogLeNet with reductions (width 0.25) "
                        "vs without (width 0.155), Fashion-MNIST 32x32",
        claim="Szegedy et al. 2014 (sec. 4-5): the 1x1 reductions keep the computational budget in check "
              "(GoogLeNet: 1.5G multiply-adds); at the same budget the net with them is at least as accurate.",
        field="model.bottleneck,model.width",
        arms=[dict(label="with 1x1 reduce", overrides={"model.bottleneck": True, "model.width": WIDTH_WITH}),
              dict(label="without (matched)", overrides={"model.bottleneck": False, "model.width": WIDTH_WITHOUT})],
        claims=("eval_accuracy: with 1x1 reduce >= without (matched) within 0.005",),
        model=dict(name="googlenet", num_classes=10, aux_logits=False, width=WIDTH_WITH))
    c.ablation.seeds = tuple(range(20, 35))  # design III: 15 fresh seeds
    c.preprocess.pad_to = 32
    c.preprocess.to_rgb = True
    # GoogLeNet has no BatchNorm: under SGD it stays at chance for the first few hundred steps, so both arms
    # train with AdamW (the same for both; the comparison is between the arms).
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 100
    c.num_steps, c.checkpoint_every = 9000, 250
    c.ablation.quick.update(num_steps=200, batch_size=32, ablation={"seeds": (10, 11, 12)})
    c.ablation.facts = ("inception4a_5x5",)
    return c
