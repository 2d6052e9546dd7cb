#pragma once

#include <pybind11/pybind11.h>

namespace cpucnn::bindings {

void register_system(pybind11::module_& m);  // threads, ISA, cpu_info
void register_model(pybind11::module_& m);   // Model
void register_kernels(pybind11::module_& m); // _core.kernels: ops for tests and benchmarks
void register_data(pybind11::module_& m);    // BatchLoader: cpucnn.data's worker threads
void register_int8(pybind11::module_& m);    // _core.int8: the int8 kernels by ISA (tests)

}  // namespace cpucnn::bindings
