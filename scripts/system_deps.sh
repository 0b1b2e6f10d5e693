#!/usr/bin/env bash
# Debian packages that some tests need (real Slurm, a headless browser, network namespaces).
# Installed only when missing and only as root; elsewhere it says what it could not install and
# the tests that need it report themselves as skipped with the reason.
#   usage: bash scripts/system_deps.sh
set -euo pipefail
packages=(slurm-wlm munge chromium chromium-driver iproute2 procps)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "system_deps: not root or no apt-get; missing: ${missing[*]} (their tests will be skipped)" >&2
  exit 0
fi
echo "system_deps: installing ${missing[*]}"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
