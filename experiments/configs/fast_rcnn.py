"""Fast R-CNN (Girshick 2015) on the garment canvases (jaxcnn.data.canvases), through the engine, with the
paper's recipe (section 2.3): selective-search proposals (cached, jaxcnn.data.proposals), 2 images x 64 RoIs
per step sampled inside the jitted step (25% foreground at IoU >= 0.5, background in [0.1, 0.5)), training
images flipped left-right at random, RoI max pooling to 4x4 on a stride-8 feature map, the multi-task loss
(softmax + smooth L1, lambda 1) on box targets normalised by the training data's mean and std, cls_score from
N(0, 0.01) and bbox_pred from N(0, 0.001), SGD at 1e-3 with momentum 0.9 and weight decay 5e-4, the rate
divided by 10 after 3/4 of the steps (the paper's 30k of 40k). Scaled down for a CPU: a 4-conv trunk
(widths 16-32-32-64) and 128-unit fc6/fc7 instead of VGG16 and 4096, trained from scratch (no ImageNet),
64x64 grey canvases, training on the first 3,000 training canvases (the ones with cached proposals).

    python scripts/train.py --config experiments/configs/fast_rcnn.py --workdir runs/detection/fast_rcnn/seed0
    python scripts/evaluate.py --workdir runs/detection/fast_rcnn/seed0      # mAP@0.5, mAP, time per image
"""

from jaxcnn.train import base_config

# The mean and std of the box regression targets (t_x, t_y, t_w, t_h) of train[:3000]'s candidates with IoU >= 0.5
# to a ground-truth box (the paper normalises its targets by them): `python experiments/detection/box_target_stats.py`
# prints them, and `--check` fails when these differ.
BOX_TARGET_MEAN = (-0.0039, -0.0108, 0.0186, -0.0062)
BOX_TARGET_STD = (0.0949, 0.0995, 0.2039, 0.2006)

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
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.momentum = 0.9
    c.optimizer.weight_decay = 5e-4
    c.optimizer.schedule, c.optimizer.step_boundaries, c.optimizer.step_factor = "step", (0.75,), 0.1
    c.optimizer.warmup_steps = 0
    c.batch_size = 2  # images per step, 64 RoIs each (detection.rois_per_image): the paper's R = 128, N = 2
    c.detection.rois_per_image = 64
    c.detection.flip = True
    # jaxcnn.detection.boxes.target_stats over train[:3000]'s proposals and ground truth (IoU >= 0.5):
    c.detection.box_target_mean, c.detection.box_target_std = BOX_TARGET_MEAN, BOX_TARGET_STD
    c.eval_batch_size = 100
    c.num_steps = 24000  # 16 epochs of the 3,000 canvases at 2 images a step, as Fast R-CNN's 40k x 2 on VOC07's 5k
    c.log_every = 200
    c.eval_every = 0
    c.checkpoint_every = 2000
    c.parallel = "none"
    return c
