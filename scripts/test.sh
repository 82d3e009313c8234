#!/usr/bin/env bash
# Sets up everything, then runs the linter and the whole test suite (unit and real-model integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
ruff check .
python -m pytest -q "$@"
