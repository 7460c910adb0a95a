"""LeNet-5 as published vs as usually re-implemented: lenet5 (scaled tanh,
trainable subsampling, the C3 connection table, Euclidean RBF output) vs lenet5_modern (ReLU, max
pooling, full C3, dense softmax output), on Fashion-MNIST padded 28 -> 32.
The registered lenet5_modern flips the four switches together. Each net trains
at its own learning rate, tuned on a seed of its own (100) for the lowest
final training error (ablation.tune): a first run at one shared rate (0.002,
chosen for the published net) gave the modern net the higher training error
(9.04 ± 0.61% vs 8.20 ± 0.59%, 3 seeds), a statement about the rate rather than
the nets.

Design II (fixed before its runs, replacing the 3-seed result, whose accuracy
claim did not survive Holm's correction over the family: p = 0.026): the
same arms, tuning and budget, at seeds 10-14, which no earlier lenet5 result
was looked at on; both claims decided under Holm's correction over the whole
family."""

from jaxcnn.ablation import ablation_config


def get_config():
    c = ablation_config(
        "lenet5", title="LeNet-5 as published vs modern (Fashion-MNIST, 28->32 padding)",
        claim="LeCun et al. 1998: LeNet-5 reaches 0.95% test error on MNIST (20 passes, no distortions); "
              "the modern switches (ReLU, max pooling, softmax) are commonly found to train faster.",
        field="model.c3_table,model.pooling,model.activation,model.output,optimizer.learning_rate",
        arms=[dict(label="lenet5 (published)", overrides={"model.name": "lenet5"}),
              dict(label="lenet5_modern", overrides={"model.name": "lenet5_modern"})],
        claims=("train_error: lenet5 (published) > lenet5_modern",
                "eval_accuracy: lenet5_modern > lenet5 (published)"), model=dict(name="lenet5"))
    c.ablation.seeds = (10, 11, 12, 13, 14)
    c.preprocess.pad_to = 32
    # The published net's logits are minus sums of 84 squared distances (the RBF layer), large enough that
    # SGD at 0.05 saturates its tanh units (34% test accuracy after 1,500 steps against 84% at 0.002).
    c.optimizer.learning_rate = 0.002
    c.ablation.tune = {"key": "optimizer.learning_rate", "values": (0.0005, 0.002, 0.01, 0.05), "seed": 100,
                       "metric": "train_error"}
    c.optimizer.weight_decay = 5e-4
    c.num_steps = 9380  # 20 passes over the 60,000 training images, as the paper's 20 iterations
    c.ablation.quick.update(num_steps=1500, ablation={"seeds": (10, 11, 12)})  # 1.6 epochs: both nets are small, a step is tens of ms on a CPU
    return c
