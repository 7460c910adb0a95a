"""Fast R-CNN (Girshick 2015) on the garment canvases (jaxcnn.data.canvases), through the engine:
selective-search proposals (cached, jaxcnn.data.proposals), 4 images x 64 RoIs per step sampled inside the
jitted step (25% foreground at IoU >= 0.5, background in [0.1, 0.5)), RoI max pooling to 4x4 on a stride-8
feature map, the multi-task loss (softmax + smooth L1, lambda 1). Scaled down for a CPU: a 4-conv trunk
(widths 16-32-32-64) and 128-unit fc6/fc7 instead of VGG16 and 4096, trained from scratch (no ImageNet),
64x64 grey canvases, training on the first 3,000 training canvases (the ones with cached proposals).

    python scripts/train.py --config experiments/configs/fast_rcnn.py --workdir runs/detection/fast_rcnn/seed0
    python scripts/evaluate.py --workdir runs/detection/fast_rcnn/seed0      # mAP@0.5, mAP, time per image
"""

from jaxcnn.train import base_config

TRUNK = dict(stage_sizes=(1, 1, 1, 1), widths=(16, 32, 32, 64), hidden=128, roi_size=4, spatial_scale=0.125,
             in_channels=1, num_classes=11, dropout_rate=0.0)


def get_config():
    c = base_config()
    c.task = "fast_rcnn"
    c.dataset = "fashion_mnist_detection_ss"
    c.train_split = "train[:3000]"
    c.eval_split = "test"
    c.model.name = "fast_rcnn"
    c.model.update(TRUNK)
    c.preprocess.mean, c.preprocess.std = (0.25,), (0.25,)
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.0
    c.optimizer.warmup_steps = 100
    c.batch_size = 4
    c.eval_batch_size = 100
    c.num_steps = 12000  # 16 epochs of the 3,000 canvases, as Fast R-CNN's 40k iterations x 2 images on VOC07's 5k
    c.log_every = 200
    c.eval_every = 0
    c.checkpoint_every = 2000
    c.parallel = "none"
    return c
