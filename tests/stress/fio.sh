#!/bin/bash
# fio with data verification against a snapfs mount (docs/testing.md, "Full
# disk, stress and conformance").
#
#   tests/stress/fio.sh SNAPFS_BINARY [SIZE_SCALE]
#
# Pass 1 writes with several jobs (sequential 1 MiB, random 4-64 KiB, random
# with fsync every 16 writes) and verifies each file right after writing it
# (crc32c / md5 / xxhash headers in every block). The mount is then remounted
# and pass 2 re-reads and verifies every block from the store (verify_only),
# so the check does not stop at the kernel's page cache. Fails on any fio
# error or verify failure. SIZE_SCALE (default 1) multiplies the file sizes.
. "$(dirname "$0")/lib.sh"

command -v fio >/dev/null || fail "fio is not installed (apt-get install fio)"
SCALE=${2:-1}
mount_store "$1"

cd "$WORK"  # fio writes its scratch files to the current folder.
JOB=$WORK/verify.fio
cat >"$JOB" <<JOBS
[global]
directory=$MNT
ioengine=psync
verify_fatal=1
verify_dump=0
verify_state_save=0
group_reporting=0
randrepeat=1
filename_format=\$jobname.\$jobnum

[seq-1m-crc32c]
rw=write
bs=1M
size=$((96 * SCALE))M
verify=crc32c
numjobs=1

[rand-4k64k-md5]
rw=randwrite
bsrange=4k-64k
size=$((32 * SCALE))M
verify=md5
numjobs=2

[rand-16k-fsync-xxhash]
rw=randwrite
bs=16k
size=$((24 * SCALE))M
fsync=16
verify=xxhash
numjobs=2

[seq-overwrite-sha256]
rw=write
bs=256k
size=$((16 * SCALE))M
loops=2
verify=sha256
numjobs=1
JOBS

log "pass 1: write and verify ($((96 + 64 + 48 + 32)) MiB x scale $SCALE)"
fio "$JOB" --output="$WORK/pass1.txt" || { cat "$WORK/pass1.txt" >&2; fail "fio pass 1 failed"; }
grep -E "^ *(WRITE|READ):" "$WORK/pass1.txt" >&2 || true
grep -qiE "verify.*(fail|bad)|err= *[1-9]" "$WORK/pass1.txt" && { cat "$WORK/pass1.txt" >&2; fail "fio pass 1 reported errors"; }

remount_store
log "pass 2: remounted; verify every block from the store"
fio "$JOB" --verify_only --output="$WORK/pass2.txt" || { cat "$WORK/pass2.txt" >&2; fail "fio pass 2 (verify_only) failed"; }
grep -E "^ *(WRITE|READ):" "$WORK/pass2.txt" >&2 || true
grep -qiE "verify.*(fail|bad)|err= *[1-9]" "$WORK/pass2.txt" && { cat "$WORK/pass2.txt" >&2; fail "fio pass 2 reported errors"; }

unmount_store
log "OK: no fio errors, every block verified twice (after writing and after a remount)"
