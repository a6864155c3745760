#!/usr/bin/env bash
# Builds snapfs with AddressSanitizer and UBSan (g++, -DSNAPFS_ASAN=ON) in
# build-asan and runs the unit and mount tests there, then the crash test.
# Every process (tests, tools, and the FUSE daemons, which detach and lose
# their stderr) writes any sanitizer report to build-asan/sanitizer-logs/;
# the run fails if a test fails or any report was written. RocksDB and
# libfuse are uninstrumented system libraries: ASan checks our side of their
# calls.
#   scripts/sanitize.sh [extra ctest arguments, e.g. -R Vfs]
#   SNAPFS_SANITIZE_KILLS=N  kill points of the crash test (default 100, as
#                            in `ctest -L crash`; 0 skips it)
#   SNAPFS_SANITIZE_JOBS=N   build jobs (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
kills=${SNAPFS_SANITIZE_KILLS:-100}

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSNAPFS_WERROR=ON \
  -DSNAPFS_ASAN=ON -DSNAPFS_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
cmake --build build-asan -j"${SNAPFS_SANITIZE_JOBS:-2}"
echo "sanitize.sh: build took $(( $(date +%s) - start )) s"

logs=$root/build-asan/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"
supp=$root/scripts/sanitize.supp
# abort_on_error: a report kills the process at once (a daemon's mount then
# fails its test too); log_path: the report is kept even when stderr is
# /dev/null; exitcode 66 tells a sanitizer exit from our own codes.
export ASAN_OPTIONS="abort_on_error=1:exitcode=66:detect_leaks=1:strict_init_order=1:check_initialization_order=1:detect_stack_use_after_return=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
export LSAN_OPTIONS="suppressions=$supp:print_suppressions=0"

status=0
for label in unit mount; do
  start=$(date +%s)
  jobs=1
  [ "$label" = unit ] && jobs=2
  ctest --test-dir build-asan -L "$label" -j"$jobs" --output-on-failure --timeout 1800 "$@" || status=1
  echo "sanitize.sh: ctest -L $label took $(( $(date +%s) - start )) s"
done

# The crash test (label crash) is run directly, with the same seed as its
# ctest but $kills kill points. The daemons it SIGKILLs write no report; the
# ones it unmounts cleanly (every remount's predecessor is killed, the last
# one is unmounted) and the test itself (which opens the store through the
# library) are checked.
if [ "$kills" -gt 0 ]; then
  start=$(date +%s)
  build-asan/tests/snapfs_crash_test --kills "$kills" --seed 20261125 || status=1
  echo "sanitize.sh: snapfs_crash_test --kills $kills took $(( $(date +%s) - start )) s"
fi

if compgen -G "$logs/*" >/dev/null; then
  echo "sanitize.sh: sanitizer reports:" >&2
  for f in "$logs"/*; do echo "== $f" >&2; head -60 "$f" >&2; done
  status=1
fi
[ "$status" = 0 ] && echo "sanitize.sh: all clean"
exit "$status"
