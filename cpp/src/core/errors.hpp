// Error types of the core. The bindings translate them to Python exceptions:
//   std::invalid_argument (and ValueError below) -> ValueError
//   TypeError                                    -> TypeError
//   FileNotFound                                 -> FileNotFoundError
//   IOError                                      -> OSError
// Core code never includes pybind11; the C API turns them into error strings.
#pragma once

#include <stdexcept>
#include <string>

namespace cpucnn {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct FileNotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct IOError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace cpucnn
