"""Print the Keras-style layer table of a registered model.

    python scripts/summary.py keras_cifar_cnn
    python scripts/summary.py vgg16 --input-shape 224,224,3
    python scripts/summary.py --list
"""

from __future__ import annotations

import argparse
import sys

import jaxcnn


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="a registered model name (see --list)")
    parser.add_argument("--input-shape", help="H,W,C of one image (default: the model's)")
    parser.add_argument("--list", action="store_true", help="list the registered models")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for name in jaxcnn.list_models():
            print(name)
        return 0
    shape = None
    if args.input_shape:
        try:
            shape = tuple(int(v) for v in args.input_shape.split(","))
        except ValueError:
            parser.error(f"--input-shape must be H,W,C integers, got {args.input_shape!r}")
    try:
        print(jaxcnn.summary(args.name, shape))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
