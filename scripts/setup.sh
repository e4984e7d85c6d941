#!/usr/bin/env bash
# Create ./.venv and install selflabel into it (editable). Idempotent: re-running is cheap.
#   EXTRAS=dev bash scripts/setup.sh     # also the test/lint tools
#   TORCH_SPEC="torch==2.13.0" ...       # the torch to install first (CPU machines: keep the default)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
# torch first, pinned: an unpinned torch resolved from scratch pulls a CUDA build with GBs of packages.
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  "$VPY" -m pip install -q "$TORCH_SPEC"
fi
TARGET="."
if [ -n "${EXTRAS:-}" ]; then TARGET=".[${EXTRAS}]"; fi
"$VPY" -m pip install -q -e "$TARGET"
