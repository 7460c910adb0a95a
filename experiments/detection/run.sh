#!/usr/bin/env bash
# The detection and segmentation experiment: every model x seed through the engine (scripts/train.py), then
# scored on the whole test split (scripts/evaluate.py). Resumable: a finished run is skipped, a killed one
# resumes from its checkpoint; evaluation results (eval_test.json) are kept.
#
#   bash experiments/detection/run.sh detection      # R-CNN, SPP-net, Fast R-CNN, YOLOv1
#   bash experiments/detection/run.sh segmentation   # FCN-32s, -16s, -8s, SegNet
#   SEEDS="0 1 2" RUNS=runs bash experiments/detection/run.sh detection
#
# then: python experiments/detection/report.py   (the table, plots and sample predictions)
set -u
cd "$(dirname "$0")/../.."
PY=${PY:-python}
RUNS=${RUNS:-runs}
SEEDS=${SEEDS:-"0 1 2"}
case "${1:-}" in
  detection) GROUP=detection; MODELS=${MODELS:-"yolov1 fast_rcnn spp_net rcnn fast_rcnn_stride4 spp_net_stride4"} ;;
  segmentation) GROUP=segmentation; MODELS=${MODELS:-"fcn32s fcn16s fcn8s segnet"} ;;
  *) echo "usage: $0 detection|segmentation" >&2; exit 2 ;;
esac
for seed in $SEEDS; do
  for m in $MODELS; do
    wd=$RUNS/$GROUP/$m/seed$seed
    # FCN is staged as the paper: 16s starts from the same seed's 32s, 8s from its 16s (config.init_from)
    case $m in fcn16s) stage=(--config.init_from="$RUNS/$GROUP/fcn32s/seed$seed") ;;
               fcn8s) stage=(--config.init_from="$RUNS/$GROUP/fcn16s/seed$seed") ;; *) stage=() ;; esac
    if [ ! -f "$wd/eval_test.json" ]; then
      echo "== $(date +%T) train $m seed $seed -> $wd (load $(cut -d' ' -f1-3 /proc/loadavg))"
      $PY scripts/train.py --config experiments/configs/$m.py --workdir "$wd" --config.seed=$seed \
        --config.progress=False "${stage[@]}" || { echo "train $m seed $seed failed"; continue; }
      echo "== $(date +%T) evaluate $m seed $seed (load $(cut -d' ' -f1-3 /proc/loadavg))"
      $PY scripts/evaluate.py --workdir "$wd" --split test > "$wd/evaluate.log" 2>&1 \
        || { echo "evaluate $m seed $seed failed: see $wd/evaluate.log"; continue; }
      tail -n 3 "$wd/evaluate.log"
    fi
  done
done
echo "== $(date +%T) $GROUP done"
