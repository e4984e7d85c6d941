#!/usr/bin/env bash
# Set up (./.venv with the dev tools) and run every check: ruff, mypy, pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the long tests.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=dev bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE
echo "== ruff";   .venv/bin/ruff check src tests benchmarks
echo "== mypy";   .venv/bin/mypy
if [ -n "${CI:-}" ] && ! command -v chromium >/dev/null; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium install failed: browser test will skip"; fi
echo "== pytest"; .venv/bin/python -m pytest "$@"
