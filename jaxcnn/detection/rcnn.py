"""R-CNN's and SPP-net's second stage: per-class linear SVMs and box regressors on the fine-tuned network's
features, and detection of a split with them.

    stage = fit_second_stage(model, variables, preprocess, kind, train)   # kind "rcnn" or "spp_net"
    dets, seconds = detect(model, variables, preprocess, kind, stage, test)

Where the region is cut out is the only difference between the two:

* R-CNN (Girshick et al. 2014): every region is warped to 32x32 (2 px of context,
  `jaxcnn.data.proposals.warp_crops`) and the CNN runs on each crop: one pass per region.
* SPP-net (He et al. 2014): the CNN runs once per image; each region's window of the feature map is pooled
  by the spatial pyramid (the model's region_pool="spp").

Both then take, as in the papers:

* SVMs (R-CNN section 2.3 and appendix B): one linear SVM per class on the fc7 features (after ReLU);
  positives the ground-truth boxes of the class, negatives the regions under IoU 0.3 with every box of the
  class, the rest ignored. The loss is R-CNN's (its code's LIBLINEAR settings, -s 3 -c 0.001 -w1 2 -B 10):
  L2-regularised hinge, C = 0.001, positives' loss weighted 2, the bias a weight on a constant feature of 10
  (regularised with the rest), on features scaled to a mean L2 norm of 20. Solved here in JAX by full-batch
  Adam (`train_svms`). Hard-negative mining (`train_svms_hard_negatives`, config detection.
  svm_hard_negative_mining; on in experiments/configs/rcnn.py): R-CNN's second stage, the SVMs trained on the
  positives and a cache of negatives grown over epochs through the training images, each chunk of images
  adding the negatives the current SVMs score inside the margin (s > -1), the SVMs retrained after each chunk
  and the cached negatives scored below -1.2 (easy) evicted. Off, every negative is used at once.
* box regression (R-CNN appendix C): per class, ridge regression from the pooled conv features (R-CNN's
  pool5; SPP-net's pyramid) of regions with IoU >= 0.6 to their ground truth, to R-CNN's (t_x, t_y, t_w,
  t_h), lambda = 1000 on standardised features (`fit_box_regressors`).

Test: every proposal scored by the 10 SVMs, its box regressed per class, per-class NMS at IoU 0.3, at most
100 detections per image.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcnn.data.proposals import iou_matrix, warp_crops
from jaxcnn.models.detection import boxes as B

KINDS = ("rcnn", "spp_net")
SVM_NEG_IOU = 0.3
REG_IOU = 0.6
REG_LAMBDA = 1000.0


def _regions(data, with_gt: bool):
    """Per image: its valid proposals (and ground truth), as (image_index (M,), boxes (M, 4), is_gt (M,))."""
    idx, regions, is_gt = [], [], []
    lab = data.labels
    for i in range(len(data)):
        p = lab["proposals"][i]
        p = p[(p[:, 2] > p[:, 0]) & (p[:, 3] > p[:, 1])]
        parts, gt_flags = [p], [np.zeros(len(p), bool)]
        if with_gt:
            g = lab["boxes"][i][lab["classes"][i] >= 0]
            parts.append(g)
            gt_flags.append(np.ones(len(g), bool))
        r = np.concatenate(parts)
        idx.append(np.full(len(r), i))
        regions.append(r)
        is_gt.append(np.concatenate(gt_flags))
    return np.concatenate(idx), np.concatenate(regions).astype(np.float32), np.concatenate(is_gt)


def make_extractor(model, variables, preprocess, kind: str):
    """features(images, image_index, regions) -> (pool5 (M, D5), fc7 (M, D7), softmax (M, K+1)) as numpy."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def run(x, rows):
        out, state = model.apply(variables, preprocess(x, None, False), rows, train=False, mutable=["intermediates"])
        inter = state["intermediates"]
        return inter["pool5_features"][0], inter["fc7_features"][0], jax.nn.softmax(out[0].astype(jnp.float32), -1)

    run = jax.jit(run)

    def features(images, image_index, regions, batch: int = 1024, p_max: int = 165):
        outs = []
        if kind == "rcnn":  # one CNN pass per region: warp every region, then the network on each crop
            for s in range(0, len(regions), batch):
                crops = warp_crops(images, image_index[s:s + batch], regions[s:s + batch])
                m = len(crops)
                if m < batch:
                    crops = np.concatenate([crops, np.zeros((batch - m,) + crops.shape[1:], crops.dtype)])
                outs.append([np.asarray(o)[:m] for o in run(crops, None)])
        else:  # one CNN pass per image: every region of a group of images pooled from their feature maps
            per = 32
            order = np.arange(len(images))
            for s in range(0, len(images), per):
                imgs = order[s:s + per]
                sel = np.flatnonzero(np.isin(image_index, imgs))
                rows = np.concatenate([(image_index[sel] - s)[:, None].astype(np.float32),
                                       regions[sel, :2], regions[sel, 2:] - 1], 1)
                x = images[imgs]
                if len(x) < per:
                    x = np.concatenate([x, np.zeros((per - len(x),) + x.shape[1:], x.dtype)])
                pad = per * p_max - len(rows)  # one static region count: one compilation
                rows = np.concatenate([rows, np.tile([[0, 0, 0, 1, 1]], (pad, 1)).astype(np.float32)])
                outs.append([np.asarray(o)[:len(sel)] for o in run(x, rows)])
        return tuple(np.concatenate([o[k] for o in outs]) for k in range(3))

    return features


SVM_C = 1e-3  # R-CNN's rcnn_train.m: LIBLINEAR -c 0.001
SVM_POS_WEIGHT = 2.0  # -w1 2
SVM_BIAS_FEATURE = 10.0  # -B 10
FEATURE_NORM = 20.0  # rcnn_scale_features: features scaled to this mean L2 norm
HARD_THRESHOLD, EASY_THRESHOLD = -1.0, -1.2  # a negative scored above -1 violates the margin; below -1.2 is easy


@functools.partial(jax.jit, static_argnames=("steps",))
def _fit_hinge(x, y, c, pos_weight, steps, learning_rate):
    pos, neg = (y > 0).astype(jnp.float32), (y < 0).astype(jnp.float32)
    a = pos_weight * pos + neg  # 0 where ignored

    def loss(p):
        s = x @ p["w"] + SVM_BIAS_FEATURE * p["wb"]
        reg = 0.5 * (jnp.sum(p["w"] ** 2, 0) + p["wb"] ** 2)
        return jnp.sum(reg + c * jnp.sum(a * jnp.maximum(0, 1 - y * s), 0))

    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
    p = {"w": jnp.zeros((x.shape[1], y.shape[1])), "wb": jnp.zeros((y.shape[1],))}

    def body(carry, _):
        p, st = carry
        u, st = tx.update(jax.grad(loss)(p), st, p)
        return (optax.apply_updates(p, u), st), None

    (p, _), _ = jax.lax.scan(body, (p, tx.init(p)), None, length=steps)
    return p["w"], SVM_BIAS_FEATURE * p["wb"]


def train_svms(features, targets, *, c: float = SVM_C, pos_weight: float = SVM_POS_WEIGHT, steps: int = 1000,
               learning_rate: float = 0.02):
    """One linear SVM per column of targets ((M, K) in {+1, -1, 0 = ignore}) on (M, D) features, R-CNN's:
    minimise 0.5 (|w|^2 + w_b^2) + C * sum_i a_i max(0, 1 - y_i (w.x_i + 10 w_b)) with a_i = pos_weight for
    positives and 1 for negatives (LIBLINEAR -s 3 -c C -w1 pos_weight -B 10); b = 10 w_b. Full-batch Adam,
    its rate cosine-decayed to 0. -> (W (D, K), b (K,))."""
    w, b = _fit_hinge(jnp.asarray(features, jnp.float32), jnp.asarray(targets, jnp.float32), jnp.float32(c),
                      jnp.float32(pos_weight), int(steps), jnp.float32(learning_rate))
    return np.asarray(w), np.asarray(b)


def _padded(rows: np.ndarray) -> np.ndarray:
    """rows padded (with -1) to the next power of two: few distinct sizes, few compilations."""
    size = 1 << max(int(len(rows)) - 1, 0).bit_length()
    return np.concatenate([rows, np.full(size - len(rows), -1)])


def train_svms_hard_negatives(features, targets, image_index, *, epochs: int = 1, chunks: int = 5, **kw):
    """R-CNN's hard-negative mining (section 2.3; rcnn_train.m): the SVMs of `train_svms` trained on the
    positives and a cache of negatives. Each epoch goes over the images in `chunks` groups: the group's
    negatives (per class) that the current SVMs score above -1 (margin violators) join the cache, the SVMs are
    retrained on the cache, and cached negatives now scored below -1.2 leave it. The first group starts from
    w = 0, where every negative violates the margin. image_index (M,): each row's image, in increasing order.
    -> (W, b, {"cached_negatives", "retrains"})."""
    x = np.asarray(features, np.float32)
    y = np.asarray(targets, np.float32)
    image_index = np.asarray(image_index)
    if len(image_index) != len(y) or np.any(np.diff(image_index) < 0):
        raise ValueError("train_svms_hard_negatives: image_index must give each row's image, in increasing order "
                         "(the rows grouped by image); sort the rows by image first.")
    cache = y > 0
    k = y.shape[1]
    w, b = np.zeros((x.shape[1], k), np.float32), np.zeros(k, np.float32)
    images = np.unique(image_index)
    bounds = np.searchsorted(image_index, images[np.linspace(0, len(images), chunks + 1).astype(int)[1:-1]])
    retrains = 0
    for _ in range(epochs):
        for rows in np.split(np.arange(len(y)), bounds):
            scores = x[rows] @ w + b
            cache[rows] |= (y[rows] < 0) & (scores > HARD_THRESHOLD)
            used = np.flatnonzero(cache.any(1))
            sel = _padded(used)
            yt = np.where(cache, y, 0.0)[np.maximum(sel, 0)] * (sel >= 0)[:, None]
            w, b = train_svms(x[np.maximum(sel, 0)], yt, **kw)
            retrains += 1
            easy = (y < 0) & cache & (x @ w + b < EASY_THRESHOLD)
            cache &= ~easy
    return w, b, {"cached_negatives": int(((y < 0) & cache).sum()), "retrains": retrains}


def fit_box_regressors(features, regions, gt_boxes, classes, num_classes: int, lam: float = REG_LAMBDA):
    """Per class ridge regression from standardised features to R-CNN's targets (unnormalised deltas).
    features (M, D) of regions (M, 4) matched to gt_boxes (M, 4) of class classes (M,) (-1: not used).
    -> {"mean", "std", "w" (K, D + 1, 4)}."""
    mean, std = features.mean(0), features.std(0) + 1e-6
    z = np.concatenate([(features - mean) / std, np.ones((len(features), 1), features.dtype)], 1)
    t = np.asarray(B.encode(jnp.asarray(gt_boxes), jnp.asarray(regions), stds=(1.0, 1.0, 1.0, 1.0)))
    w = np.zeros((num_classes, z.shape[1], 4), np.float32)
    reg = lam * np.eye(z.shape[1])
    reg[-1, -1] = 0  # the bias is not penalised
    for k in range(num_classes):
        sel = classes == k
        if sel.sum() >= 2:
            zk = z[sel].astype(np.float64)
            w[k] = np.linalg.solve(zk.T @ zk + reg, zk.T @ t[sel])
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32), "w": w}


def fit_second_stage(model, variables, preprocess, kind: str, train, num_classes: int = 10, *,
                     hard_negative_mining: bool = False, hard_negative_epochs: int = 1, c: float = SVM_C,
                     pos_weight: float = SVM_POS_WEIGHT) -> dict:
    """Features of every proposal and ground-truth box of `train` (an ArrayDataset with proposals), then the
    SVMs (with hard-negative mining or on every negative; see the module docstring) and the box regressors.
    -> {"svm_w", "svm_b", "reg_mean", "reg_std", "reg_w", "counts"}; svm_w takes the unscaled fc7 features
    (the feature scaling is folded into it)."""
    features = make_extractor(model, variables, preprocess, kind)
    idx, regions, is_gt = _regions(train, with_gt=True)
    pool5, fc7, _ = features(train.images, idx, regions)
    lab = train.labels
    targets = np.zeros((len(regions), num_classes), np.float32)
    reg_gt = np.zeros((len(regions), 4), np.float32)
    reg_cls = np.full(len(regions), -1)
    for i in range(len(train)):
        sel = np.flatnonzero(idx == i)
        ok = lab["classes"][i] >= 0
        g, gc = lab["boxes"][i][ok], lab["classes"][i][ok]
        iou = iou_matrix(regions[sel], g)  # (m, G)
        for k in range(num_classes):
            of_k = gc == k
            best = iou[:, of_k].max(1) if of_k.any() else np.zeros(len(sel))
            targets[sel, k] = np.where(best < SVM_NEG_IOU, -1.0, 0.0)
        gt_here = is_gt[sel]
        targets[sel[gt_here], gc[iou[gt_here].argmax(1)]] = 1.0  # ground truth: positive for its class
        best, match = iou.max(1), iou.argmax(1)
        good = best >= REG_IOU
        reg_gt[sel[good]] = g[match[good]]
        reg_cls[sel[good]] = gc[match[good]]
    scale = FEATURE_NORM / max(float(np.linalg.norm(fc7, axis=1).mean()), 1e-12)
    counts = {}
    if hard_negative_mining:
        w, b, counts = train_svms_hard_negatives(fc7 * scale, targets, idx, epochs=hard_negative_epochs, c=c,
                                                 pos_weight=pos_weight)
    else:
        w, b = train_svms(fc7 * scale, targets, c=c, pos_weight=pos_weight)
    reg = fit_box_regressors(pool5, regions, reg_gt, reg_cls, num_classes)
    return {"svm_w": w * scale, "svm_b": b, "reg_mean": reg["mean"], "reg_std": reg["std"], "reg_w": reg["w"],
            "counts": {"regions": int(len(regions)), "positives": int((targets > 0).sum()),
                       "negatives": int((targets < 0).sum()), "regression": int((reg_cls >= 0).sum()),
                       "hard_negative_mining": bool(hard_negative_mining), **counts}}


def detect(model, variables, preprocess, kind: str, stage: dict, data, *, nms_iou: float = 0.3):
    """Detections of every image of `data` (with proposals) by the SVMs and box regressors of `stage`.
    -> (list of per-image dicts of numpy boxes/scores/classes/keep, seconds of the whole detection (features,
    SVMs, regression, NMS), the mean number of CNN passes per image)."""
    features = make_extractor(model, variables, preprocess, kind)
    idx, regions, _ = _regions(data, with_gt=False)
    h, w = data.images.shape[1:3]
    p_max = data.labels["proposals"].shape[1]

    @jax.jit
    def post(pool5, fc7, rois, valid):  # (C, P, D5), (C, P, D7), (C, P, 4), (C, P) for a chunk of C images
        scores = fc7 @ stage["svm_w"] + stage["svm_b"]
        z = jnp.concatenate([(pool5 - stage["reg_mean"]) / stage["reg_std"], jnp.ones(pool5.shape[:2] + (1,))], -1)
        deltas = jnp.einsum("cpd,kdt->cpkt", z, stage["reg_w"])
        bx = B.decode(deltas, rois[:, :, None], stds=(1.0, 1.0, 1.0, 1.0), clip_to=(h, w))
        return jax.vmap(lambda s, b, v: B.detections(s, b, v, nms_iou=nms_iou))(scores, bx, valid)

    chunk = 100
    slot = np.zeros(len(idx), int)  # each region's row in its image's padded block
    for i in np.unique(idx):
        sel = np.flatnonzero(idx == i)
        slot[sel] = np.arange(len(sel))

    def run_all(images, idx, regions):
        pool5, fc7, _ = features(images, idx, regions)
        n = len(images)
        n_pad = -(-n // chunk) * chunk
        P5 = np.zeros((n_pad, p_max, pool5.shape[1]), np.float32)
        F7 = np.zeros((n_pad, p_max, fc7.shape[1]), np.float32)
        R = np.tile(np.asarray([0, 0, 1, 1], np.float32), (n_pad, p_max, 1))
        V = np.zeros((n_pad, p_max), bool)
        P5[idx, slot[:len(idx)]], F7[idx, slot[:len(idx)]] = pool5, fc7
        R[idx, slot[:len(idx)]], V[idx, slot[:len(idx)]] = regions, True
        outs = [post(P5[c:c + chunk], F7[c:c + chunk], R[c:c + chunk], V[c:c + chunk]) for c in range(0, n_pad, chunk)]
        outs = {key: np.concatenate([np.asarray(o[key]) for o in outs])[:n] for key in outs[0]}
        return [{key: v[i] for key, v in outs.items()} for i in range(n)]

    first = idx == 0
    run_all(data.images[:1], idx[first], regions[first])  # compile outside the timing
    t0 = time.perf_counter()
    dets = run_all(data.images, idx, regions)
    seconds = time.perf_counter() - t0
    passes = float(len(regions)) / len(data) if kind == "rcnn" else 1.0
    return dets, seconds, passes
