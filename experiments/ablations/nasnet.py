"""NASNet-A's training regularisers: Zoph et al. (2018), sec. 4.1 and appendix A — the CIFAR-10 results
are trained with ScheduledDropPath and an auxiliary head (TF-slim's reference: drop-path keep probability
0.6 at the last cell, scaled by depth and by training progress; auxiliary loss weighted 0.4).
Arms: a CPU-sized NASNet-A (the CIFAR stem and cells, N = 2 normal cells per stack, penultimate 192 maps:
cells of 8-16-32 filters, stem 24) on Fashion-MNIST 28x28, trained with both (aux_logits, aux_weight 0.4,
drop_path_rate 0.4) vs with neither; the same data, schedule and seeds. Measured: test accuracy on the
whole test split, training error and the generalisation gap (training images scored in eval mode minus
test accuracy).

Design fixed before its runs: seeds 0-4 (no NASNet result exists yet), 3,000 steps of batch 64 (3.2
epochs; drop path reaches its full rate at the last step, as its schedule over the run), SGD 0.05 with
momentum 0.9, weight decay 5e-4 and a cosine schedule, and the three claims below decided under Holm's
correction over the family. Budget: not yet timed on a quiet machine; the step time of `--quick` sets it
(10 runs x 3,000 steps)."""

from jaxcnn.ablation import ablation_config


def get_config():
    c = ablation_config(
        "nasnet", title="NASNet-A: auxiliary head + ScheduledDropPath vs neither (N=2 @ 192, Fashion-MNIST)",
        claim="Zoph et al. 2018 (sec. 4.1, app. A; TF-slim's cifar_config): NASNet-A's CIFAR-10 training uses "
              "ScheduledDropPath (keep 0.6) and an auxiliary head (weight 0.4) as regularisers.",
        field="model.aux_logits,model.drop_path_rate",
        arms=[dict(label="aux + drop path", overrides={"model.aux_logits": True, "model.drop_path_rate": 0.4}),
              dict(label="neither", overrides={"model.aux_logits": False, "model.drop_path_rate": 0.0})],
        claims=("eval_accuracy: aux + drop path > neither",
                "generalization_gap: neither > aux + drop path",
                "train_error: aux + drop path > neither"),
        model=dict(name="nasnet_a_cifar", num_blocks=2, penultimate_filters=192, stem_filters=24, num_classes=10,
                   aux_weight=0.4))
    c.optimizer.update({"learning_rate": 0.05, "weight_decay": 5e-4})
    c.ablation.seeds = (0, 1, 2, 3, 4)
    c.ablation.gap_examples = 10000
    c.num_steps, c.batch_size, c.checkpoint_every = 3000, 64, 250
    c.ablation.quick.update(num_steps=60, batch_size=64, ablation={"seeds": (0,)})  # its step time sets the budget
    return c
