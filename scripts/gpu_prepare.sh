#!/usr/bin/env bash
# Fill .gpu_carry/ (ignored by git) with what scripts/gpu_check.sh needs on a bare GPU machine:
#
#   .gpu_carry/wheels/         the Python packages jaxcnn needs that the device image lacks, as Python 3.12
#                              x86-64 wheels (one version of each), installed there with pip --no-index
#   .gpu_carry/fashion-mnist/  the four original Fashion-MNIST IDX .gz files the main job reads
#                              (through JAXCNN_FASHION_MNIST_DIR)
#
# Run it HERE (a machine that reaches PyPI), from anywhere in the repository:
#
#   bash scripts/gpu_prepare.sh          # downloads what is missing, checks requirements and sizes
#
# The device machine gets only the git working tree and the paths a `run` call names in `carry` (64 MiB in
# all), so the device call carries `.gpu_carry` (see benchmarks/README.md, "On a GPU"). This script refuses
# to finish if the wheels leave a requirement unmet (neither carried nor in the device image's package list
# below) or if the tree plus the carry would exceed 64 MiB.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY="$ROOT/.gpu_carry"
WHEELS="$CARRY/wheels"
DATA="$CARRY/fashion-mnist"
PY=${PYTHON:-python3}
LIMIT_BYTES=$((64 * 1024 * 1024))

# What jaxcnn imports that the device image (KINDS.md's list for nvidia-h200, 2026-11-17) does not hold, and
# the requirements of those that it does not hold either. Versions: the ones the project's own CPU
# environment runs (tested together). grain: the data pipeline; promise has no wheel on PyPI (sdist only,
# pure Python): it is built here into a py3-none-any wheel.
PACKAGES=(
  ml_collections==1.1.0
  tensorflow-datasets==4.9.10
  array_record==0.8.6
  tensorboardX==2.6.5
  grain==0.2.18
  dm-tree==0.1.10
  immutabledict==4.3.1
  promise==2.3
  simple-parsing==0.1.9
  docstring-parser==0.18.0
  tensorflow-metadata==1.21.0
  googleapis-common-protos==1.76.0
  termcolor==3.3.0
  toml==0.10.2
  portpicker==1.6.0
)

# The device image's Python packages (KINDS.md, "Python packages already there", nvidia-h200).
DEVICE_HAS="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server
tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric
torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3
uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp"

PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

mkdir -p "$WHEELS" "$DATA"

norm() {  # a distribution name as wheel files spell it: lower case, runs of -_. as _
  echo "$1" | tr 'A-Z' 'a-z' | sed -E 's/[-_.]+/_/g'
}

for spec in "${PACKAGES[@]}"; do
  name=${spec%%==*}
  version=${spec##*==}
  stem=$(norm "$name")
  if compgen -G "$WHEELS/${stem}-${version}-*.whl" >/dev/null; then
    continue
  fi
  rm -f "$WHEELS/${stem}"-*.whl  # another version: keep one of each
  echo "downloading $spec"
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${PLATFORMS[@]}" -d "$WHEELS" "$spec" 2>/dev/null; then
    # No wheel for Python 3.12 on x86-64 Linux: build one from the sdist, and accept it only if it is pure Python.
    echo "  no binary wheel; building $spec from its source distribution (pure Python only)"
    tmp=$(mktemp -d)
    "$PY" -m pip wheel -q --no-deps --no-binary=:all: -w "$tmp" "$spec"
    built=$(ls "$tmp"/*.whl)
    case "$built" in
      *-py3-none-any.whl|*-py2.py3-none-any.whl) mv "$built" "$WHEELS/" ;;
      *) echo "error: $spec built a platform wheel ($built): it would not run on the device" >&2; exit 1 ;;
    esac
    rm -rf "$tmp"
  fi
done

# Every carried wheel's requirements (markers evaluated for CPython 3.12 on x86-64 Linux; extras skipped)
# must be carried too or be in the device image; and none may be two versions of one package.
"$PY" - "$WHEELS" "$DEVICE_HAS" <<'EOF'
import re, sys, zipfile
from pathlib import Path
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement

wheels, device = Path(sys.argv[1]), set(sys.argv[2].split())
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
       "os_name": "posix", "platform_machine": "x86_64", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "extra": ""}
carried, problems = {}, []
for whl in sorted(wheels.glob("*.whl")):
    name = norm(whl.name.split("-")[0])
    if name in carried:
        problems.append(f"two versions of {name}: {carried[name].name} and {whl.name}")
    carried[name] = whl
    if name in {norm(d) for d in device}:
        problems.append(f"{whl.name} is already in the device image: carrying it would shadow the image's version")
for name, whl in carried.items():
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        dep = norm(req.name)
        if dep not in carried and dep not in {norm(d) for d in device}:
            problems.append(f"{whl.name} requires {req} : neither carried nor in the device image")
if problems:
    print("error: the carried wheels do not add up:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"wheels: {len(carried)} packages, every requirement carried or in the device image")
EOF

# The main job's data: Debian's dataset-fashion-mnist files (or $JAXCNN_FASHION_MNIST_DIR).
SRC=${JAXCNN_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  if [ ! -s "$DATA/$f" ]; then
    if [ ! -s "$SRC/$f" ]; then
      echo "error: $SRC/$f not found: apt-get install dataset-fashion-mnist (or set JAXCNN_FASHION_MNIST_DIR)" >&2
      exit 1
    fi
    cp "$SRC/$f" "$DATA/$f"
  fi
done

# What one device call sends: the working tree (tracked and untracked-not-ignored files) plus the carry.
cd "$ROOT"
if ! git check-ignore -q .gpu_carry; then
  echo "error: .gpu_carry is not ignored by git (add /.gpu_carry/ to .gitignore): it must travel as 'carry'" >&2
  exit 1
fi
tree_bytes=$(git ls-files -z -co --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s+=$1} END {print s+0}')
wheel_bytes=$(du -sb "$WHEELS" | cut -f1)
data_bytes=$(du -sb "$DATA" | cut -f1)
total=$((tree_bytes + wheel_bytes + data_bytes))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "sizes: working tree $(mib "$tree_bytes"), wheels $(mib "$wheel_bytes"), data $(mib "$data_bytes");" \
     "one device call sends $(mib "$total") of the 64 MiB limit"
if [ "$total" -gt "$LIMIT_BYTES" ]; then
  echo "error: over the device call's 64 MiB limit" >&2
  exit 1
fi
echo "ready: carry .gpu_carry (see benchmarks/README.md, 'On a GPU')"
