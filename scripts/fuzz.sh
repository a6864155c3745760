#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang, ASan and UBSan in
# build-fuzz, then runs each for SECONDS (default 25): seeds made by our own
# encoders (fuzz/make_seeds.cc) plus the inputs of past bugs (fuzz/regress/).
# Fails on the first crash, leak, sanitizer report or broken property, and
# leaves the input that did it in build-fuzz/artifacts/. SECONDS=0 only runs
# the seeds and regression inputs once (a quick check).
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
# Reproduce a crash: build-fuzz/fuzz/<target>_fuzzer build-fuzz/artifacts/<file>
set -euo pipefail
seconds=${1:-25}
cd "$(dirname "$0")/.."
targets=(keys records extent_page codec pack_reader when)

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ "${launcher[@]}" \
  -DSNAPFS_FUZZ=ON -DSNAPFS_ASAN=ON -DSNAPFS_BUILD_TESTS=OFF -DSNAPFS_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"${SNAPFS_FUZZ_JOBS:-2}" --target make_seeds "${targets[@]/%/_fuzzer}"

rm -rf build-fuzz/seeds build-fuzz/artifacts build-fuzz/logs
mkdir -p build-fuzz/artifacts build-fuzz/logs
build-fuzz/fuzz/make_seeds build-fuzz/seeds >/dev/null
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

failed=0
printf '%-12s %12s %10s %8s %s\n' target executions exec/s corpus result
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  mkdir -p "$corpus"
  inputs=("$corpus" "build-fuzz/seeds/$t")
  [ -d "fuzz/regress/$t" ] && inputs+=("fuzz/regress/$t")
  log=build-fuzz/logs/$t.log
  if [ "$seconds" = 0 ]; then
    run=(-runs=0)
  else
    run=(-max_total_time="$seconds")
  fi
  # New inputs go to the first folder (the corpus kept in build-fuzz).
  # 2 GiB of memory or a 1 GiB single allocation is a bug (a length taken
  # from stored bytes without a check); 10 s for one input is a hang.
  result=ok
  "build-fuzz/fuzz/${t}_fuzzer" "${run[@]}" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -timeout=10 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts/$t-" "${inputs[@]}" >"$log" 2>&1 || result=FAILED
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  size=$(find "$corpus" -type f | wc -l)
  printf '%-12s %12s %10s %8s %s\n' "$t" "${execs:-?}" "${speed:-?}" "$size" "$result"
  if [ "$result" != ok ]; then
    failed=1
    grep -E 'ERROR|property failed|runtime error|SUMMARY|Test unit written|^ +#[0-9]+ ' "$log" | head -40 >&2
  fi
done
exit "$failed"
