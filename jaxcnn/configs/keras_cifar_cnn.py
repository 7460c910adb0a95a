"""The TensorFlow CIFAR-10 tutorial CNN (Conv32-Pool-Conv64-Pool-Conv64-Dense64)
on offline Fashion-MNIST: one input channel, 28x28, Adam."""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.model.name = "keras_cifar_cnn"
    c.model.in_channels = 1
    c.model.image_size = 28
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.0
    c.num_steps = 4000
    return c
