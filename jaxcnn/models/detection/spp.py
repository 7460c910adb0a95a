"""Region-pooling heads on a VGG-style convolutional trunk.

* `SPPNet` (He, Zhang, Ren and Sun, ECCV 2014): the last max pooling is
  replaced by a spatial pyramid pooling layer ({6, 3, 2, 1}, 50 bins, by default, the paper's detector's and
  its ZF-5/Overfeat classifiers' pyramid; (1, 2, 4) is an option), so images of any size give
  a fixed-length vector, then fc6, fc7 (4096, ReLU, dropout) and fc8.
* `FastRCNN` (Girshick, ICCV 2015): one shared feature map from the trunk
  without its last pooling (stride 16 for VGG16), RoI max pooling of every box
  to 7x7, fc6, fc7 (4096), then a classifier `cls_score` (num_classes, the
  background included: 21 for VOC) and a box regressor `bbox_pred`
  (4 * num_classes deltas).

Images NHWC; kernels HWIO. Submodules conv{s}_{i}, fc6, fc7, fc8 /
cls_score, bbox_pred.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxcnn import ops
from jaxcnn.layers import Dense, Flatten
from jaxcnn.models._common import ModuleDef, conv_for, validate_image
from jaxcnn.models.registry import Family, register_family, register_model


def _trunk(x, conv: ModuleDef, stage_sizes, widths, pool_last: bool, pools: int = -1):
    """The VGG-style stages of `conv` (the model's, bound), a 2x2/2 max pooling after each but the last (and
    after the last when pool_last); pools >= 0 keeps only the first `pools` of those poolings (a finer feature
    map, the same weights)."""
    for s, (n, f) in enumerate(zip(stage_sizes, widths), start=1):
        for i in range(1, n + 1):
            x = nn.relu(conv(f, 3, padding=1, name=f"conv{s}_{i}")(x))
        if (s < len(stage_sizes) or pool_last) and (pools < 0 or s <= pools):
            x = ops.max_pool(x, 2, 2)
    return x


class SPPNet(nn.Module):
    """SPP-net classifier: any input size >= 2**(stages-1) -> (N, num_classes)."""

    stage_sizes: Sequence[int] = (2, 2, 3, 3, 3)
    widths: Sequence[int] = (64, 128, 256, 512, 512)
    levels: Sequence[int] = (6, 3, 2, 1)
    pool_mode: str = "max"
    hidden: int = 4096
    dropout_rate: float = 0.5
    num_classes: int = 1000
    in_channels: int = 3
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        validate_image(x, model="spp_net", channels=self.in_channels, min_size=2 ** (len(self.stage_sizes) - 1))
        x = _trunk(x, conv_for(self), self.stage_sizes, self.widths, pool_last=False)
        x = ops.spatial_pyramid_pool(x, tuple(self.levels), self.pool_mode)
        for name in ("fc6", "fc7"):
            x = nn.relu(Dense(self.hidden, dtype=self.dtype, name=name)(x))
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return Dense(self.num_classes, dtype=self.dtype, name="fc8")(x)


class FastRCNN(nn.Module):
    """Fast R-CNN detection head over one shared feature map.

    __call__(x, boxes=None, train=False) -> (cls_logits (R, num_classes),
    bbox_deltas (R, 4 * num_classes)). boxes: (R, 5) rows [batch_index, x1, y1,
    x2, y2] in input-image pixels (see `ops.roi_pool`); None means one
    whole-image box per image (R = N).

    region_pool: "roi" (Fast R-CNN: each region max-pooled to roi_size x roi_size) or "spp" (SPP-net's
    detector: each region pooled by the spatial pyramid `spp_levels`, {6, 3, 2, 1} by default as the paper,
    `ops.roi_spatial_pyramid_pool`). spp_corners: how SPP-net's windows map to feature cells, "he" (He et
    al.'s floor(x/S) + 1 / ceil(x/S) - 1, the default) or "round" (Fast R-CNN's rounding, as "roi").
    The same network on warped crops with boxes=None is R-CNN's classifier (one whole-image region each).
    trunk_pools: how many of the trunk's 2x2 poolings to keep (-1 = all: one after every stage but the last);
    fewer give a finer feature map with the same weights. spatial_scale must be its inverse stride,
    2 ** -trunk_pools (1/16 for VGG16's four).
    cls_init_std, bbox_init_std: the heads start from N(0, 0.01) (cls_score) and N(0, 0.001) (bbox_pred)
    with zero biases, as the paper (section 2.3); 0 = Flax's default initialisation.
    svd_ranks: (k6, k7) replaces fc6 and fc7 by their truncated SVD (section 3.1: W ~ U_k S_k V_k^T as two
    layers without a non-linearity between them, the first without bias, the second with W's): fc6_svd
    (in -> k6, no bias) then fc6 (k6 -> hidden), likewise fc7; () = the dense layers. Trained weights are
    factorised by `truncated_svd_params`; it is a test-time option.
    """

    stage_sizes: Sequence[int] = (2, 2, 3, 3, 3)
    widths: Sequence[int] = (64, 128, 256, 512, 512)
    roi_size: int = 7
    spatial_scale: float = 1 / 16
    hidden: int = 4096
    dropout_rate: float = 0.5
    num_classes: int = 21
    in_channels: int = 3
    conv_mode: str = "cross_correlation"
    dtype: Optional[Any] = None
    region_pool: str = "roi"
    spp_levels: Sequence[int] = (6, 3, 2, 1)
    spp_corners: str = "he"
    trunk_pools: int = -1
    cls_init_std: float = 0.01
    bbox_init_std: float = 0.001
    svd_ranks: Sequence[int] = ()

    @nn.compact
    def __call__(self, x, boxes=None, train: bool = False):
        pools = len(self.stage_sizes) - 1 if self.trunk_pools < 0 else self.trunk_pools
        if abs(self.spatial_scale * 2 ** pools - 1.0) > 1e-9:
            raise ValueError(f"fast_rcnn: spatial_scale {self.spatial_scale:g} does not match the feature map's "
                             f"stride {2 ** pools} ({pools} poolings); set spatial_scale={2.0 ** -pools:g}, or "
                             "trunk_pools to match it.")
        validate_image(x, model="fast_rcnn", channels=self.in_channels, min_size=2 ** pools)
        n, h, w = x.shape[:3]
        if boxes is None:
            boxes = jnp.stack([jnp.arange(n, dtype=jnp.float32), jnp.zeros(n), jnp.zeros(n),
                               jnp.full(n, w - 1.0), jnp.full(n, h - 1.0)], axis=1)
        feats = _trunk(x, conv_for(self), self.stage_sizes, self.widths, pool_last=False,
                       pools=self.trunk_pools)
        if self.region_pool == "roi":
            r = Flatten()(ops.roi_pool(feats, boxes, (self.roi_size, self.roi_size), self.spatial_scale))
        else:  # SPP-net's detector: the pyramid over each window of the one feature map
            r = ops.roi_spatial_pyramid_pool(feats, boxes, tuple(self.spp_levels), self.spatial_scale,
                                             corners=self.spp_corners)
        self.sow("intermediates", "pool5_features", r)  # the region's pooled features (R-CNN's and SPP-net's box regressors)
        for i, name in enumerate(("fc6", "fc7")):
            if self.svd_ranks:
                r = Dense(int(self.svd_ranks[i]), use_bias=False, dtype=self.dtype, name=f"{name}_svd")(r)
            r = nn.relu(Dense(self.hidden, dtype=self.dtype, name=name)(r))
            r = nn.Dropout(self.dropout_rate, deterministic=not train)(r)
        self.sow("intermediates", "fc7_features", r)  # the features R-CNN's and SPP-net's SVMs score

        def head(features, std, name):
            init = dict(kernel_init=nn.initializers.normal(std), bias_init=nn.initializers.zeros) if std else {}
            return Dense(features, dtype=self.dtype, name=name, **init)(r)

        cls = head(self.num_classes, self.cls_init_std, "cls_score")
        bbox = head(4 * self.num_classes, self.bbox_init_std, "bbox_pred")
        return cls, bbox


def truncated_svd_params(params, ranks) -> dict:
    """Fast R-CNN's truncated SVD (section 3.1) of trained FastRCNN params: fc6 and fc7 (kernels (in, out),
    y = x K + b) become fc{6,7}_svd with kernel U_k S_k (in, k) and fc{6,7} with kernel V_k^T (k, out) and the
    original bias, for FastRCNN(svd_ranks=ranks). At full rank the product is K itself."""
    out = {k: v for k, v in params.items()}
    for name, k in zip(("fc6", "fc7"), ranks):
        kernel = np.asarray(params[name]["kernel"], np.float64)
        if not 1 <= int(k) <= min(kernel.shape):
            raise ValueError(f"truncated_svd_params: {name}'s rank must be in 1..{min(kernel.shape)}, got {k}.")
        u, sv, vt = np.linalg.svd(kernel, full_matrices=False)
        dtype = np.asarray(params[name]["kernel"]).dtype
        out[f"{name}_svd"] = {"kernel": (u[:, :k] * sv[:k]).astype(dtype)}
        out[name] = {"kernel": vt[:k].astype(dtype), "bias": np.asarray(params[name]["bias"])}
    return out


POOL_MODES = ("max", "avg")
REGION_POOLS = ("roi", "spp")


def _check_fast_rcnn(fields: dict) -> None:
    most = len(fields["stage_sizes"]) - 1
    if not -1 <= fields["trunk_pools"] <= most:
        raise ValueError(f"fast_rcnn: trunk_pools must be -1 (all) or 0..{most} (one pooling after each of "
                         f"{most + 1} stages but the last), got {fields['trunk_pools']}.")
    if fields["svd_ranks"] and len(fields["svd_ranks"]) != 2:
        raise ValueError(f"fast_rcnn: svd_ranks must be (k6, k7) or (), got {tuple(fields['svd_ranks'])}.")


register_family(SPPNet, Family(head=lambda m: "fc8", choices=dict(pool_mode=POOL_MODES)))
# two heads (cls_score, bbox_pred): no one classifier head
register_family(FastRCNN, Family(choices=dict(region_pool=REGION_POOLS, spp_corners=ops.SPP_CORNERS),
                                 check=_check_fast_rcnn))
register_model("spp_net", SPPNet, input_shape=(224, 224, 3),
               description="SPP-net (He et al. 2014) on VGG16 convs, pyramid 6,3,2,1: any input size")
register_model("fast_rcnn", FastRCNN, input_shape=(224, 224, 3),
               description="Fast R-CNN (Girshick 2015) VGG16 head: RoI pool 7x7, classifier + box regressor")
