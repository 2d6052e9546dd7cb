#!/usr/bin/env bash
# Fuzzes the model loader (cpucnn_load) under AddressSanitizer for a bounded time.
#
#   cpp/tests/run_fuzz.sh [SECONDS=30] [WORKDIR=a new temp dir]
#
# With clang: libFuzzer (coverage-guided), target fuzz_load, everything built with
# -fsanitize=address,fuzzer-no-link. Without clang: the plain driver (fuzz_load_driver: seed corpus +
# random mutations) built with g++ -fsanitize=address. The seed corpus is generated: small model
# files written by cpucnn_make_test_models. Crashing inputs are left in WORKDIR (crash-*); replay
# one with `WORKDIR/build/fuzz_load FILE` (or `fuzz_load_driver -runs=0 FILE`).
#
# Memory: a crafted architecture can ask for huge parameter tensors before the loader sees that the
# file lacks them, so allocations over 2 GiB fail (ASan returns NULL -> bad_alloc -> an error
# return) and the whole process is capped at 6 GiB; memory errors, leaks and crashes still fail.
set -euo pipefail
seconds=${1:-30}
work=${2:-$(mktemp -d "${TMPDIR:-/tmp}/cpucnn-fuzz.XXXXXX")}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$work"
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:max_allocation_size_mb=2048:detect_leaks=1}
sanitize="-fsanitize=address -fno-omit-frame-pointer -g"
# The time is shared between the machine's best kernels and the scalar reference path (override
# with CPUCNN_FUZZ_ISAS="best avx2 ..."; an ISA the CPU lacks is skipped: the target exits with 77).
isas=${CPUCNN_FUZZ_ISAS:-best scalar}
n_isas=$(echo $isas | wc -w)
share=$(( (seconds + n_isas - 1) / n_isas ))

if command -v clang++ >/dev/null && command -v clang >/dev/null; then
  echo "== fuzz_load: libFuzzer build with clang (${seconds}s)"
  cmake -S "$root" -B "$work/build" -DCPUCNN_PYTHON=OFF -DCPUCNN_FUZZ=ON -DCPUCNN_TESTS=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_C_FLAGS="$sanitize" -DCMAKE_CXX_FLAGS="$sanitize -fsanitize=fuzzer-no-link" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address" >"$work/configure.log"
  cmake --build "$work/build" -j "$jobs" --target fuzz_load cpucnn_make_test_models >"$work/build.log" 2>&1 \
    || { tail -50 "$work/build.log"; exit 1; }
  "$work/build/cpucnn_make_test_models" "$work/models" >/dev/null
  mkdir -p "$work/corpus"
  status=0
  for isa in $isas; do
    echo "-- CPUCNN_ISA=${isa/best/} (${share}s)"
    CPUCNN_ISA=${isa/best/} "$work/build/fuzz_load" -max_total_time="$share" -rss_limit_mb=6144 -malloc_limit_mb=4096 \
      -timeout=20 -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$work/models/corpus" \
      >"$work/fuzz-$isa.log" 2>&1 || status=$?
    grep -E "^(#[0-9]+ +DONE|==[0-9]+==|SUMMARY|stat::number_of_executed_units|SKIPPED)" "$work/fuzz-$isa.log" || true
    cat "$work/fuzz-$isa.log" >>"$work/fuzz.log"
    [ "$status" -ne 77 ] || status=0  # SKIPPED: CPU lacks the ISA
    [ "$status" -eq 0 ] || break
  done
else
  echo "== fuzz_load: clang not found, plain driver with g++ -fsanitize=address (${seconds}s)"
  cmake -S "$root" -B "$work/build" -DCPUCNN_PYTHON=OFF -DCPUCNN_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_FLAGS="$sanitize" -DCMAKE_CXX_FLAGS="$sanitize" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address" >"$work/configure.log"
  cmake --build "$work/build" -j "$jobs" --target fuzz_load_driver cpucnn_make_test_models >"$work/build.log" 2>&1 \
    || { tail -50 "$work/build.log"; exit 1; }
  "$work/build/cpucnn_make_test_models" "$work/models" >/dev/null
  status=0
  for isa in $isas; do
    echo "-- CPUCNN_ISA=${isa/best/} (${share}s)"
    (cd "$work" && CPUCNN_ISA=${isa/best/} CPUCNN_FUZZ_CRASH_FILE="$work/crash-input-$isa" \
      "$work/build/fuzz_load_driver" -max_total_time="$share" -seed="${CPUCNN_FUZZ_SEED:-$RANDOM}" \
      "$work/models/corpus") >>"$work/fuzz.log" 2>&1 || status=$?
    tail -1 "$work/fuzz.log"
    [ "$status" -ne 77 ] || status=0  # SKIPPED: CPU lacks the ISA
    [ "$status" -eq 0 ] || break
  done
fi
if [ "$status" -ne 0 ]; then
  echo "fuzz_load: FAILED (exit $status); log: $work/fuzz.log; inputs: $(ls "$work"/crash-* "$work"/oom-* "$work"/leak-* "$work"/timeout-* 2>/dev/null | tr '\n' ' ')"
  tail -60 "$work/fuzz.log"
  exit 1
fi
echo "fuzz_load: done (${seconds}s, no crash)"
