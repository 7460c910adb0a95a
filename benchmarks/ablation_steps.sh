#!/usr/bin/env bash
# Time every ablation's train steps in two checkouts, alternating them ablation by ablation (the older first
# for every other ablation), with the newer checkout's ablation configs in both, then print the comparison.
#   benchmarks/ablation_steps.sh OLDER_CHECKOUT NEWER_CHECKOUT [OUT.jsonl] [ROUNDS]
# Each checkout needs its native kernels built and a copy of benchmarks/ablation_steps.py (see its docstring).
set -euo pipefail
older=$(cd "$1" && pwd); newer=$(cd "$2" && pwd); out=${3:-/tmp/ablation_steps.jsonl}; rounds=${4:-5}
py=${PYTHON:-python}
names=${ABLATIONS:-$(cd "$newer/experiments/ablations" && ls *.py | sed "s/\.py$//" | grep -v "^_")}
names=${names//,/ }
i=0
for name in $names; do
  if (( i % 2 )); then order="$newer $older"; else order="$older $newer"; fi
  for dir in $order; do
    (cd "$dir" && PYTHONPATH="$dir" $py -m benchmarks.ablation_steps --dir "$newer/experiments/ablations" \
      --ablations "$name" --rounds "$rounds" --json "$out")
  done
  i=$((i + 1))
done
(cd "$newer" && PYTHONPATH="$newer" $py -m benchmarks.ablation_steps --compare "$out")
