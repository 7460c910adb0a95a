r"""Fine-tune a pretrained registry model on a new task: a new classifier for
the dataset's classes, trained with the backbone frozen (BatchNorm statistics
too), then optionally every weight at a smaller learning rate.

    # from our own training run (scripts/train.py --workdir runs/fmnist):
    python scripts/finetune.py --config experiments/configs/finetune.py --workdir runs/ft \
        --config.finetune.path=runs/fmnist

    # from torchvision weights (a state-dict file, read with weights_only=True or as safetensors):
    python scripts/finetune.py --config experiments/configs/finetune.py --workdir runs/ft_r18 \
        --config.model.name=resnet18 --config.finetune.source=torchvision \
        --config.finetune.path=resnet18-f37072fd.pth --config.dataset=cifar10 ...

The same command resumes from the latest checkpoint in --workdir, in whichever
phase it falls. Exit status: 0 done, 1 diverged, 2 bad configuration or input,
130/143 interrupted (checkpoint saved).
"""

from __future__ import annotations

import os
import sys

from jaxcnn.train import cli


def _main(argv=None) -> int:
    p = cli.parser(__doc__, config_help="config file (experiments/configs/finetune.py) defining get_config()")
    p.add_argument("--workdir", required=True, help="directory for checkpoints, metrics.jsonl and config.json")
    args, config = cli.parse(p, argv)
    cli.setup_process()
    from jaxcnn.finetune import run_finetune

    def job():
        final = run_finetune(config, args.workdir)
        print(f"{final['phase']} phase, step {final['step']}: test accuracy {final['eval_accuracy']:.4f} on "
              f"{final['num_classes']} classes; metrics in {os.path.join(args.workdir, 'metrics.jsonl')}")

    return cli.main(job)


def main(argv=None) -> int:
    """The command (jaxcnn-finetune): its exit status; a Ctrl-C before training starts is one line and 130."""
    return cli.entry(lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
