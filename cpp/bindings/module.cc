// The cpucnn._core module: exception translation and the areas' register
// functions. Nothing outside cpp/bindings includes pybind11.
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "core/errors.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "cpucnn's C++ core: models, layers, kernels";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const cpucnn::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const cpucnn::FileNotFound& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const cpucnn::IOError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    }
  });
  cpucnn::bindings::register_system(m);
  cpucnn::bindings::register_model(m);
  cpucnn::bindings::register_kernels(m);
  cpucnn::bindings::register_data(m);
  cpucnn::bindings::register_int8(m);
}
