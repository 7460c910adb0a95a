"""LeNet-5 (LeCun et al. 1998) on offline Fashion-MNIST: 28x28 images padded to
the paper's 32x32, SGD with momentum. Pass --config.model.name=lenet5_modern
for the ReLU/max-pool/dense re-implementation."""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.model.name = "lenet5"
    c.preprocess.pad_to = 32
    c.optimizer.name = "sgd"
    # The published net's logits are minus sums of 84 squared distances (the RBF layer), large enough that
    # SGD at 0.05 saturates its tanh units (34% test accuracy after 1,500 steps against 84% at 0.002).
    c.optimizer.learning_rate = 0.002
    c.optimizer.weight_decay = 5e-4
    c.optimizer.warmup_steps = 200
    c.num_steps = 4000
    return c
