#!/usr/bin/env bash
# Set up a fresh machine for jaxcnn: Debian's Fashion-MNIST files (the offline
# default dataset), a virtual environment .venv with jaxcnn and every extra
# but torch (jaxcnn[all]; docs/install.md), and on Linux x86-64 the native CPU convolutions (oneDNN from PyPI,
# compiled with g++). Safe to run again: it only installs or builds what is
# missing or out of date.
set -euo pipefail
case "${1:-}" in  # no arguments (set -u safe): a stray one is refused, not ignored
  '') ;;
  -h|--help) sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "error: bash scripts/setup.sh takes no arguments, got $1 (see --help)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."

native=0
if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then native=1; fi

missing=()
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || missing+=(dataset-fashion-mnist)
if [ "$native" = 1 ] && ! command -v g++ >/dev/null 2>&1; then missing+=(g++); fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# [all]: data, train, detection, native (its oneDNN wheels are Linux x86-64 only) and test; torch is below.
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[all]"

# The oneDNN convolution extension (jaxcnn.ops.native): rebuilt only when its
# source, the XLA FFI headers or the command changed. Elsewhere jaxcnn uses
# XLA's convolutions.
if [ "$native" = 1 ]; then
  .venv/bin/python -m jaxcnn.ops.native.build
else
  echo "setup: native CPU convolutions are built on Linux x86-64 only; XLA's convolutions are used here"
fi

# torch is optional: the weight-import tests and the benchmarks use it. Install
# it only where the machine offers a local CPU wheel through pip's find-links,
# never as a multi-GB download; without it those tests are skipped.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  links=$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true)
  tag=$(.venv/bin/python -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  wheel=$(ls "${links:-/nonexistent}"/torch-*cpu*-"$tag"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -n "$wheel" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check "$wheel"
  else
    echo "setup: no local CPU build of torch; the torch-based tests will be skipped"
  fi
fi
