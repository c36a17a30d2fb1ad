#!/usr/bin/env bash
# Quick start: set up, then make the embedded SmolLM2-135M-Instruct forget the built-in famous passages it has
# memorized (SGA, stopping once every passage looks like freshly written never-seen text), with an audit
# before and after. Extra arguments go to `obliviate unlearn`, e.g. `--method ga --stop mean`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/obliviate unlearn builtin:famous --reference builtin:fresh --method sga "$@"
