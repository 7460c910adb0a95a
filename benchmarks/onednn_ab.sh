#!/usr/bin/env bash
# The native extension built against two oneDNNs, timed side by side (benchmarks/onednn_ab.py).
#
#   bash benchmarks/onednn_ab.sh prepare   # copy the tree twice, build each copy's extension (niced; no timing)
#   bash benchmarks/onednn_ab.sh run       # alternate A, B, B, A, ... processes, then print the comparison
#   bash benchmarks/onednn_ab.sh           # both
#
# A is the oneDNN of the Python prefix (PyPI's onednn-cpu-gomp 3.2), B the one under ROOT_B. Settings
# (environment): PY, TREE (the git checkout whose REV is copied), ROOT_A, ROOT_B, WORK, PROCS (processes
# per build), ROUNDS (interleaved rounds per process), MODELS (train cases, or none), OPS (ops shapes
# whose label holds one of these words, or all), EXTRA (more `measure` options, e.g. --quick --no-torch).
set -euo pipefail
PY=${PY:-python}
TREE=${TREE:-$(cd "$(dirname "$0")/.." && pwd)}
REV=${REV:-HEAD}
ROOT_A=${ROOT_A:-$("$PY" -c 'import sys; print(sys.prefix)')}
ROOT_B=${ROOT_B:?set ROOT_B to the prefix of the second oneDNN (include/oneapi/dnnl/dnnl.hpp and lib/libdnnl.so), e.g. a build of upstream v3.12.1 installed there}
WORK=${WORK:-/tmp/onednn_ab}
PROCS=${PROCS:-3}
ROUNDS=${ROUNDS:-4}
MODELS=${MODELS:-vgg11,resnet20}
OPS=${OPS:-vgg,resnet}
EXTRA=${EXTRA:-}
unset LD_LIBRARY_PATH LD_PRELOAD  # each extension finds its libdnnl.so.3 through its own run path

prepare() {
  local rev side root dir
  rev=$(git -C "$TREE" rev-parse "$REV")
  for side in a b; do
    root=$ROOT_A; [ "$side" = b ] && root=$ROOT_B
    dir=$WORK/$side
    if [ "$(cat "$dir/.rev" 2>/dev/null)" != "$rev $root" ]; then
      rm -rf "$dir" && mkdir -p "$dir"
      git -C "$TREE" archive "$rev" | tar -x -C "$dir"
    fi
    (cd "$dir" && JAXCNN_DNNL_ROOT=$root nice -n 19 "$PY" -m jaxcnn.ops.native.build > "$dir/build.log" 2>&1) \
      || { tail -20 "$dir/build.log" >&2; echo "$side: extension build failed ($dir/build.log)" >&2; exit 1; }
    echo "$rev $root" > "$dir/.rev"
    echo "$side: $(ldd "$dir/jaxcnn/ops/native/_dnnl_conv.so" | grep -o 'libdnnl[^ ]* => [^ ]*'); oneDNN" \
      "$(cd "$dir" && PYTHONPATH=$dir "$PY" -c 'from jaxcnn.ops import native; print(native.dnnl_version())')"
  done
}

run() {
  local res i side order
  [ -e "$WORK/a/.rev" ] && [ -e "$WORK/b/.rev" ] || { echo "run '$0 prepare' first" >&2; exit 1; }
  res=$WORK/results-$(date -u +%Y%m%dT%H%M%S)
  mkdir -p "$res"
  echo "results in $res; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for i in $(seq 1 "$PROCS"); do
    order="a b"; [ $((i % 2)) = 0 ] && order="b a"
    for side in $order; do
      echo "== process $i, build $side"
      # shellcheck disable=SC2086
      (cd "$WORK/$side" && PYTHONPATH=$WORK/$side "$PY" -m benchmarks.onednn_ab measure --out "$res/$side-$i.json" \
        --models "$MODELS" --ops "$OPS" --rounds "$ROUNDS" $EXTRA)
    done
  done
  (cd "$WORK/a" && PYTHONPATH=$WORK/a "$PY" -m benchmarks.onednn_ab compare "$res"/a-*.json -- "$res"/b-*.json) \
    | tee "$res/compare.txt"
  echo "run took ${SECONDS} s; load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$res/compare.txt"
}

case "${1:-all}" in
  prepare) prepare ;;
  run) run ;;
  all) prepare && run ;;
  *) echo "usage: $0 [prepare|run|all]" >&2; exit 2 ;;
esac
