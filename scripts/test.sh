#!/usr/bin/env bash
# One command: install twister2 with its test extras and run the whole test suite, with ruff and
# mypy.   usage: bash scripts/test.sh [pytest args]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/setup.sh" test
bash "$root/scripts/system_deps.sh"
cd "$root"
echo "== ruff"
ruff check .
echo "== mypy"
mypy
echo "== pytest"
python -m pytest -n 2 --doctest-modules src tests "$@"
