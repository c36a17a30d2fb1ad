#!/usr/bin/env bash
# Quick start: set up, then make the embedded SmolLM2-135M-Instruct forget the built-in famous passages it has
# memorized (MATCH: each passage moved to its own never-seen level from either side, stopping once every one
# looks like freshly written text), with an audit before and after. Extra arguments go to `obliviate unlearn`,
# e.g. `--method sga` or `--method ga --stop mean`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/obliviate unlearn builtin:famous --reference builtin:fresh --method match "$@"
