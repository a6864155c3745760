# Shared by the stress scripts: a fresh store mounted in a temp dir, always
# unmounted and removed on exit (also on failure or Ctrl-C).
#
#   . "$(dirname "$0")/lib.sh"
#   mount_store /path/to/snapfs        # sets WORK, STORE, MNT
#   ... run things in "$MNT" ...
#   remount_store                      # unmount (must exit 0) and mount again
#
# The daemon runs in the foreground as a child of the script, its output in
# $WORK/daemon.log (printed on failure); readiness comes from the mount table.
# SNAPFS_MOUNT_OPTS (e.g. "-o allow_other") is added to the mount command.

set -euo pipefail

SNAPFS_BIN=""
DAEMON_PID=""
WORK=""

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

fail() {
  log "FAIL: $*"
  exit 1
}

stop_daemon() {
  [ -n "$DAEMON_PID" ] || return 0
  local rc=0
  if mountpoint -q "$MNT"; then
    fusermount3 -u "$MNT" 2>/dev/null || { umount -l "$MNT" || true; kill -9 "$DAEMON_PID" 2>/dev/null || true; }
  fi
  wait "$DAEMON_PID" || rc=$?
  DAEMON_PID=""
  return "$rc"
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "$DAEMON_PID" ]; then
    stop_daemon
  fi
  if [ -n "$WORK" ]; then
    if [ "$rc" -ne 0 ] && [ -f "$WORK/daemon.log" ]; then
      log "daemon log:"
      tail -n 50 "$WORK/daemon.log" >&2
    fi
    if ! grep -q " $WORK/" /proc/mounts; then rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_daemon() {
  # shellcheck disable=SC2086 # Options are split on purpose.
  "$SNAPFS_BIN" -f ${SNAPFS_MOUNT_OPTS:-} "$STORE" "$MNT" >>"$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
  local i
  for i in $(seq 1 200); do
    mountpoint -q "$MNT" && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "snapfs exited before mounting"
    sleep 0.1
  done
  fail "snapfs did not mount within 20 s"
}

# mount_store SNAPFS_BINARY [TMPDIR]
mount_store() {
  SNAPFS_BIN=$(realpath "$1")
  [ -x "$SNAPFS_BIN" ] || fail "no snapfs binary at $SNAPFS_BIN"
  WORK=$(mktemp -d "${2:-${TMPDIR:-/tmp}}/snapfs-stress-XXXXXX")
  STORE=$WORK/store
  MNT=$WORK/mnt
  mkdir "$MNT"
  "$SNAPFS_BIN" --init "$STORE" >/dev/null
  start_daemon
}

remount_store() {
  stop_daemon || fail "snapfs exited non-zero at unmount"
  start_daemon
}

# unmount_store: unmount; the daemon must exit 0.
unmount_store() {
  stop_daemon || fail "snapfs exited non-zero at unmount"
}
