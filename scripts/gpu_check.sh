#!/usr/bin/env bash
# jaxcnn on a GPU, in one call (under 8 minutes): correctness against the CPU, ResNet-50 throughput and MFU,
# and the main job's time to 0.90 test accuracy, all written into benchmarks/RESULTS.md's `gpu` section.
#
#   bash scripts/gpu_check.sh                  # on the GPU machine (see benchmarks/README.md, "On a GPU")
#   bash scripts/gpu_check.sh --cpu-smoke --results-dir /tmp/r   # here: the same path, tiny, on the CPU
#
# Steps, each under its own time limit (tests 75 + 180 s, bench 240 s, main job 120 s; about 6 minutes expected
# in all) inside an overall budget (GPU_CHECK_BUDGET_S, default 540 s: under the device call's 600 s), each run
# whatever the previous one did:
#   0. set-up: install the carried wheels (.gpu_carry/wheels, made by scripts/gpu_prepare.sh) into
#      /tmp/site with pip --no-index, point JAXCNN_FASHION_MNIST_DIR at .gpu_carry/fashion-mnist, print the
#      device;
#   1. tests: tests/test_accelerator.py (ops, the CPU-only routes, the parallel modes; then every model family
#      in f32 and bf16) with the accelerator as JAX's default device and the CPU as reference;
#   2. bench: python scripts/bench.py --only gpu (ResNet-50 224x224, batch 256, bf16 and f32: images/s, MFU);
#   3. train: the main job, scripts/train.py --config experiments/configs/default.py, evaluating every 100
#      steps (metrics.jsonl gives the time to 0.90);
#   4. report: python -m benchmarks.gpu_check report: the check's table into RESULTS.md's gpu section (the
#      CPU sections kept), a summary at the end of the output.
# Output: the log, RESULTS.md, results.json, the tests' junit_*.xml and the main job's metrics.jsonl go to $OUT
# when it is set (the device machine's return folder), else to WORK/out. Exit status 0 when every step
# succeeded and every test passed.
#
# Options: --cpu-smoke (JAX on the CPU, two model families, a LeNet-5 benchmark of one round, 20 training
# steps; the wheels are not installed unless GPU_CHECK_INSTALL=1), --results-dir DIR (where RESULTS.md and
# results.json are written; default benchmarks/, so a full run keeps the committed CPU sections; a smoke run
# defaults to WORK/results). Environment: PYTHON (default python3), OUT, GPU_CHECK_BUDGET_S,
# GPU_CHECK_WORK (work folder; default a new /tmp/gpu_check.*), GPU_CHECK_PLATFORMS (default cuda,cpu),
# GPU_CHECK_TEST_WORKERS (pytest-xdist workers on the GPU machine; default 12), GPU_CHECK_XLA_FLAGS (appended
# to XLA_FLAGS for the benchmark only).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SMOKE=0
RESULTS_DIR=""
fail() { echo "error: $*" >&2; exit 2; }
# Arguments are read with set -u in force: a flag without its value is one line, never an unbound variable.
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-smoke) SMOKE=1 ;;
    --results-dir)
      if [ $# -lt 2 ] || [ -z "${2:-}" ] || [ "${2#-}" != "$2" ]; then
        fail "--results-dir needs a folder: --results-dir DIR"
      fi
      RESULTS_DIR=$2; shift ;;
    --results-dir=*) RESULTS_DIR=${1#*=}; [ -n "$RESULTS_DIR" ] || fail "--results-dir= needs a folder: --results-dir=DIR" ;;
    -h|--help) sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
  shift
done
# Every variable read below holds one of its documented values, checked before any work starts.
int_var() {  # NAME VALUE LOW HIGH
  case "$2" in ''|*[!0-9]*) fail "$1=$2 must be an integer in $3..$4; fix or unset it" ;; esac
  [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] || fail "$1=$2 must be an integer in $3..$4; fix or unset it"
}
[ -z "${GPU_CHECK_BUDGET_S+x}" ] || int_var GPU_CHECK_BUDGET_S "$GPU_CHECK_BUDGET_S" 60 86400
[ -z "${GPU_CHECK_TEST_WORKERS+x}" ] || int_var GPU_CHECK_TEST_WORKERS "$GPU_CHECK_TEST_WORKERS" 1 256
case "${GPU_CHECK_INSTALL:-0}" in 0|1) ;; *) fail "GPU_CHECK_INSTALL=${GPU_CHECK_INSTALL} must be 0 or 1; fix or unset it" ;; esac
if [ -n "$RESULTS_DIR" ] && [ -e "$RESULTS_DIR" ] && [ ! -d "$RESULTS_DIR" ]; then
  fail "--results-dir $RESULTS_DIR is a file, not a folder; pass a folder (it is created if missing)"
fi
if [ -n "${GPU_CHECK_WORK:-}" ] && [ -e "$GPU_CHECK_WORK" ] && [ ! -d "$GPU_CHECK_WORK" ]; then
  fail "GPU_CHECK_WORK=$GPU_CHECK_WORK is a file, not a folder; fix or unset it"
fi

PY=${PYTHON:-python3}
# On the CPU nothing is rationed, and a busy machine can be several times slower: the limits are 4x there.
if [ "$SMOKE" = 1 ]; then SCALE=4; else SCALE=1; fi
BUDGET=${GPU_CHECK_BUDGET_S:-$(( 540 * SCALE ))}
WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
OUTDIR=${OUT:-$WORK/out}
mkdir -p "$WORK" "$OUTDIR"
if [ -z "$RESULTS_DIR" ]; then
  if [ "$SMOKE" = 1 ]; then RESULTS_DIR=$WORK/results; else RESULTS_DIR=$ROOT/benchmarks; fi
fi
mkdir -p "$RESULTS_DIR" 2>/dev/null || fail "cannot create --results-dir $RESULTS_DIR; pass a folder you can write"
LOG=$OUTDIR/gpu_check.log
: >"$WORK/steps.tsv"
exec > >(tee -a "$LOG") 2>&1
START=$(date +%s)
export PYTHONUNBUFFERED=1

say() { echo "== gpu_check [$(( $(date +%s) - START ))s] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# step NAME CAP_SECONDS command...: run under min(CAP, what is left of the budget less 20 s for the report),
# record "NAME rc seconds" in WORK/steps.tsv, never stop the script.
step() {
  local name=$1 cap=$(( $2 * SCALE )); shift 2
  local limit; limit=$(( $(left) - 20 ))
  [ "$limit" -gt "$cap" ] && limit=$cap
  if [ "$limit" -lt 15 ]; then
    say "$name: skipped, the budget of ${BUDGET} s is spent"
    printf '%s\t%s\t%s\t%s\n' "$name" 124 0 "skipped: budget spent" >>"$WORK/steps.tsv"
    return
  fi
  say "$name (limit ${limit} s): $*"
  local t0 rc note=""
  t0=$(date +%s)
  timeout --signal=TERM --kill-after=10 "$limit" "$@"
  rc=$?
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && note="killed at its ${limit} s limit"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$note" >>"$WORK/steps.tsv"
  say "$name: exit status $rc after $(( $(date +%s) - t0 )) s"
}

# ---------------------------------------------------------------- 0. set-up
say "start: $(date -Is); repository $ROOT; work $WORK; output $OUTDIR; budget ${BUDGET} s; smoke=$SMOKE"
SITE=${GPU_CHECK_SITE:-/tmp/site}
EXTRA_PATH=""
if [ -d .gpu_carry/wheels ] && { [ "$SMOKE" = 0 ] || [ "${GPU_CHECK_INSTALL:-0}" = 1 ]; }; then
  say "installing $(ls .gpu_carry/wheels/*.whl | wc -l) carried wheels into $SITE"
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      .gpu_carry/wheels/*.whl; then
    EXTRA_PATH=$SITE
  else
    say "error: pip could not install the carried wheels (see above)"
  fi
fi
export PYTHONPATH="$ROOT${EXTRA_PATH:+:$EXTRA_PATH}${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu_carry/fashion-mnist ]; then
  export JAXCNN_FASHION_MNIST_DIR=$ROOT/.gpu_carry/fashion-mnist
fi
export TFDS_DATA_DIR=${TFDS_DATA_DIR:-$WORK/tensorflow_datasets}
if [ "$SMOKE" = 1 ]; then
  export JAX_PLATFORMS=cpu
else
  export JAX_PLATFORMS=${GPU_CHECK_PLATFORMS:-cuda,cpu}  # explicit: tests/conftest.py would otherwise pick cpu
fi

IMPORTS="import ml_collections, tensorflow_datasets, array_record, tensorboardX, grain"
if ! "$PY" -c "$IMPORTS" 2>"$WORK/imports.err"; then
  tail -3 "$WORK/imports.err"
  if [ -n "$EXTRA_PATH" ] && compgen -G ".gpu_carry/fallback/*.whl" >/dev/null; then
    # The image's protobuf is older than the carried packages' generated code needs: use the carried one.
    say "the carried packages do not import with the image's packages; installing .gpu_carry/fallback into $SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      .gpu_carry/fallback/*.whl
  fi
  if ! "$PY" -c "$IMPORTS" 2>"$WORK/imports.err"; then
    tail -3 "$WORK/imports.err"
    say "error: jaxcnn's dependencies do not import: on a bare machine run scripts/gpu_prepare.sh here first" \
        "and carry .gpu_carry (benchmarks/README.md, 'On a GPU')"
  fi
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
  --format=csv 2>&1 | sed 's/^/  /'

PROBE='import jaxcnn.runtime as r; r.configure(); import jax, sys
d, cpu = jax.devices()[0], jax.devices("cpu")[0]
print(f"{d.device_kind} ({jax.default_backend()}, {jax.device_count()} device(s)); jax {jax.__version__}, "
      f"CPU reference {cpu}; XLA:CPU flags {r.xla_cpu_status()}")
sys.exit(0 if (d.platform != "cpu") == (sys.argv[1] == "0") else 3)'
if ! "$PY" -c "$PROBE" "$SMOKE" >"$WORK/device.txt" 2>"$WORK/probe.err"; then
  cat "$WORK/probe.err"
  if grep -qi "flag" "$WORK/probe.err"; then
    say "jaxcnn's XLA:CPU flag was refused by this XLA: retrying with JAXCNN_XLA_CPU_FLAGS=0"
    export JAXCNN_XLA_CPU_FLAGS=0
    "$PY" -c "$PROBE" "$SMOKE" >"$WORK/device.txt" 2>"$WORK/probe.err" || cat "$WORK/probe.err"
  fi
fi
if [ ! -s "$WORK/device.txt" ] || { [ "$SMOKE" = 0 ] && grep -q "(cpu," "$WORK/device.txt"; }; then
  say "error: JAX sees no accelerator (or does not start); device probe said: $(cat "$WORK/device.txt" \
      "$WORK/probe.err" 2>/dev/null | tail -3)"
fi
say "device: $(cat "$WORK/device.txt" 2>/dev/null)"

# ---------------------------------------------------------------- 1. tests
# Two runs, each with its own report, so that a run cut short at its limit loses only its own results: the ops,
# routes and parallel modes first, then the model families.
if [ "$SMOKE" = 1 ]; then
  PYTEST=(env JAXCNN_GPU_CHECK_SMOKE=1 "$PY" -m pytest -q -p no:cacheprovider -rfEs)
else
  # Several pytest-xdist workers share the GPU (no preallocation); a model's tests stay on one worker.
  PYTEST=(env XLA_PYTHON_CLIENT_PREALLOCATE=false "$PY" -m pytest -q -p no:cacheprovider -rfEs
          -n "${GPU_CHECK_TEST_WORKERS:-12}" --dist loadgroup)
fi
step tests 75 "${PYTEST[@]}" --junitxml="$WORK/junit_ops.xml" -k "not _model_" tests/test_accelerator.py
step tests_models 180 "${PYTEST[@]}" --junitxml="$WORK/junit_models.xml" -k "_model_" tests/test_accelerator.py

# ---------------------------------------------------------------- 2. bench
if [ "$SMOKE" = 1 ]; then
  step bench 120 "$PY" scripts/bench.py --only gpu --quick --models lenet5_modern --rounds 1 --no-torch \
    --out "$RESULTS_DIR"
else
  BENCH_FLAGS=()
  [ -n "${GPU_CHECK_XLA_FLAGS:-}" ] && BENCH_FLAGS=("--xla-flags=$GPU_CHECK_XLA_FLAGS")
  step bench 240 "$PY" scripts/bench.py --only gpu --no-torch --out "$RESULTS_DIR" "${BENCH_FLAGS[@]}"
fi

# ---------------------------------------------------------------- 3. the main job
TRAIN=(scripts/train.py --config experiments/configs/default.py --config.progress=False)
if [ "$SMOKE" = 1 ]; then
  TRAIN+=(--config.num_steps=20 --config.eval_every=10 --config.log_every=10 --config.eval_examples=500
          --config.batch_size=32 --config.checkpoint_every=0)
else
  TRAIN+=(--config.eval_every=100)
fi
echo "${TRAIN[*]}" | sed 's/ --config.progress=False//' >"$WORK/main_job_command.txt"
step train 120 "$PY" "${TRAIN[@]}" --workdir "$WORK/main_job"

# ---------------------------------------------------------------- 4. report
say "report"
if [ "$SMOKE" = 1 ]; then
  "$PY" -m benchmarks.gpu_check report --results-dir "$RESULTS_DIR" --work "$WORK" --smoke \
    --command "bash scripts/gpu_check.sh --cpu-smoke"
else
  "$PY" -m benchmarks.gpu_check report --results-dir "$RESULTS_DIR" --work "$WORK" \
    --command "bash scripts/gpu_check.sh"
fi
status=$?
for f in "$RESULTS_DIR/RESULTS.md" "$RESULTS_DIR/results.json" "$WORK/junit_ops.xml" "$WORK/junit_models.xml"; do
  [ -f "$f" ] && [ "$(dirname "$(realpath "$f")")" != "$(realpath "$OUTDIR")" ] && cp "$f" "$OUTDIR/"
done
[ -f "$WORK/main_job/metrics.jsonl" ] && cp "$WORK/main_job/metrics.jsonl" "$OUTDIR/main_job_metrics.jsonl"
say "done in $(( $(date +%s) - START )) s, exit status $status; files in $OUTDIR: $(ls "$OUTDIR" | tr '\n' ' ')"
exit $status
