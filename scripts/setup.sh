#!/usr/bin/env bash
# Set up a fresh machine for jaxcnn: Debian's Fashion-MNIST files (the offline
# default dataset) and a virtual environment .venv with jaxcnn and its test
# extras. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,plots]"

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
