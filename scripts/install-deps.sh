#!/usr/bin/env bash
# Installs what snapfs needs to build, test and run, from Debian 12 packages.
# Idempotent; needs root (or sudo). Used by .ci/run and scripts/quickstart.sh.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libfuse3-dev fuse3
  librocksdb-dev libxxhash-dev libzstd-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  zip unzip rsync fio stress-ng
  clang libclang-rt-14-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
