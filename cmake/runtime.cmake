# The edge runtime: libcpucnn (shared and static) with the C API, cpucnn-run, the install rules
# (headers, libraries, CMake package, pkg-config file) and the C++ tests (ctest).
# Included at the end of the top-level CMakeLists.txt, after the target cpucnn_core exists.
#
#   cmake -S . -B build -DCPUCNN_PYTHON=OFF && cmake --build build && ctest --test-dir build
#   cmake --install build --prefix P          # P/include/cpucnn, P/lib/libcpucnn.*, P/bin/cpucnn-run
#
# Options: CPUCNN_RUNTIME (default: ON unless CPUCNN_PYTHON, so wheels carry only the module),
# CPUCNN_RUNTIME_SHARED (also build libcpucnn.so, default ON), CPUCNN_TESTS (the ctest suite),
# CPUCNN_FUZZ (the libFuzzer target fuzz_load; needs clang, see cpp/tests/run_fuzz.sh).
include_guard(GLOBAL)

if(CPUCNN_PYTHON)
  set(_cpucnn_runtime_default OFF)
else()
  set(_cpucnn_runtime_default ON)
endif()
option(CPUCNN_RUNTIME "Build the edge runtime (libcpucnn, cpucnn-run), its install rules and tests"
       ${_cpucnn_runtime_default})
option(CPUCNN_RUNTIME_SHARED "Build the shared libcpucnn as well as the static one" ON)
option(CPUCNN_FUZZ "Build the libFuzzer target fuzz_load (clang; add -fsanitize=fuzzer-no-link,address to the flags)" OFF)
if(NOT CPUCNN_RUNTIME)
  return()
endif()

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_cpucnn_src "${CMAKE_CURRENT_LIST_DIR}/..")
get_filename_component(_cpucnn_src "${_cpucnn_src}" ABSOLUTE)
set(CPUCNN_PUBLIC_HEADERS
  "${_cpucnn_src}/cpp/include/cpucnn/cpucnn.h"
  "${_cpucnn_src}/cpp/include/cpucnn/cpucnn.hpp")

# ---------------------------------------------------------------------------------------------
# The C API, compiled once (PIC) and put in both libraries. Only the CPUCNN_API functions are
# visible; the core's C++ symbols are hidden by the version script below.
add_library(cpucnn_capi OBJECT "${_cpucnn_src}/cpp/capi/cpucnn_c.cc")
target_include_directories(cpucnn_capi PRIVATE "${_cpucnn_src}/cpp/include" "${_cpucnn_src}/cpp/src")
target_compile_definitions(cpucnn_capi PRIVATE CPUCNN_BUILDING
  $<TARGET_PROPERTY:cpucnn_core,INTERFACE_COMPILE_DEFINITIONS>)
target_compile_options(cpucnn_capi PRIVATE -Wall -Wextra $<$<BOOL:${CPUCNN_WERROR}>:-Werror>)
set_target_properties(cpucnn_capi PROPERTIES
  POSITION_INDEPENDENT_CODE ON CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
if(TARGET OpenMP::OpenMP_CXX)
  target_link_libraries(cpucnn_capi PRIVATE OpenMP::OpenMP_CXX)  # compile flags only
  set(CPUCNN_HAS_OPENMP 1)
else()
  set(CPUCNN_HAS_OPENMP 0)
endif()

set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)

set(_cpucnn_objects $<TARGET_OBJECTS:cpucnn_core> $<TARGET_OBJECTS:cpucnn_capi>)

function(_cpucnn_runtime_library target kind)
  add_library(${target} ${kind} ${_cpucnn_objects})
  set_target_properties(${target} PROPERTIES OUTPUT_NAME cpucnn LINKER_LANGUAGE CXX)
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${_cpucnn_src}/cpp/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  if(TARGET OpenMP::OpenMP_CXX)
    target_link_libraries(${target} PRIVATE OpenMP::OpenMP_CXX)
  endif()
  target_link_libraries(${target} PRIVATE Threads::Threads)
endfunction()

# Static: everything in one archive, so `-lcpucnn` (+ the C++ runtime and OpenMP) is all an
# application needs.
_cpucnn_runtime_library(cpucnn_static STATIC)
set_target_properties(cpucnn_static PROPERTIES EXPORT_NAME cpucnn_static)
target_compile_definitions(cpucnn_static INTERFACE CPUCNN_STATIC)
set(_cpucnn_installed cpucnn_static)

if(CPUCNN_RUNTIME_SHARED)
  set(_cpucnn_map "${CMAKE_CURRENT_BINARY_DIR}/cpucnn.map")
  file(WRITE "${_cpucnn_map}" "{\n  global:\n    cpucnn_*;\n  local:\n    *;\n};\n")
  _cpucnn_runtime_library(cpucnn_shared SHARED)
  set_target_properties(cpucnn_shared PROPERTIES
    EXPORT_NAME cpucnn_shared
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}
    LINK_DEPENDS "${_cpucnn_map}")
  if(CMAKE_SYSTEM_NAME STREQUAL "Linux" OR CMAKE_SYSTEM_NAME MATCHES "BSD")
    target_link_options(cpucnn_shared PRIVATE
      "LINKER:--version-script=${_cpucnn_map}" "LINKER:--no-undefined" "LINKER:--gc-sections"
      "LINKER:--as-needed" "LINKER:-O1")
  endif()
  list(APPEND _cpucnn_installed cpucnn_shared)
  add_library(cpucnn::cpucnn ALIAS cpucnn_shared)
else()
  add_library(cpucnn::cpucnn ALIAS cpucnn_static)
endif()
add_library(cpucnn::cpucnn_static ALIAS cpucnn_static)

# ---------------------------------------------------------------------------------------------
# cpucnn-run: only the public C API, linked statically so the binary stands alone.
add_executable(cpucnn_run "${_cpucnn_src}/cpp/tools/cpucnn_run.cc")
set_target_properties(cpucnn_run PROPERTIES OUTPUT_NAME cpucnn-run)
target_link_libraries(cpucnn_run PRIVATE cpucnn_static)
target_compile_options(cpucnn_run PRIVATE -Wall -Wextra $<$<BOOL:${CPUCNN_WERROR}>:-Werror>)
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  target_link_options(cpucnn_run PRIVATE "LINKER:--gc-sections" "LINKER:--as-needed")
endif()

# ---------------------------------------------------------------------------------------------
# Install: headers, libraries, cpucnn-run, CMake package, pkg-config file.
install(TARGETS ${_cpucnn_installed} EXPORT cpucnnTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS cpucnn_run RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CPUCNN_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cpucnn)

set(CPUCNN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/cpucnn)
install(EXPORT cpucnnTargets NAMESPACE cpucnn:: DESTINATION ${CPUCNN_CMAKE_DIR})
configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/cpucnnConfig.cmake.in"
  "${CMAKE_CURRENT_BINARY_DIR}/cpucnnConfig.cmake" INSTALL_DESTINATION ${CPUCNN_CMAKE_DIR})
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/cpucnnConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/cpucnnConfig.cmake" "${CMAKE_CURRENT_BINARY_DIR}/cpucnnConfigVersion.cmake"
  DESTINATION ${CPUCNN_CMAKE_DIR})

# pkg-config: relocatable (prefix from the .pc file's own place), so `cmake --install --prefix P`
# works. Libs.private holds what a static link needs: the C++ runtime, OpenMP, threads, libm.
set(CPUCNN_PC_LIBS_PRIVATE "")
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" OR CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang" AND CMAKE_CXX_FLAGS MATCHES "-stdlib=libc\\+\\+")
    list(APPEND CPUCNN_PC_LIBS_PRIVATE -lc++)
  else()
    list(APPEND CPUCNN_PC_LIBS_PRIVATE -lstdc++)
  endif()
endif()
if(CPUCNN_HAS_OPENMP)
  foreach(_lib IN LISTS OpenMP_CXX_LIB_NAMES)
    if(NOT _lib STREQUAL "pthread")
      list(APPEND CPUCNN_PC_LIBS_PRIVATE -l${_lib})
    endif()
  endforeach()
endif()
list(APPEND CPUCNN_PC_LIBS_PRIVATE -lpthread -lm)
list(REMOVE_DUPLICATES CPUCNN_PC_LIBS_PRIVATE)
list(JOIN CPUCNN_PC_LIBS_PRIVATE " " CPUCNN_PC_LIBS_PRIVATE)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(CPUCNN_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _rel "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
  string(REGEX REPLACE "/$" "" _rel "${_rel}")
  set(CPUCNN_PC_PREFIX "\${pcfiledir}/${_rel}")
endif()
configure_file("${CMAKE_CURRENT_LIST_DIR}/cpucnn.pc.in" "${CMAKE_CURRENT_BINARY_DIR}/cpucnn.pc" @ONLY)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/cpucnn.pc" DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# ---------------------------------------------------------------------------------------------
# Tests (ctest).
if(CPUCNN_TESTS)
  enable_testing()
  set(_cpucnn_tests "${_cpucnn_src}/cpp/tests")

  # The JSON and safetensors unit tests, against the core.
  add_executable(test_io "${_cpucnn_tests}/test_io.cc")
  target_include_directories(test_io PRIVATE "${_cpucnn_src}/cpp/src")
  target_link_libraries(test_io PRIVATE cpucnn_core)
  add_test(NAME test_io COMMAND test_io)

  # Every kernel of each vector ISA this CPU runs (avx2/avx512 on x86, neon on aarch64) against
  # the scalar one, on ragged sizes; an ISA the CPU lacks is skipped with the reason printed.
  add_executable(test_kernels_isa "${_cpucnn_tests}/test_kernels_isa.cc")
  target_include_directories(test_kernels_isa PRIVATE "${_cpucnn_src}/cpp/src")
  target_link_libraries(test_kernels_isa PRIVATE cpucnn_core)
  add_test(NAME test_kernels_isa COMMAND test_kernels_isa)

  # The int8 GEMM variants this CPU runs (avx2/VNNI on x86, neondot/neon on aarch64) and the
  # tables' qgemv against the scalar reference, bit for bit, on ragged sizes.
  add_executable(test_int8_isa "${_cpucnn_tests}/test_int8_isa.cc")
  target_include_directories(test_int8_isa PRIVATE "${_cpucnn_src}/cpp/src")
  target_link_libraries(test_int8_isa PRIVATE cpucnn_core)
  add_test(NAME test_int8_isa COMMAND test_int8_isa)

  # A few Adam and SGD steps through the core: the best path against the scalar one here, and
  # (CPUCNN_XARCH_REFERENCE, set by .ci/aarch64.sh) a cross build's results against files an
  # x86-64 build wrote: train_x86_scalar.npy (this program, CPUCNN_ISA=scalar) and its test models
  # (lenet.cnn, lenet_input.npy, lenet_expected.npy), run by this build's cpucnn-run.
  add_executable(cpucnn_train_check "${_cpucnn_tests}/train_check.cc")
  target_include_directories(cpucnn_train_check PRIVATE "${_cpucnn_src}/cpp/src")
  target_link_libraries(cpucnn_train_check PRIVATE cpucnn_core)
  add_test(NAME train_check_scalar COMMAND cpucnn_train_check "${CMAKE_CURRENT_BINARY_DIR}/train_scalar.npy")
  set_tests_properties(train_check_scalar PROPERTIES ENVIRONMENT "CPUCNN_ISA=scalar"
    FIXTURES_SETUP cpucnn_train_scalar)
  # The best vector path against scalar on the same machine: the sums run in other orders (the
  # thin-layer convolution adds taps in another order than scalar im2col + GEMM, Winograd and the
  # 8-lane dot products reassociate), and Adam's normalised steps carry the rounding into the
  # weights: 1.5e-5 measured on AVX2 (8e-8 absolute), hence 5e-5. Across architectures (below)
  # the scalar paths are bit-identical and the 1e-5 of the issue applies.
  add_test(NAME train_check_best_vs_scalar
    COMMAND cpucnn_train_check "${CMAKE_CURRENT_BINARY_DIR}/train_best.npy"
            --reference "${CMAKE_CURRENT_BINARY_DIR}/train_scalar.npy" 5e-5)
  set_tests_properties(train_check_best_vs_scalar PROPERTIES FIXTURES_REQUIRED cpucnn_train_scalar)
  set(CPUCNN_XARCH_REFERENCE "" CACHE PATH
      "Directory of x86-64 reference results for the cross-architecture tests (empty: none)")
  if(CPUCNN_XARCH_REFERENCE)
    set(_ref "${CPUCNN_XARCH_REFERENCE}")
    foreach(_isa IN ITEMS best scalar)
      add_test(NAME xarch_train_${_isa}
        COMMAND cpucnn_train_check "${CMAKE_CURRENT_BINARY_DIR}/xarch_train_${_isa}.npy"
                --reference "${_ref}/train_x86_scalar.npy" 1e-5)
      add_test(NAME xarch_model_run_${_isa}
        COMMAND cpucnn_run "${_ref}/lenet.cnn" "${_ref}/lenet_input.npy"
                --output "${CMAKE_CURRENT_BINARY_DIR}/xarch_lenet_${_isa}.npy")
      add_test(NAME xarch_model_compare_${_isa}
        COMMAND cpucnn_train_check --compare "${CMAKE_CURRENT_BINARY_DIR}/xarch_lenet_${_isa}.npy"
                "${_ref}/lenet_expected.npy" 1e-5)
      set_tests_properties(xarch_model_compare_${_isa} PROPERTIES DEPENDS xarch_model_run_${_isa})
      set_tests_properties(xarch_train_${_isa} xarch_model_run_${_isa} xarch_model_compare_${_isa} PROPERTIES
        ENVIRONMENT "CPUCNN_ISA=$<$<NOT:$<STREQUAL:${_isa},best>>:${_isa}>")
    endforeach()
  endif()

  # Writes the small models the other tests (and the fuzz corpus) read, into the build tree.
  set(CPUCNN_TEST_MODELS "${CMAKE_CURRENT_BINARY_DIR}/test_models")
  add_executable(cpucnn_make_test_models "${_cpucnn_tests}/make_test_models.cc")
  target_include_directories(cpucnn_make_test_models PRIVATE "${_cpucnn_src}/cpp/src")
  target_link_libraries(cpucnn_make_test_models PRIVATE cpucnn_core)
  add_test(NAME make_test_models COMMAND cpucnn_make_test_models "${CPUCNN_TEST_MODELS}")
  set_tests_properties(make_test_models PROPERTIES FIXTURES_SETUP cpucnn_models)

  # The C API against the core it wraps: every layer type, errors, corrupt files, threads.
  add_executable(test_capi "${_cpucnn_tests}/test_capi.cc")
  target_include_directories(test_capi PRIVATE "${_cpucnn_src}/cpp/src")
  target_compile_definitions(test_capi PRIVATE $<TARGET_PROPERTY:cpucnn_core,INTERFACE_COMPILE_DEFINITIONS>)
  target_link_libraries(test_capi PRIVATE cpucnn_static)
  if(TARGET OpenMP::OpenMP_CXX)
    target_link_libraries(test_capi PRIVATE OpenMP::OpenMP_CXX)
  endif()
  target_link_libraries(test_capi PRIVATE Threads::Threads)
  add_test(NAME test_capi COMMAND test_capi)

  # The header compiles as strict C99 and the library links from C (through the shared library
  # when built: this also proves the C API is exported and nothing else is needed).
  add_executable(test_capi_c "${_cpucnn_tests}/test_capi_c.c")
  set_target_properties(test_capi_c PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
  target_compile_options(test_capi_c PRIVATE -Wall -Wextra -pedantic $<$<BOOL:${CPUCNN_WERROR}>:-Werror>)
  target_link_libraries(test_capi_c PRIVATE cpucnn::cpucnn)
  add_test(NAME test_capi_c COMMAND test_capi_c "${CPUCNN_TEST_MODELS}")
  set_tests_properties(test_capi_c PROPERTIES FIXTURES_REQUIRED cpucnn_models)

  # The loader fuzz target with a plain driver (seed corpus + random mutations, bounded): runs
  # everywhere with g++; the libFuzzer build (CPUCNN_FUZZ) is for longer runs under ASan.
  add_executable(fuzz_load_driver "${_cpucnn_tests}/fuzz_load.cc" "${_cpucnn_tests}/fuzz_driver.cc")
  target_link_libraries(fuzz_load_driver PRIVATE cpucnn_static)
  # Once with the machine's best kernels, once per forced ISA: a CPU without one skips it (the
  # target exits with 77 and says "SKIPPED: CPU lacks <isa>"; ctest reports it as not run).
  if(CPUCNN_ARCH STREQUAL "aarch64")
    set(_cpucnn_fuzz_isas best scalar neon)
  elseif(CPUCNN_ARCH STREQUAL "x86_64")
    set(_cpucnn_fuzz_isas best scalar avx2 avx512)
  else()
    set(_cpucnn_fuzz_isas best scalar)
  endif()
  # Fewer under emulation (.ci/aarch64.sh sets 1500): qemu-user runs a loader pass ~20x slower.
  set(CPUCNN_FUZZ_SMOKE_RUNS 5000 CACHE STRING "Inputs each fuzz_load_smoke test tries")
  foreach(_isa IN LISTS _cpucnn_fuzz_isas)
    add_test(NAME fuzz_load_smoke_${_isa}
      COMMAND fuzz_load_driver -runs=${CPUCNN_FUZZ_SMOKE_RUNS} -seed=1 "${CPUCNN_TEST_MODELS}/corpus")
    set_tests_properties(fuzz_load_smoke_${_isa} PROPERTIES FIXTURES_REQUIRED cpucnn_models TIMEOUT 300
      SKIP_RETURN_CODE 77
      ENVIRONMENT "CPUCNN_FUZZ_CRASH_FILE=${CMAKE_CURRENT_BINARY_DIR}/fuzz_crash_${_isa};CPUCNN_ISA=$<$<NOT:$<STREQUAL:${_isa},best>>:${_isa}>")
  endforeach()

  # cpucnn-run end to end on a test model (.npy in, top-1 out; a bad input is a clean error).
  add_test(NAME cpucnn_run_smoke
    COMMAND cpucnn_run "${CPUCNN_TEST_MODELS}/lenet.cnn" "${CPUCNN_TEST_MODELS}/lenet_input.npy" --top 3
            --output "${CPUCNN_TEST_MODELS}/lenet_run_out.npy" --bench 20)
  set_tests_properties(cpucnn_run_smoke PROPERTIES FIXTURES_REQUIRED cpucnn_models
    PASS_REGULAR_EXPRESSION "p50 [0-9.]+ ms, p90 [0-9.]+ ms, p99")
  add_test(NAME cpucnn_run_bad_input
    COMMAND cpucnn_run "${CPUCNN_TEST_MODELS}/lenet.cnn" "${CPUCNN_TEST_MODELS}/lenet.cnn")
  set_tests_properties(cpucnn_run_bad_input PROPERTIES FIXTURES_REQUIRED cpucnn_models
    PASS_REGULAR_EXPRESSION "is not a .npy file")
  add_test(NAME cpucnn_run_compare
    COMMAND cpucnn_make_test_models --compare "${CPUCNN_TEST_MODELS}/lenet_run_out.npy"
            "${CPUCNN_TEST_MODELS}/lenet_expected.npy")
  set_tests_properties(cpucnn_run_compare PROPERTIES DEPENDS cpucnn_run_smoke FIXTURES_REQUIRED cpucnn_models)

  # The ISA files (kernels/<op>/avx2.cc, avx512.cc, the int8 avxvnni.cc, avx512vnni.cc) define
  # their kernels and nothing else the linker could share: no weak inline/template copy built with AVX flags (see cmake/check_isa_symbols.cmake).
  # Checked on the core's own objects and on the same files built at -O0, where nothing is inlined
  # and so every inline function and template they use shows.
  find_program(CPUCNN_NM NAMES "${CMAKE_NM}" nm)
  if(NOT CPUCNN_ARCH STREQUAL "x86_64")
    # NEON files are built with the baseline flags of aarch64: no copy of theirs can run where plain
    # code could not, so there is nothing to check there.
  elseif(CPUCNN_NM)
    set(_cpucnn_isa_sources ${CPUCNN_CORE_SOURCES})
    list(FILTER _cpucnn_isa_sources INCLUDE REGEX "/avx[a-z0-9]*\\.cc$")
    add_library(cpucnn_isa_O0 OBJECT ${_cpucnn_isa_sources})  # the ISA flags are source properties
    target_include_directories(cpucnn_isa_O0 PRIVATE "${_cpucnn_src}/cpp/src" "${_cpucnn_src}/cpp/include")
    target_compile_options(cpucnn_isa_O0 PRIVATE -O0)
    foreach(_objs IN ITEMS cpucnn_core cpucnn_isa_O0)
      add_test(NAME isa_symbols_${_objs}
        COMMAND ${CMAKE_COMMAND} -DNM=${CPUCNN_NM} "-DOBJECTS=$<JOIN:$<TARGET_OBJECTS:${_objs}>,|>"
                -P "${CMAKE_CURRENT_LIST_DIR}/check_isa_symbols.cmake")
    endforeach()
  else()
    message(STATUS "cpucnn: nm not found, the isa_symbols tests are not added")
  endif()
endif()

if(CPUCNN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "CPUCNN_FUZZ needs clang (CXX=clang++); use fuzz_load_driver with other compilers")
  endif()
  add_executable(fuzz_load "${_cpucnn_src}/cpp/tests/fuzz_load.cc")
  target_link_libraries(fuzz_load PRIVATE cpucnn_static)
  target_compile_options(fuzz_load PRIVATE -fsanitize=fuzzer,address)
  target_link_options(fuzz_load PRIVATE -fsanitize=fuzzer,address)
endif()
