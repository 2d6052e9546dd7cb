# The symbols of the ISA object files (kernels/<op>/avx2.cc, avx512.cc, and the int8 VNNI files
# avxvnni.cc, avx512vnni.cc: every kernels/<op>/avx*.cc), checked with nm: the ctest
# isa_symbols (cmake/runtime.cmake) runs this on the core's objects and on the same files built at -O0.
#
#   cmake -DNM=nm "-DOBJECTS=a.o|b.o|..." -P cmake/check_isa_symbols.cmake
#
# Why: an ISA file is compiled with -mavx2 or -mavx512f. A weak definition it emits (an inline
# function or template instance: std::min<long>, std::vector<float>::_M_default_append, an inline
# helper from a header) may be the one copy the linker keeps for the whole program, so plain code
# calling it on an older CPU runs AVX instructions: SIGILL. Hence, in each ISA object:
#   - no weak or unique definition (nm types W, V, u, i);
#   - the only global definitions are kernel entry points, cpucnn::<name>_<the file's ISA> (no
#     allow-list: the scratch sizes the ops layer asks for live in kernels/scratch.cc);
#   - no reference to the C++ library or runtime (std::, operator new/delete, __cxa_*,
#     __tls_get_addr): kernels allocate nothing, throw nothing, keep no thread_local state.
# Helpers an ISA file needs have internal linkage (static or an anonymous namespace), as do the
# inline functions of the headers it includes. -O0 shows every inline function a file uses (nothing
# is inlined), which is why the test also checks objects built at -O0.
cmake_minimum_required(VERSION 3.18)

if(NOT NM OR NOT OBJECTS)
  message(FATAL_ERROR "usage: cmake -DNM=<nm> -DOBJECTS=<a.o|b.o|...> -P check_isa_symbols.cmake")
endif()
string(REPLACE "|" ";" _objects "${OBJECTS}")
list(FILTER _objects INCLUDE REGEX "/avx[a-z0-9]*\\.cc\\.o(bj)?$")
list(LENGTH _objects _count)
set(_seen_avx2 FALSE)
set(_seen_avx512 FALSE)
foreach(_obj IN LISTS _objects)
  if(_obj MATCHES "/avx2\\.cc\\.o")
    set(_seen_avx2 TRUE)
  elseif(_obj MATCHES "/avx512\\.cc\\.o")
    set(_seen_avx512 TRUE)
  endif()
endforeach()
if(NOT _seen_avx2 OR NOT _seen_avx512)
  message(FATAL_ERROR "check_isa_symbols: expected avx2.cc and avx512.cc objects among ${OBJECTS}")
endif()

set(_bad "")
set(_kernels 0)
foreach(_obj IN LISTS _objects)
  if(NOT EXISTS "${_obj}")
    message(FATAL_ERROR "check_isa_symbols: ${_obj} does not exist (build first)")
  endif()
  execute_process(COMMAND "${NM}" -C --defined-only "${_obj}"
                  OUTPUT_VARIABLE _defined ERROR_VARIABLE _err RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "check_isa_symbols: ${NM} failed on ${_obj}: ${_err}")
  endif()
  execute_process(COMMAND "${NM}" -C --undefined-only "${_obj}"
                  OUTPUT_VARIABLE _undefined ERROR_VARIABLE _err RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "check_isa_symbols: ${NM} failed on ${_obj}: ${_err}")
  endif()
  string(REGEX REPLACE "^.*/kernels/" "kernels/" _short "${_obj}")
  string(REGEX REPLACE "^.*/(avx[a-z0-9]*)\\.cc\\.o(bj)?$" "\\1" _isa "${_obj}")   # its entry points' suffix
  # One "TYPE NAME" a line ("[value] type name"); names may hold spaces once demangled.
  string(REPLACE ";" "\\;" _defined "${_defined}")
  string(REPLACE "\n" ";" _defined "${_defined}")
  foreach(_line IN LISTS _defined)
    if(NOT _line MATCHES "^[0-9a-fA-F]* *([A-Za-z?-]) (.+)$")
      continue()
    endif()
    set(_type "${CMAKE_MATCH_1}")
    set(_name "${CMAKE_MATCH_2}")
    if(_type MATCHES "^[WVui]$")
      list(APPEND _bad "${_short}: weak/unique definition (${_type}) ${_name}")
    elseif(_type MATCHES "^[A-Z]$")  # global (uppercase), not weak
      if(_type STREQUAL "T" AND _name MATCHES "^cpucnn::[A-Za-z0-9_]+_${_isa}\\(")
        math(EXPR _kernels "${_kernels} + 1")
      else()
        list(APPEND _bad "${_short}: global (${_type}) that is not a kernel entry point: ${_name}")
      endif()
    endif()
  endforeach()
  string(REPLACE ";" "\\;" _undefined "${_undefined}")
  string(REPLACE "\n" ";" _undefined "${_undefined}")
  foreach(_line IN LISTS _undefined)
    if(_line MATCHES "^ *[Uvw] (.+)$")
      set(_name "${CMAKE_MATCH_1}")
      if(_name MATCHES "^(std::|operator new|operator delete|__cxa_|__gxx_|__tls_get_addr)")
        list(APPEND _bad "${_short}: uses the C++ library/runtime: ${_name}")
      endif()
    endif()
  endforeach()
endforeach()

if(_bad)
  list(LENGTH _bad _n)
  string(REPLACE ";" "\n  " _list "${_bad}")
  message(FATAL_ERROR "check_isa_symbols: ${_n} problem(s) in ${_count} ISA object files:\n  ${_list}\n"
          "ISA files may define only their kernels (cpucnn::<name>_<isa>) and helpers with "
          "internal linkage (static / anonymous namespace): a weak copy built with AVX flags can be the "
          "one the whole program calls (SIGILL on older CPUs). See cmake/check_isa_symbols.cmake.")
endif()
message(STATUS "check_isa_symbols: ${_count} ISA object files, ${_kernels} kernel entry points, nothing else")
