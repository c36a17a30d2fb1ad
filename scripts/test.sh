#!/usr/bin/env bash
# Set up, lint, then run the whole test suite (tests marked real_model use the embedded SmolLM2 model).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not real_model"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The audit-report test renders a page in headless Chromium: install Debian's when we can (it skips otherwise).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "obliviate test: installing Debian's chromium for the report test"
    apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } \
        || echo "obliviate test: could not install chromium; the report test will skip"
fi
.venv/bin/ruff check src tests benchmarks
exec .venv/bin/python -m pytest "$@"
