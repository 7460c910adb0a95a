"""Prepare a dataset once, without TensorFlow, as TFDS array_record files that
training reads by name (--config.dataset=NAME):

    python scripts/prepare_data.py image_folder photos/                # photos/train/<class>/*.jpg [test/...]
    python scripts/prepare_data.py cifar10 cifar-10-binary.tar.gz      # -> cifar10_offline
    python scripts/prepare_data.py cifar100 cifar-100-binary.tar.gz    # -> cifar100_offline
    python scripts/prepare_data.py mnist mnist_files/ --name mnist_offline --data_dir ~/tensorflow_datasets

The data dir defaults to $TFDS_DATA_DIR, else ~/tensorflow_datasets (the same
place training looks). See jaxcnn.data.prepare_data for the names and formats.

Exit status: 0 written, 2 bad input (one line naming the file and the fix).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    from jaxcnn.data.prepare_data import KINDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=KINDS, help="what SOURCE is")
    parser.add_argument("source", help="the folder (image_folder, mnist) or archive (cifar10, cifar100)")
    parser.add_argument("--name", default=None, help="dataset name (default: see jaxcnn.data.prepare_data)")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR or "
                                                         "~/tensorflow_datasets)")
    args = parser.parse_args(argv)
    from jaxcnn._env import check_environment

    try:
        check_environment()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from absl import logging

    logging.set_verbosity(logging.WARNING)
    from jaxcnn._extras import MissingExtra
    from jaxcnn.data.prepare_data import SourceError, prepare

    try:
        path = prepare(args.kind, args.source, name=args.name, data_dir=args.data_dir)
    except (ValueError, OSError, MissingExtra) as e:  # SourceError; a second writer of the name (_locks.Busy)
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    import tensorflow_datasets as tfds

    name = os.path.basename(os.path.dirname(path))
    builder = tfds.builder_from_directory(path)
    splits = ", ".join(f"{s} {info.num_examples}" for s, info in sorted(builder.info.splits.items()))
    classes = builder.info.features["label"].num_classes
    data_dir = os.path.dirname(os.path.dirname(path))
    print(f"wrote {path}: {splits} examples, {classes} classes; train with --config.dataset={name} "
          f"--config.data_dir={data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
