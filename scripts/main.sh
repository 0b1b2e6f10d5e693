#!/usr/bin/env bash
# One command: install twister2 and run the main job, word count over a text file on the
# embedded local cluster (4 workers). It installs the `main` extra (MPI from PyPI and pyarrow, which
# twister2.io reads files with): everything that job needs, from a fresh clone with no .venv.
#   usage: bash scripts/main.sh [text-file]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/setup.sh" main
cd "$root"
python examples/word_count.py "${1:-$root/examples/data/sample.txt}"
