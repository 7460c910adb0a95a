"""YOLOv1 (Redmon et al. 2016) on the garment canvases, through the engine: yolov1_tiny's five-conv trunk
(16-32-64-64-128) on 64x64 grey canvases, fc1 of 256 units, the 7x7x(2*5+10) grid, the paper's
sum-squared loss (lambda_coord 5, lambda_noobj 0.5, square-root sizes, the responsible box the one of
highest IoU), decoding with per-class NMS. Scaled down from 24 convolutions on 448x448 (and no ImageNet
pretraining). Trained on all 20,000 training canvases (it needs no proposals).

    python scripts/train.py --config experiments/configs/yolov1.py --workdir runs/detection/yolov1/seed0
    python scripts/evaluate.py --workdir runs/detection/yolov1/seed0
"""

from jaxcnn.train import base_config


def get_config():
    c = base_config()
    c.task = "yolo"
    c.dataset = "fashion_mnist_detection"
    c.model.name = "yolov1_tiny"
    c.model.update(dict(input_size=64, in_channels=1, num_classes=10, hidden=256, dropout_rate=0.0))
    c.preprocess.mean, c.preprocess.std = (0.25,), (0.25,)
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.0
    c.optimizer.warmup_steps = 100
    c.batch_size = 32
    c.eval_batch_size = 500
    c.num_steps = 20000  # 32 epochs of the 20,000 canvases (the paper: 135 epochs of VOC)
    c.log_every = 200
    c.eval_every = 0
    c.checkpoint_every = 2000
    c.parallel = "none"
    return c
