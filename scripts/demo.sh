#!/usr/bin/env bash
# Set up (./.venv) and run the main job: `selflabel train` on the bundled demo data (CPU, < 5 min).
# Extra arguments go to `selflabel train`, e.g. `bash scripts/demo.sh --epochs 2`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE
.venv/bin/selflabel train "$@"
