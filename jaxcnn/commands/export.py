"""Export a training run's model for others: its weights (safetensors, with a model card) or its inference
function (StableHLO, through jax.export; runs without jaxcnn).

    jaxcnn-export --workdir runs/fashion --format safetensors --out fashion.safetensors   # + fashion.json/.md
    jaxcnn-export --workdir runs/fashion --format stablehlo --out fashion.stablehlo [--step 1500]

`jaxcnn.load_weights("fashion.safetensors")` gives (model, variables) back; the StableHLO file is called with
`jax.export.deserialize(open("fashion.stablehlo", "rb").read()).call(images)`, images NHWC float32
preprocessed as the model card's `input` says, any batch size. See jaxcnn.pretrained.export. Exit status 0
written, 2 bad workdir or flags.
"""

from __future__ import annotations

import argparse
import sys

from jaxcnn.train import cli

FORMATS = ("safetensors", "stablehlo")


def _shape(text: str) -> tuple:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input_shape takes H,W,C integers, got {text!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"--input_shape takes three positive integers H,W,C, got {text!r}")
    return shape


def main(argv=None) -> int:
    first, _, rest = __doc__.strip().partition("\n\n")
    p = argparse.ArgumentParser(description=first, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="a training run's workdir (config.json + checkpoints/)")
    p.add_argument("--format", required=True, choices=FORMATS, help="safetensors (weights + model card) or "
                                                                    "stablehlo (jax.export of the logits)")
    p.add_argument("--out", required=True, help="the file to write (its model card goes beside it, .json/.md)")
    p.add_argument("--step", type=int, default=None, help="the checkpoint step to export (default: the latest)")
    p.add_argument("--input_shape", type=_shape, default=None,
                   help="H,W,C the model sees (default: the run's dataset after its preprocessing; needed where "
                        "that dataset is not on this machine)")
    p.add_argument("--platforms", default=",".join(("cpu", "cuda", "tpu")),
                   help="stablehlo: the platforms to lower for, comma-separated (default cpu,cuda,tpu)")
    args = p.parse_args(argv)
    cli.setup_process()

    def job():
        from jaxcnn.pretrained import export

        if args.format == "safetensors":
            paths = export.export_safetensors(args.workdir, args.out, step=args.step, input_shape=args.input_shape)
        else:
            paths = export.export_stablehlo(args.workdir, args.out, step=args.step, input_shape=args.input_shape,
                                            platforms=tuple(v.strip() for v in args.platforms.split(",") if v))
        for path in paths:
            print(f"wrote {path}")

    return cli.main(job)


if __name__ == "__main__":
    sys.exit(main())
