"""Transfer learning's rule of thumb (seed 002; cs231n's "transfer learning"
notes): what to retrain depends on how much data the new task has and how
much it resembles the old one.

                    similar data                      different data
    small data      retrain the classifier only       retrain a classifier on earlier features / some layers
    large data      fine-tune (some or all layers)    fine-tune everything, or train from scratch

Scaled to a CPU: a half-width FashionCNN is pretrained on Fashion-MNIST
classes 0-4 (tops, trousers, pullovers, dresses, coats; 1,500 steps, one run
per seed). The new tasks: "similar" = Fashion-MNIST classes 5-9 (sandals,
shirts, sneakers, bags, ankle boots: the same kind of grey, centred product
photos), "different" = synthetic shapes (circle, square, triangle, cross,
ring on noisy canvases: jaxcnn.data.shapes). "small" = 10 labelled images per
class, "large" = 1,000. Each gets four methods with the same 400 steps:
`head` (a new classifier on the frozen backbone), `some` (the head for 200
steps, then the head, fc4 and the last conv block with BatchNorm statistics
frozen), `all` (the head for 200 steps, then every weight at a 10x smaller
rate) and `scratch` (the same network from a random initialisation). Scored
on the whole test split of the new task.

Design II of the claims (after the committed run of design I, whose claims compared the recommended method
with the frozen head alone): each cell's recommended method against every other arm, scratch included; the
committed run is scored against these claims with `python scripts/ablate.py --rescore --adopt-claims
transfer`, which records that they were adopted after its results.
"""

from jaxcnn.ablation import ablation_config

TARGETS = {
    "similar": {"dataset": "fashion_mnist_offline", "classes": (5, 6, 7, 8, 9)},
    "different": {"dataset": "synthetic_shape_classes", "classes": (), "synthetic_shape": (28, 28, 1),
                  "synthetic_size": 12000},
}
SIZES = (10, 1000)
PRETRAINED = {"finetune.source": "checkpoint", "finetune.path": "pretrain"}
METHODS = {
    "head": {**PRETRAINED, "finetune.head_steps": 400, "finetune.full_steps": 0},
    "some": {**PRETRAINED, "finetune.head_steps": 200, "finetune.full_steps": 200,
             "finetune.train_layers": ("conv3", "bn3", "fc4")},
    "all": {**PRETRAINED, "finetune.head_steps": 200, "finetune.full_steps": 200},
    "scratch": {"finetune.source": "none", "finetune.head_steps": 400, "finetune.full_steps": 0,
                "finetune.head_learning_rate": 2e-3, "optimizer.warmup_steps": 20},
}
FIELD = ",".join(["dataset", "classes", "synthetic_shape", "synthetic_size", "train_examples_per_class",
                  "finetune.source", "finetune.path", "finetune.head_steps", "finetune.full_steps",
                  "finetune.train_layers", "finetune.head_learning_rate", "optimizer.warmup_steps"])


# The rule's four cells: (target, labels per class, what the rule recommends, the arms that do it). A cell is
# reproduced where one recommended arm beats every other arm of the cell (scratch included), each comparison a
# claim of the family; no equivalence margin was fixed before the committed run, so "as good as the best"
# cannot be claimed for it (the equivalence below is the one margin the first design fixed).
RULE = (("similar", 10, "retrain the classifier", ("head",)),
        ("similar", 1000, "fine-tune some or all layers", ("some", "all")),
        ("different", 10, "a classifier on earlier features / retrain some layers", ("some",)),
        ("different", 1000, "fine-tune everything or train from scratch", ("all", "scratch")))


def label(target: str, size: int, method: str) -> str:
    return f"{target}/{size} {method}"


def get_config():
    arms = [dict(label=label(t, n, m), overrides={**TARGETS[t], "train_examples_per_class": n, **METHODS[m]})
            for t in TARGETS for n in SIZES for m in METHODS]
    c = ablation_config(
        "transfer", title="Transfer: what to retrain, by data size and similarity (FashionCNN pretrained on "
                          "Fashion-MNIST 0-4)",
        claim="Seed 002 / cs231n: small & similar data -> retrain the classifier; large & similar -> fine-tune; "
              "small & different -> a classifier on earlier features (retrain some layers); large & "
              "different -> fine-tune everything or train from scratch.",
        field=FIELD, arms=arms,
        claims=tuple(f"eval_accuracy: {label(t, n, r)} > {label(t, n, x)}"
                     for t, n, _, rec in RULE for r in rec for x in METHODS if x not in rec)
        + (f"eval_accuracy: {label('different', 1000, 'all')} ~ {label('different', 1000, 'scratch')} within 0.01",),
        model=dict(name="fashion_cnn_small"))
    # each cell of the rule: the recommended method(s) against every other arm, scratch included
    c.ablation.rules = [(f"{t} data, {n} labels per class: {what}", [label(t, n, r) for r in rec],
                         [label(t, n, x) for x in METHODS if x not in rec]) for t, n, what, rec in RULE]
    c.ablation.seeds = (0, 1, 2, 3, 4)
    c.batch_size = 50
    c.eval_batch_size = 1000
    c.log_every = 50
    c.optimizer.update({"name": "adamw", "learning_rate": 2e-3, "warmup_steps": 0, "weight_decay": 1e-4})
    c.finetune.pretrained_num_classes = 5
    c.finetune.head_learning_rate, c.finetune.full_learning_rate = 1e-2, 1e-3
    c.ablation.finetune = True
    c.ablation.pretrain = {"dataset": "fashion_mnist_offline", "classes": (0, 1, 2, 3, 4),
                           "train_examples_per_class": 0, "num_steps": 1500, "batch_size": 128,
                           "optimizer": {"warmup_steps": 100}}
    c.ablation.panels = [(f"{t} data, {n} labels per class", [label(t, n, m) for m in METHODS])
                         for t in TARGETS for n in SIZES]
    c.ablation.quick.update(batch_size=50, eval_examples=1000, ablation={"seeds": (0, 1, 2)})
    return c
