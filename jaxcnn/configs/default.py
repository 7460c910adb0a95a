"""Default: FashionCNN (half width) on offline Fashion-MNIST, one-cycle AdamW, EMA weights and label smoothing
(docs/recipes.md): about a minute on a CPU. Chosen on the validation split (default_validation.py), seed 0: the
recipe at 2,000 steps gave 0.918 validation accuracy against 0.911 for the previous default (warm-up + cosine at
2e-3, no EMA, no smoothing); with the steps cheaper (native kernels, 2x2 pools routed to the faster path) 3,400
steps fit the minute and give 0.9287 (C5 in docs/recipes.md; 3,200: 0.9267, 3,600: 0.9285 in 62 s). The net
underfits at that budget (training accuracy in training mode ~ validation accuracy), so the third round lowered
FashionCNN's dropout from 0.3 to 0.1 and raised the peak rate to 6e-3 (D4: 0.9343 and 0.9345 at seeds 0 and 1,
the best of ten candidates at the same step count and time). Timed quiet, 3,400 steps took 63-66 s on 5
December (the machine ~12% slower than when C5 was timed), so the step count came down to 3,000 (F1: 0.9332 and
0.9325 at seeds 0 and 1)."""

from jaxcnn.train.config import base_config


def get_config():
    c = base_config()
    c.model.name = "fashion_cnn_small"
    c.model.dropout = 0.1  # before fc4 and fc5 (the model's default 0.3 over-regularises a 7-epoch run)
    c.num_steps = 3000  # 6.4 epochs of 60,000 at batch 128
    c.batch_size = 128
    c.optimizer.schedule = "onecycle"
    c.optimizer.learning_rate = 6e-3
    c.optimizer.warmup_steps, c.optimizer.warmup_fraction = 0, 0.25  # a quarter of the run rising
    c.ema_decay = 0.995
    c.label_smoothing = 0.1
    c.eval_every = 1500
    c.checkpoint_every = 1500
    return c
