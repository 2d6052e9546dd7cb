#!/usr/bin/env bash
# The sanitizer jobs of CI: builds cpucnn._core with sanitizers in its own build directory, puts
# it in a copy of the package (build/<job>/pkg/cpucnn) and runs tests against that copy.
#
#   .ci/sanitize.sh asan    # ASan+UBSan+LSan: tests/api and tests/kernels but the slow real-data run
#   .ci/sanitize.sh tsan    # TSan: the concurrency and data-pipeline tests, built without OpenMP (see below)
#
# Extra arguments go to each pytest run (e.g. -x, or -k to narrow it). The build is incremental.
# Fails when the build, a test or a sanitizer report fails; the reports are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
job=${1:?usage: .ci/sanitize.sh asan|tsan [pytest args]}
shift
build="build/$job"
logs="$PWD/$build/reports"   # the sanitizers' reports, one file per process that had one

case "$job" in
  asan)
    title="ASan+UBSan"
    san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
    cmake_extra=()
    preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    export ASAN_OPTIONS="abort_on_error=1:detect_stack_use_after_return=1:strict_init_order=1:log_path=$logs/asan"
    # UBSan writes to stderr whatever log_path says: pytest runs with --capture=sys (below) so a
    # report is not lost in pytest's capture of a process UBSan ends.
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    # Leaks: CPython and numpy leave memory behind at exit by design, so a leak report does not
    # fail the process (exitcode=0); the check at the end fails on a direct leak _core allocated.
    export LSAN_OPTIONS=exitcode=0
    ;;
  tsan)
    title="TSan"
    san="-fsanitize=thread"
    # Without OpenMP: libgomp is not instrumented, so TSan cannot see its barriers and would report
    # every parallel loop as a race in our own kernels (suppressing those would hide real ones).
    # What this job checks is the threads of Python: the model's lock, the bindings, the caches.
    cmake_extra=(-DCPUCNN_OPENMP=OFF)
    preload="$(gcc -print-file-name=libtsan.so)"
    # allocator_may_return_null: a too-large allocation returns null (std::bad_alloc) where TSan
    # allows it; its own allocator still aborts on a petabyte one, so that test skips here.
    export TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:allocator_may_return_null=1:log_path=$logs/tsan"
    ;;
  *) echo "unknown job: $job (asan or tsan)" >&2; exit 2 ;;
esac

for lib in $preload; do   # gcc -print-file-name echoes the bare name when it has no such file
  [ -f "$lib" ] || { echo "$title: no $(basename "$lib") (gcc's sanitizer runtimes: apt-get install g++)" >&2; exit 1; }
done

start=$SECONDS
echo "== $title: build ($build)"
python3 -c "import pybind11" 2>/dev/null || python3 -m pip install -q pybind11
cmake -S . -B "$build" -DCPUCNN_PYTHON=ON -DCPUCNN_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_CXX_FLAGS="$san -fno-omit-frame-pointer" -DCMAKE_SHARED_LINKER_FLAGS="$san" \
  -Dpybind11_DIR="$(python3 -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
  "${cmake_extra[@]}" >/dev/null
cmake --build "$build" --target _core -j"${CPUCNN_JOBS:-$(nproc)}"
pkg="$PWD/$build/pkg"
rm -rf "$pkg" "$logs" "$build/tracer-crashes" && mkdir -p "$pkg/cpucnn" "$logs"
cp src/cpucnn/*.py src/cpucnn/*.pyi src/cpucnn/py.typed "$build"/_core*.so "$pkg/cpucnn/"
built=$((SECONDS - start))

# pytest runs in the process that imported the sanitized package, so conftest and the tests get
# that copy, never an installed cpucnn. Tests that start Python again inherit the preload.
py=$(python3 -c 'import sys; print(sys.executable)')   # not a wrapper script run under the preload
run_pytest() {
  echo "== $title: pytest $*"
  local rc attempt mark
  for attempt in 1 2; do
    rc=0
    mark="$build/pytest-exit.$attempt"   # pytest's own exit code, written before the sanitizers' exit checks
    rm -f "$mark"
    PYTHONPATH="$pkg" LD_PRELOAD="$preload" "$py" - "$pkg" "$mark" "$@" <<'PY' || rc=$?
import sys
import cpucnn
import pytest

pkg, mark, args = sys.argv[1], sys.argv[2], sys.argv[3:]
print(f"cpucnn from {cpucnn.__file__}, _core {cpucnn._core.__file__}", flush=True)
assert cpucnn._core.__file__.startswith(pkg + "/"), "not the sanitized build"
code = int(pytest.main(["--capture=sys", *args]))
with open(mark, "w") as f:
    f.write(str(code))
sys.exit(code)
PY
    if [ $rc -eq 5 ]; then rc=0; fi   # extra pytest args that deselect a whole run
    # LeakSanitizer's stop-the-world tracer sometimes crashes at exit ("Tracer caught signal 11 ...
    # LeakSanitizer has encountered a fatal error"; google/sanitizers#1353): no leak check ran. Where
    # the tests themselves passed, that report is set aside and the run repeated once, leak check included.
    local crashed
    crashed=$(grep -l "LeakSanitizer has encountered a fatal error" "$logs"/* 2>/dev/null || true)
    if [ $rc -ne 0 ] && [ $attempt -eq 1 ] && [ -n "$crashed" ] && [ "$(cat "$mark" 2>/dev/null)" = 0 ]; then
      mkdir -p "$build/tracer-crashes" && mv $crashed "$build/tracer-crashes/"
      echo "== $title: the tests passed but LSan's tracer crashed at exit ($(echo "$crashed" | wc -l) report(s) set aside); running them again"
      continue
    fi
    return $rc
  done
}

status=0
if [ "$job" = asan ]; then
  # Everything but the slow real-data run (1 min more). torch leaves ~80,000 blocks behind at exit,
  # over which LSan spends ~80 s at exit: the two files that import it run with leak checking off.
  torch=(tests/api/test_parity_torch.py tests/kernels/test_reference.py tests/api/test_data_torch.py)
  run_pytest tests/api tests/kernels -m "not slow" "${torch[@]/#/--ignore=}" "$@" || status=$?
  ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" run_pytest "${torch[@]}" "$@" || status=$?
else
  # The fork test checks that the child does not use libgomp's pool and that the parent keeps its
  # 2 threads: a build without OpenMP has neither (it runs on 1 thread).
  # test_data.py: cpucnn.data's worker threads (fork: TSan does not follow a child of a threaded parent).
  run_pytest tests/api/test_concurrency.py tests/api/test_data.py "$@" \
    --deselect tests/api/test_concurrency.py::test_model_used_before_fork_works_in_the_child \
    --deselect tests/api/test_data.py::test_an_epoch_inherited_through_fork_fails_clearly_in_the_child || status=$?
fi

# Every report but a leak fails the job. A leak fails it when nothing points to the block and
# _core allocated it (a frame in the module, matched as "/_core.cpython" so that another
# extension whose name ends in _core, such as pydantic_core, is not taken for it, or in cpp/);
# the interpreter's own at-exit leaks pass.
"$py" - "$logs" <<'PY' || status=1
import pathlib, re, sys

failed, exits, at_exit = False, 0, 0
for log in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    text = log.read_text(errors="replace")
    leaks = [b for b in re.split(r"\n\s*\n", text) if re.match(r"\s*(Direct|Indirect) leak of", b)]
    ours = [b for b in leaks if b.lstrip().startswith("Direct") and re.search(r"/_core\.cpython|/cpp/", b)]
    if "ERROR: LeakSanitizer" not in text or re.search(r"ERROR: AddressSanitizer|ThreadSanitizer", text):
        print(f"---- {log.name}\n{text}")
        failed = True
    elif ours:
        print(f"---- {log.name}: {len(ours)} leak(s) from _core\n" + "\n\n".join(ours))
        failed = True
    else:
        exits, at_exit = exits + 1, at_exit + len(leaks)
if exits:
    print(f"LSan: {exits} process(es) left {at_exit} leak(s) at exit, none from _core (Python's own)")
sys.exit(failed)
PY
echo "== $title: $([ $status -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - start)) s" \
     "(build ${built} s, tests $((SECONDS - start - built)) s)"
exit $status
