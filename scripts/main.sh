#!/usr/bin/env bash
# One command: install twister2 and run the main job, word count over a text file on the
# embedded local cluster (4 workers).   usage: bash scripts/main.sh [text-file]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/setup.sh" mpi
cd "$root"
python examples/word_count.py "${1:-$root/examples/data/sample.txt}"
