#!/usr/bin/env bash
# Quick start: set up, then audit per-sequence memorization of the embedded SmolLM2-135M-Instruct on the
# built-in set of famous passages against freshly written never-seen text. Extra arguments go to the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/obliviate memorization builtin:famous --reference builtin:fresh "$@"
