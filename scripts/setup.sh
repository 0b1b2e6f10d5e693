#!/usr/bin/env bash
# Create .venv (if needed) and install twister2 with the given extras, pinned by
# requirements/constraints.txt. Used by scripts/main.sh and scripts/test.sh.
#   usage: source scripts/setup.sh [extras]     e.g. "main" or "test"
set -euo pipefail
extras="${1:-main}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TWISTER2_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "twister2 needs Python 3.11 or newer as '$python' (set PYTHON=...)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian's python3 lacks venv/ensurepip until python3-venv is installed.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      rm -rf "$venv"
      apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
      "$python" -m venv "$venv"
    else
      echo "cannot create a virtualenv: install python3-venv (apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -c "$root/requirements/constraints.txt" -e "$root[$extras]"
export PATH="$venv/bin:$PATH"
