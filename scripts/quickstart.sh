#!/usr/bin/env bash
# Installs what is missing, builds and installs snapfs, creates a store
# (/var/lib/snapfs/<name of the folder> unless STORE is given) and mounts it
# over FOLDER.   Usage: scripts/quickstart.sh FOLDER [STORE]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 FOLDER [STORE]" >&2; exit 2; }
folder=$(realpath -m "$1")
store=${2:-/var/lib/snapfs/$(basename "$folder")}
here=$(cd "$(dirname "$0")/.." && pwd)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
bash "$here/scripts/install-deps.sh"
cmake -S "$here" -B "$here/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSNAPFS_BUILD_TESTS=OFF -DSNAPFS_BUILD_BENCH=OFF >/dev/null
cmake --build "$here/build-release" -j"$(nproc)"
$SUDO cmake --install "$here/build-release" --prefix /usr/local >/dev/null
$SUDO mkdir -p "$folder" "$(dirname "$store")"
[ -e "$store/SNAPFS" ] || $SUDO /usr/local/bin/snapfs --init "$store"
$SUDO /usr/local/bin/snapfs "$store" "$folder" -o allow_other
echo "snapfs: $store is mounted on $folder (unmount: fusermount3 -u $folder)"
