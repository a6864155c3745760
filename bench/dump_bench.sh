#!/usr/bin/env bash
# The end-to-end dump benchmark of snapfs, in one command (docs/performance.md):
#
#   bench/dump_bench.sh [--size 1G] [--days 7] [--targets plain,passthrough,snapfs,borg,restic]
#                       [--workloads sql,folder,smallwrites,pgdump] [--out DIR] [--work DIR]
#                       [--perf] [--rss-check 4G] [--keep] [--no-drop-caches] [--day1-rounds N]
#                       [--read-rounds N] [--read-disk MBPS[:IOPS]]
#
# Builds snapfs and the generator (Release, in $SNAPFS_BENCH_BUILD, default
# /tmp/build-bench), installs borg, restic and gnuplot from Debian if missing
# (as root; SNAPFS_BENCH_NO_INSTALL=1 skips that), then runs bench/dump_bench.py
# with the same arguments. Run it as root: it mounts FUSE file systems, drops
# the page cache before read-backs and starts a throwaway PostgreSQL cluster.
# Everything it writes goes under --work (default /tmp/snapfs-bench); whatever
# happens, it unmounts what it mounted and stops what it started.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SNAPFS_BENCH_BUILD:-/tmp/build-bench}
work=/tmp/snapfs-bench
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --work) work=${args[i + 1]:-$work} ;;
    --work=*) work=${args[i]#--work=} ;;
    -h|--help) exec python3 "$repo/bench/dump_bench.py" --help ;;
  esac
done
work=$(realpath -m "$work")
case $work/ in
  "$repo"/*) echo "dump_bench: --work must be outside the repository" >&2; exit 2 ;;
esac

# One benchmark at a time on this machine: two runs would measure each other,
# and share the work folder's mounts.
mkdir -p "$work"
exec 9>"$work.lock"
if ! flock -n 9; then
  echo "dump_bench: another run holds $work.lock; waiting for it" >&2
  flock 9
fi

# Whatever happens: unmount every FUSE mount under the work folder (the
# Python driver does this too; this catches a driver killed by a signal).
cleanup() {
  local m
  while read -r _ m _; do
    case $m/ in
      "$work"/*) fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true ;;
    esac
  done < /proc/mounts
  if [[ -f $work/pg/data/postmaster.pid ]]; then
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$work/pg/data" \
      -m immediate stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if [[ $(id -u) -eq 0 && -z ${SNAPFS_BENCH_NO_INSTALL:-} ]]; then
  missing=()
  command -v borg >/dev/null || missing+=(borgbackup)
  command -v restic >/dev/null || missing+=(restic)
  command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
  if ((${#missing[@]})); then
    echo "dump_bench: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
      echo "dump_bench: could not install ${missing[*]}; those targets are skipped" >&2
  fi
fi

if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSNAPFS_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" -j2 --target snapfs snapfs_dump_gen >/dev/null

python3 "$repo/bench/dump_bench.py" --build "$build" "$@"
