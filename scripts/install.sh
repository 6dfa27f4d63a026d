#!/usr/bin/env bash
# Create .venv and install r2d into it. Chooses the PyTorch build before anything else can pull one:
#  - a machine with an NVIDIA GPU keeps (or gets) PyPI's default CUDA build;
#  - a machine without one gets the CPU build: a local wheel if pip can find one offline
#    (find-links / a local index), else PyTorch's CPU index. A bare `torch` requirement would
#    otherwise pull a multi-GB CUDA wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }

if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "install: torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') already present"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "install: NVIDIA GPU found, installing the CUDA build of torch"
  pip install "torch==${TORCH_VERSION}"
else
  echo "install: no GPU, installing the CPU build of torch ${TORCH_VERSION}"
  # Offline first, without deps (a local wheel dir rarely holds torch's dependencies); the
  # second call then fetches those dependencies from PyPI with torch already satisfied.
  if pip install --no-index --no-deps "torch==${TORCH_VERSION}" >/dev/null 2>&1; then
    pip install "torch==${TORCH_VERSION}"
  else
    pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
  fi
fi

# Exact versions from the lock that matches the machine; -c alone does not downgrade what is
# already installed, so lockcheck.py then fails with one line naming a package that differs.
if [ -z "${LOCK:-}" ]; then
  if "$VENV/bin/python" -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null; then
    LOCK=locks/cuda.txt
  else
    LOCK=locks/cpu.txt
  fi
fi
if grep -q '^[A-Za-z0-9]' "$LOCK"; then
  pip install -c "$LOCK" -e ".[dev]"
  "$VENV/bin/python" scripts/lockcheck.py "$LOCK"
else
  echo "install: $LOCK holds no pins (see its header); installing from pyproject ranges, unchecked" >&2
  pip install -e ".[dev]"
fi
touch "$VENV/.r2d-installed"
