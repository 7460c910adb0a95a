"""Fast R-CNN on a finer feature map: fast_rcnn.py's network, data and budget with the trunk's last pooling
dropped (trunk_pools=2: stride 4, a 16x16 map of a 64x64 canvas, spatial_scale 1/4). The same weights; the
convolutions after the second pooling see 4x the positions. A test of one reading of the stride-8 result:
there a 16-40 px garment covers 2-5 feature cells, against Fast R-CNN's VGG16 at stride 16 on ~600 px
PASCAL images, where an object covers tens (R-CNN's 32x32 warps give every region 4x4 cells).

    python scripts/train.py --config experiments/configs/fast_rcnn_stride4.py --workdir runs/detection/fast_rcnn_stride4/seed0
"""

import os

from jaxcnn.train.cli import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fast_rcnn.py"))
    c.model.update(dict(trunk_pools=2, spatial_scale=0.25))
    return c
