"""Transfer learning between the halves of Fashion-MNIST's classes (seed 002):
a half-width FashionCNN pretrained on classes 0-4 (tops, trousers, pullovers,
dresses, coats; 300 steps) moves to classes 5-9 (sandals, shirts, sneakers,
bags, ankle boots) with 10 or 100 labelled images per class: a new head on the
frozen backbone, the head then every weight, or the same network from scratch
for as many steps. Scored on all 5,000 test images of classes 5-9."""

from jaxcnn.ablation import ablation_config

FIELD = ("train_examples_per_class,finetune.source,finetune.path,finetune.head_steps,finetune.full_steps,"
         "finetune.head_learning_rate,optimizer.warmup_steps")


def _arms(per_class):
    pretrained = {"train_examples_per_class": per_class, "finetune.source": "checkpoint", "finetune.path": "pretrain"}
    return [
        dict(label=f"{per_class}/class head", overrides={**pretrained, "finetune.head_steps": 50,
                                                          "finetune.full_steps": 0}),
        dict(label=f"{per_class}/class full", overrides={**pretrained, "finetune.head_steps": 50,
                                                          "finetune.full_steps": 50}),
        dict(label=f"{per_class}/class scratch", overrides={
            "train_examples_per_class": per_class, "finetune.source": "none", "finetune.head_steps": 100,
            "finetune.full_steps": 0, "finetune.head_learning_rate": 2e-3, "optimizer.warmup_steps": 20}),
    ]


def get_config():
    c = ablation_config(
        "transfer", title="Transfer: Fashion-MNIST classes 0-4 -> 5-9, head only vs full fine-tune vs scratch",
        claim="Seed 002 (and Yosinski et al. 2014): with similar data retrain only the classifier; with a "
              "similar task but other data retrain every weight from the pretrained ones.",
        field=FIELD, arms=_arms(10) + _arms(100),
        claims=("eval_accuracy: 10/class full > 10/class head", "eval_accuracy: 100/class full > 100/class head",
                "eval_accuracy: 10/class full > 10/class scratch"),
        model=dict(name="fashion_cnn_small"))
    c.classes = (5, 6, 7, 8, 9)
    c.batch_size = 50
    c.optimizer.update({"name": "adamw", "learning_rate": 2e-3, "warmup_steps": 0, "weight_decay": 1e-4})
    c.finetune.head_learning_rate, c.finetune.full_learning_rate = 1e-2, 1e-3
    c.ablation.finetune = True
    c.ablation.pretrain = {"classes": (0, 1, 2, 3, 4), "train_examples_per_class": 0, "num_steps": 300,
                           "batch_size": 128, "optimizer.warmup_steps": 50}
    c.ablation.quick.update(num_steps=300, batch_size=50)
    return c
