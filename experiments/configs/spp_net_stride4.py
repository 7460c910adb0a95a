"""SPP-net on a finer feature map: spp_net.py's network (the pyramid {6, 3, 2, 1} over each window), data
and budget with the trunk's last pooling dropped (trunk_pools=2: stride 4, a 16x16 map of a 64x64 canvas,
spatial_scale 1/4). The same weights; the convolutions after the second pooling see 4x the positions. The
same test as fast_rcnn_stride4.py, for the other region-pooling method.

    python scripts/train.py --config experiments/configs/spp_net_stride4.py --workdir runs/detection/spp_net_stride4/seed0
"""

import os

from jaxcnn.train.cli import load_config


def get_config():
    c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "spp_net.py"))
    c.model.update(dict(trunk_pools=2, spatial_scale=0.25))
    return c
