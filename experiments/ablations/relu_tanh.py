"""ReLU vs tanh: Krizhevsky et al. (2012), sec. 3.1 and figure 1 — a four-layer
convolutional network with ReLUs reaches 25% training error on CIFAR-10 six
times faster than the same network with tanh units.
Arms: keras_cifar_cnn (conv32-pool-conv64-pool-conv64, fc64, fc10: three
convolutions and a hidden dense layer, no BatchNorm, as the paper's net) with
`activation` relu vs tanh, on Fashion-MNIST 28x28x1; SGD with momentum and the
each net's learning rate chosen independently, as the paper's: before the
scored seeds, each arm tries 0.001-0.1 on a seed of its own (100) and keeps the
rate that reaches the target in the fewest steps (ablation.tune; a first run
at one shared rate of 0.01 gave the two nets the same curve). No
regularisation, as the paper's. Measured: the first logged step at which the
running training error is at or below a target (steps_to_target), every 10
steps. Fashion-MNIST is easier than CIFAR-10: both nets pass 25% training
error within the first ~80 steps, so the target is 10%, reached near the
middle of a 3,000-step run at 0.01."""

from jaxcnn.ablation import ablation_config


def get_config():
    c = ablation_config(
        "relu_tanh", title="ReLU vs tanh: steps to 10% training error (keras_cifar_cnn, Fashion-MNIST)",
        claim="Krizhevsky et al. 2012 (fig. 1, CIFAR-10): a four-layer CNN with ReLUs reaches 25% training "
              "error six times faster than with tanh neurons.",
        field="model.activation,optimizer.learning_rate",
        arms=[dict(label="relu", overrides={"model.activation": "relu"}),
              dict(label="tanh", overrides={"model.activation": "tanh"})],
        claims=("steps_to_target: tanh > relu",),
        model=dict(name="keras_cifar_cnn", image_size=28, in_channels=1, num_classes=10))
    c.ablation.seeds = (0, 1, 2, 3, 4)
    c.ablation.target_train_error = 0.10
    c.optimizer.update({"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "weight_decay": 0.0,
                        "schedule": "constant", "warmup_steps": 0})
    c.ablation.tune = {"key": "optimizer.learning_rate", "values": (0.001, 0.003, 0.01, 0.03, 0.1), "seed": 100,
                       "metric": "steps_to_target"}
    c.num_steps, c.batch_size, c.log_every = 3000, 128, 10
    c.ablation.quick.update(num_steps=300)
    return c
