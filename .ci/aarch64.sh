#!/usr/bin/env bash
# The aarch64 port, checked on an x86-64 machine: cross-builds the edge runtime (no Python) with
# Debian's g++-aarch64-linux-gnu (cmake/aarch64-linux-gnu.cmake) and runs its ctest suite under
# qemu-aarch64 (qemu-user), once with CPUCNN_ISA=neon (the whole suite, the NEON kernel test, the
# fuzz smoke per ISA) and once with CPUCNN_ISA=scalar (what does not force its own ISA). The
# cross-architecture tests (xarch_*) compare against files the x86-64 build writes first: its test
# models (lenet.cnn trained one Adam step, its inputs and outputs), run here by the aarch64
# cpucnn-run, and a few training steps on the x86-64 scalar path (cpucnn_train_check), both within
# 1e-5 relative. Then the kernel tests (float and int8) and the training check again on an emulated Cortex-A53
# (ARMv8.0), and the C example (examples/edge, shared and static) built against the installed
# cross build, run on the x86-64 model: the same classes. Prints the stripped sizes of libcpucnn.so and cpucnn-run (goal <= 1 MiB each) and
# the time taken. Emulated run times are not performance figures.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)
jobs=$(nproc)

echo "== aarch64: cross toolchain and qemu-user"
need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
# libgomp for arm64 comes with g++-aarch64-linux-gnu (libgcc-12-dev-arm64-cross): the build uses OpenMP.
ls /usr/aarch64-linux-gnu/lib/libgomp.so.1 >/dev/null

echo "== aarch64: x86-64 reference results (build/runtime)"
if [ ! -f build/runtime/CMakeCache.txt ]; then
  cmake -S . -B build/runtime -DCPUCNN_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release -DCPUCNN_WERROR=ON
fi
cmake --build build/runtime -j"$jobs" --target cpucnn_make_test_models cpucnn_train_check cpucnn_run
ref="$PWD/build/aarch64-reference"
rm -rf "$ref"
mkdir -p "$ref"
build/runtime/cpucnn_make_test_models "$ref" >/dev/null
CPUCNN_ISA=scalar build/runtime/cpucnn_train_check "$ref/train_x86_scalar.npy"

echo "== aarch64: cross-build (build/aarch64)"
cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" -DCPUCNN_PYTHON=OFF \
  -DCMAKE_BUILD_TYPE=Release -DCPUCNN_WERROR=ON -DCPUCNN_XARCH_REFERENCE="$ref" -DCPUCNN_FUZZ_SMOKE_RUNS=1500
cmake --build build/aarch64 -j"$jobs"
t_build=$(date +%s)

echo "== aarch64: stripped sizes"
status=0
for f in build/aarch64/libcpucnn.so build/aarch64/cpucnn-run; do
  aarch64-linux-gnu-strip -o "build/aarch64/$(basename "$f").stripped" "$f"
  size=$(stat -c %s "build/aarch64/$(basename "$f").stripped")
  echo "$(basename "$f") stripped: $size bytes"
  if [ "$size" -gt 1048576 ]; then
    echo "FAIL: $(basename "$f") is over 1 MiB stripped"
    status=1
  fi
done

echo "== aarch64: ctest under qemu-aarch64, CPUCNN_ISA=neon"
CPUCNN_ISA=neon ctest --test-dir build/aarch64 --output-on-failure -j"$jobs" || status=1
echo "== aarch64: ctest under qemu-aarch64, CPUCNN_ISA=scalar (tests that force an ISA ran above)"
CPUCNN_ISA=scalar ctest --test-dir build/aarch64 --output-on-failure -j"$jobs" \
  -E "^(fuzz_load_smoke_|train_check_|xarch_)" || status=1
echo "== aarch64: on an emulated Cortex-A53 (ARMv8.0: NEON, no dot product, no FP16 arithmetic)"
qemu-aarch64 -cpu cortex-a53 -L /usr/aarch64-linux-gnu build/aarch64/test_kernels_isa | sed -n '1p;$p' || status=1
# the int8 kernels without the dot-product extension: SDOT skipped (reason printed), SMULL/SMLAL picked
qemu-aarch64 -cpu cortex-a53 -L /usr/aarch64-linux-gnu build/aarch64/test_int8_isa | grep -E "SKIPPED|passed" || status=1
qemu-aarch64 -cpu cortex-a53 -L /usr/aarch64-linux-gnu build/aarch64/cpucnn_train_check \
  build/aarch64/xarch_train_a53.npy --reference "$ref/train_x86_scalar.npy" 1e-5 | tail -1 || status=1

echo "== aarch64: the C example (examples/edge) against the installed cross build, under qemu"
prefix="$PWD/build/aarch64-prefix"
rm -rf "$prefix"
cmake --install build/aarch64 --prefix "$prefix" >/dev/null
want=$(build/runtime/cpucnn-run "$ref/lenet.cnn" "$ref/lenet_input.npy" --top 1 | sed -n 's/^[0-9]*: \([0-9]*\) .*/\1/p' | tr '\n' ' ')
want=${want% }
[ -n "$want" ] || { echo "FAIL: no classes from the x86-64 cpucnn-run"; status=1; }
for static in OFF ON; do
  cmake -S examples/edge -B "build/aarch64-edge-$static" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
    -Dcpucnn_DIR="$prefix/lib/cmake/cpucnn" -DCPUCNN_USE_STATIC=$static >/dev/null
  cmake --build "build/aarch64-edge-$static" >/dev/null
  got=$(qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH="$prefix/lib" "build/aarch64-edge-$static/classify" \
    "$ref/lenet.cnn" "$ref/lenet_input.npy" | sed -n 's/^image [0-9]*: class \([0-9]*\).*/\1/p' | tr '\n' ' ')
  if [ "${got% }" = "$want" ]; then
    echo "classify (static=$static): classes $want, as on x86-64"
  else
    echo "FAIL: classify (static=$static) printed classes '${got% }', x86-64's are '$want'"
    status=1
  fi
done
t1=$(date +%s)
echo "== aarch64: $((t1 - t0)) s in all (cross-build $((t_build - t0)) s, emulated tests $((t1 - t_build)) s)"
exit $status
