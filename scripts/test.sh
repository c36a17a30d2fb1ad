#!/usr/bin/env bash
# Set up, lint, then run the whole test suite (tests marked real_model use the embedded SmolLM2 model).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not real_model"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
exec .venv/bin/python -m pytest "$@"
