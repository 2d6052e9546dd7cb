# Cross-build for aarch64 Linux with Debian's g++-aarch64-linux-gnu (apt-get install
# g++-aarch64-linux-gnu qemu-user); tests run under qemu-aarch64 through ctest.
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCPUCNN_PYTHON=OFF
#   cmake --build build/aarch64 -j2 && ctest --test-dir build/aarch64
#
# NEON (ASIMD) is baseline on ARMv8-A: no -march flag is needed (and none is set: the build runs on
# any aarch64 CPU). CPUCNN_AARCH64_PREFIX overrides the triple prefix; CPUCNN_AARCH64_SYSROOT the
# target root qemu loads libraries from.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT DEFINED CPUCNN_AARCH64_PREFIX)
  set(CPUCNN_AARCH64_PREFIX aarch64-linux-gnu)
endif()
if(NOT DEFINED CPUCNN_AARCH64_SYSROOT)
  set(CPUCNN_AARCH64_SYSROOT /usr/${CPUCNN_AARCH64_PREFIX})
endif()
set(CMAKE_C_COMPILER ${CPUCNN_AARCH64_PREFIX}-gcc)
set(CMAKE_CXX_COMPILER ${CPUCNN_AARCH64_PREFIX}-g++)
find_program(CMAKE_NM NAMES ${CPUCNN_AARCH64_PREFIX}-nm)
find_program(CMAKE_STRIP NAMES ${CPUCNN_AARCH64_PREFIX}-strip)

# ctest (and add_test commands naming a target) run the aarch64 binaries through qemu-user.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;${CPUCNN_AARCH64_SYSROOT})

set(CMAKE_FIND_ROOT_PATH ${CPUCNN_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
