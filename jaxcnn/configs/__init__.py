"""Configs shipped with the package, named without a path: `jaxcnn-train --config resnet20 --workdir runs/r20`
(jaxcnn.train.cli.resolve_config). Each defines get_config() on jaxcnn.train.base_config(). The experiments'
own configs (detection, segmentation, fine-tuning, the ablations) stay files in the repository's
experiments/ folder, passed by path."""
