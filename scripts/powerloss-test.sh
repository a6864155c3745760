#!/usr/bin/env bash
# Power loss under the store: fsynced data and every fsynced version survive
# when the disk loses everything that was not synced.
#
#   scripts/powerloss-test.sh LAZYFS_BINARY [ROUNDS]     (as root; default 3 rounds)
#
# The store lives inside LazyFS (github.com/dsrhaslab/lazyfs), a FUSE file
# system that keeps written data in its own page cache until fsync and drops
# every unsynced byte on `lazyfs::clear-cache`. Each round: write files
# through snapfs (some fsynced, some only closed, one kept open, one synced
# file rewritten without fsync), SIGKILL snapfs, clear LazyFS's cache (the
# power loss), remount LazyFS and snapfs, then check that the store opens,
# that every fsynced file reads back byte for byte, that every fsynced version
# reads back from its generation in .snapfs/at/gN/, and that files written
# without fsync hold either an earlier state or their complete new bytes.
# History accumulates across rounds.
#
# Nothing is downloaded here. Build LazyFS once under /tmp (docs/testing.md,
# "Crash tests"). snapfs binaries come from $SNAPFS_BUILD/tools (default:
# build/ in this repository). KEEP=1 keeps the work folder.
# Exit codes: 0 passed, 1 a check failed, 2 usage or setup.
set -euo pipefail

usage() { echo "usage: $0 LAZYFS_BINARY [ROUNDS]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
lazyfs_bin=$(realpath "$1")
rounds=${2:-3}
[ -x "$lazyfs_bin" ] || { echo "powerloss-test: $1 is not an executable LazyFS binary" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || usage
here=$(cd "$(dirname "$0")/.." && pwd)
tools=${SNAPFS_BUILD:-$here/build}/tools
snapfs=$tools/snapfs
snapfs_ls=$tools/snapfs-ls
for b in "$snapfs" "$snapfs_ls"; do
  [ -x "$b" ] || { echo "powerloss-test: $b missing (build snapfs first)" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "powerloss-test: jq is needed" >&2; exit 2; }

# (No "-o" in the path: LazyFS takes a --config-path containing "-o" for an option.)
w=$(mktemp -d /tmp/snapfs-powerloss.XXXXXX)
root=$w/root lazy=$w/lazy mnt=$w/mnt expect=$w/expect
store=$lazy/store
mkdir -p "$root" "$lazy" "$mnt" "$expect"
lazy_pid="" snapfs_pid="" failures=0

cleanup() {
  [ -n "$snapfs_pid" ] && kill -9 "$snapfs_pid" 2>/dev/null
  mountpoint -q "$mnt" && fusermount3 -u -z "$mnt"
  [ -n "$lazy_pid" ] && kill "$lazy_pid" 2>/dev/null
  mountpoint -q "$lazy" && fusermount3 -u -z "$lazy"
  [ -n "$lazy_pid" ] && wait "$lazy_pid" 2>/dev/null
  if [ "${KEEP:-0}" = 1 ] || [ "$failures" -ne 0 ]; then
    echo "work folder kept: $w"
  else
    rm -rf "$w"
  fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

cat > "$w/lazyfs.toml" <<EOF
[faults]
fifo_path="$w/faults.fifo"
fifo_path_completed="$w/faults-done.fifo"
[cache]
apply_eviction=false
[cache.simple]
custom_size="128mb"
blocks_per_page=1
[filesystem]
log_all_operations=false
logfile=""
EOF
mkfifo "$w/faults-done.fifo"

# LazyFS has no readiness signal: wait (at most 20 s) for its mount to appear.
start_lazyfs() {
  "$lazyfs_bin" "$lazy" --config-path "$w/lazyfs.toml" -o modules=subdir -o subdir="$root" -f \
    >>"$w/lazyfs.log" 2>&1 &
  lazy_pid=$!
  for _ in $(seq 200); do
    mountpoint -q "$lazy" && [ -p "$w/faults.fifo" ] && return 0
    kill -0 "$lazy_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "powerloss-test: LazyFS did not mount; log:" >&2; tail "$w/lazyfs.log" >&2; exit 2
}

stop_lazyfs() {
  # Right after the kill the dead snapfs may still hold the store for a
  # moment ("busy"); nothing writes any more, so a lazy unmount is as good.
  fusermount3 -u "$lazy" 2>/dev/null || { sleep 1; fusermount3 -u "$lazy" 2>/dev/null; } ||
    fusermount3 -u -z "$lazy"
  { wait "$lazy_pid"; } 2>/dev/null || true  # LazyFS aborts at exit (its fault thread is not joined).
  lazy_pid=""
}

# snapfs in the foreground; readiness from --ready-fd through a FIFO.
start_snapfs() {
  rm -f "$w/ready"; mkfifo "$w/ready"
  "$snapfs" -f --ready-fd 9 "$store" "$mnt" 9>"$w/ready" >>"$w/snapfs.log" 2>&1 &
  snapfs_pid=$!
  local byte=""
  if ! read -r -t 30 -n 1 byte <"$w/ready" || [ -z "$byte" ]; then
    echo "powerloss-test: snapfs did not mount the store (after power loss?); log:" >&2
    tail "$w/snapfs.log" >&2; snapfs_pid=""; failures=$((failures + 1)); exit 1
  fi
}

# The newest generation of PATH in the store (read while snapfs runs).
generation_of() { "$snapfs_ls" "$store" --history "/$1" --json | jq '.[-1].generation'; }

# Writes SIZE random bytes to mount path NAME (dd; conv=fsync if SYNC=1); the
# bytes are kept in $expect/FILE.
put() {  # NAME SIZE SYNC FILE
  head -c "$2" /dev/urandom >"$expect/$4"
  if [ "$3" = 1 ]; then
    dd if="$expect/$4" of="$mnt/$1" bs=256k conv=fsync status=none
  else
    dd if="$expect/$4" of="$mnt/$1" bs=256k status=none
  fi
}

start_lazyfs
"$snapfs" --init "$store" >/dev/null
start_snapfs
: >"$w/synced.list"    # NAME GEN FILE: fsynced versions
: >"$w/latest.list"    # NAME FILE: what each synced name must show now
kept=0 lost=0 checked=0
for r in $(seq "$rounds"); do
  # fsynced: new files, and new versions of earlier ones.
  for i in 1 2 3; do
    name=sync$i
    put "$name" $((RANDOM * 37 + 1)) 1 "$name.r$r"
    echo "$name $(generation_of "$name") $name.r$r" >>"$w/synced.list"
    sed -i "/^$name /d" "$w/latest.list"; echo "$name $name.r$r" >>"$w/latest.list"
  done
  mkdir -p "$mnt/dir$r"
  put "dir$r/big" $((3 * 1024 * 1024 + RANDOM)) 1 "big.r$r"
  echo "dir$r/big $(generation_of "dir$r/big") big.r$r" >>"$w/synced.list"
  echo "dir$r/big big.r$r" >>"$w/latest.list"
  # Not fsynced: closed files, a rewrite of a synced file, one still open.
  : >"$w/unsynced.list"
  for i in 1 2; do
    put "closed$r.$i" $((RANDOM * 13 + 1)) 0 "closed$r.$i"
    echo "closed$r.$i closed$r.$i" >>"$w/unsynced.list"
  done
  put sync1 $((RANDOM * 11 + 1)) 0 "sync1.unsynced$r"
  echo "sync1 sync1.unsynced$r" >>"$w/unsynced.list"
  head -c 2000000 /dev/urandom >"$expect/open$r"
  exec {fd}>"$mnt/open$r"
  cat "$expect/open$r" >&$fd
  echo "open$r open$r" >>"$w/unsynced.list"

  # Crash and power loss.
  kill -9 "$snapfs_pid"; wait "$snapfs_pid" 2>/dev/null || true; snapfs_pid=""
  exec {fd}>&-
  fusermount3 -u -z "$mnt"
  echo "lazyfs::clear-cache" >"$w/faults.fifo"
  read -r done_msg <"$w/faults-done.fifo"
  [ "$done_msg" = "finished::clear-cache" ] || fail "round $r: LazyFS said '$done_msg'"
  stop_lazyfs
  start_lazyfs
  start_snapfs   # Fails the test if the store does not open.

  # Every fsynced version, at its generation; every synced name, now.
  while read -r name gen file; do
    checked=$((checked + 1))
    cmp -s "$mnt/.snapfs/at/g$gen/$name" "$expect/$file" ||
      fail "round $r: $name at g$gen (fsynced) differs from what was written"
  done <"$w/synced.list"
  while read -r name file; do
    [ "$name" = sync1 ] && continue  # Rewritten without fsync: checked below.
    cmp -s "$mnt/$name" "$expect/$file" || fail "round $r: $name (fsynced) lost its content"
  done <"$w/latest.list"
  # Unsynced: the complete new bytes (kept) or an earlier state (lost).
  while read -r name file; do
    if cmp -s "$mnt/$name" "$expect/$file"; then
      kept=$((kept + 1))
      [ "$name" = sync1 ] && { sed -i "/^sync1 /d" "$w/latest.list"; echo "sync1 $file" >>"$w/latest.list"; }
    else
      lost=$((lost + 1))
      if [ "$name" = sync1 ]; then
        earlier=$(awk '$1 == "sync1" {print $2}' "$w/latest.list")
        cmp -s "$mnt/sync1" "$expect/$earlier" ||
          fail "round $r: sync1 is neither its fsynced version nor the newer bytes"
      elif [ -e "$mnt/$name" ] && [ -s "$mnt/$name" ]; then
        fail "round $r: $name (not fsynced) holds bytes that were never written whole"
      fi
    fi
  done <"$w/unsynced.list"
  if [ "$failures" -eq 0 ]; then
    echo "round $r: store opened after kill -9 + power loss; all $(wc -l <"$w/synced.list") fsynced versions intact; unsynced files so far kept $kept, lost $lost"
  else
    echo "round $r: $failures failed check(s) so far"
  fi
done

kill -TERM "$snapfs_pid"; wait "$snapfs_pid" || fail "snapfs did not exit cleanly at the end"; snapfs_pid=""
if [ "$failures" -eq 0 ]; then
  echo "powerloss-test PASSED: $rounds rounds, $(wc -l <"$w/synced.list") fsynced versions ($checked checks), unsynced files kept $kept / lost $lost"
  exit 0
fi
echo "powerloss-test FAILED: $failures check(s)"
exit 1
