"""Train a registry model: the main job of jaxcnn.

    python scripts/train.py --config experiments/configs/default.py --workdir runs/default \
        [--config.model.name=resnet20 --config.parallel=mesh --config.num_steps=2000 ...]

The same command resumes from the latest checkpoint in --workdir; on a finished
run it prints the final test accuracy. Multi-host: pass --coordinator=HOST:PORT
--num_processes=N --process_id=I on every host (or set JAXCNN_COORDINATOR,
JAXCNN_NUM_PROCESSES, JAXCNN_PROCESS_ID). Exit status: 0 done, 1 diverged
(NaN/Inf), 2 bad configuration or input, 130/143 interrupted (checkpoint saved).
"""

from __future__ import annotations

import os
import sys

from jaxcnn.train import cli


def _main(argv=None) -> int:
    p = cli.parser(__doc__)
    p.add_argument("--workdir", required=True, help="directory for checkpoints, metrics.jsonl, config.json and "
                                                    "TensorBoard events")
    p.add_argument("--coordinator", help="multi-host: address HOST:PORT of process 0")
    p.add_argument("--num_processes", type=int, help="multi-host: number of processes")
    p.add_argument("--process_id", type=int, help="multi-host: this process's index")
    args, config = cli.parse(p, argv)
    cli.setup_process(args.coordinator, args.num_processes, args.process_id)
    import jax

    import jaxcnn
    from jaxcnn.train import train_and_evaluate

    def job():
        if jax.process_index() == 0 and jax.default_backend() == "cpu":
            print(f"XLA:CPU flags of jaxcnn.runtime: {jaxcnn.xla_cpu_status()}")
        final = train_and_evaluate(config, args.workdir)
        if jax.process_index() == 0:
            again = " (finished before; nothing to train)" if final.get("finished_before") else ""
            if "test_accuracy" in final:  # config.test_split: eval_split was the validation split
                score = (f"validation accuracy {final['eval_accuracy']:.4f} ({config.eval_split}), test accuracy "
                         f"{final['test_accuracy']:.4f} (test loss {final['test_loss']:.4f}; ")
            elif "eval_accuracy" in final:
                score = f"test accuracy {final['eval_accuracy']:.4f} (test loss {final['eval_loss']:.4f}; "
            else:  # detection: the task's own scores (mAP)
                score = ", ".join(f"{k} {v:.4f}" for k, v in final.items() if k.startswith("eval_")
                                  and isinstance(v, float)) + " ("
            print(f"step {final['step']}: {score}{jax.device_count()} devices, {jax.process_count()} processes)"
                  f"{again}; metrics in {os.path.join(args.workdir, 'metrics.jsonl')}")

    return cli.main(job)


def main(argv=None) -> int:
    """The command (jaxcnn-train): its exit status; a Ctrl-C before training starts is one line and 130."""
    return cli.entry(lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
