"""What the built binaries export and define: the Python module exports only its init function (the
core is compiled with hidden visibility and the module linked with a version script, CMakeLists.txt);
the C++ header cpucnn.hpp defines nothing the static library also defines."""

import os
import re
import shutil
from pathlib import Path

import pytest

import cpucnn as cc

from runtime_util import run  # tests/runtime is on sys.path under pytest


def _nm():
    nm = shutil.which("nm")
    if not nm:
        pytest.skip("nm is not installed")
    return nm


def test_core_module_exports_only_pyinit():
    """_core exports PyInit__core and nothing else: no core C++ symbol, no std template instance or
    typeinfo (libstdc++ keeps those visible whatever -fvisibility says) that another library loaded
    into the process could interpose with or bind to."""
    so = Path(cc._core.__file__).resolve()
    if so.suffix != ".so":
        pytest.skip(f"{so.name} is not an ELF shared object")
    proc = run([_nm(), "-D", "--defined-only", so])
    names = sorted({line.split()[-1] for line in proc.stdout.splitlines() if line.strip()})
    assert names == ["PyInit__core"], f"{so} exports {len(names)} symbols, not only PyInit__core: {names[:30]}"


_HEADER_USER = r"""
#include <utility>
#include <vector>

#include "cpucnn/cpucnn.hpp"

// Every name of the header, odr-used: built at -O0, each inline function is emitted (weak).
int use(const char* path) {
  cpucnn::rt::set_num_threads(1);
  int n = static_cast<int>(cpucnn::rt::version().size());
  try {
    cpucnn::rt::Model a(path);
    cpucnn::rt::Model m(std::move(a));
    a = std::move(m);
    const cpucnn::rt::Shape s = a.input_shape();
    std::vector<float> x(static_cast<size_t>(a.input_size()), 0.0f), y(static_cast<size_t>(a.output_size()));
    a.predict(x.data(), 1, y.data());
    n += a.argmax(a.predict(x, 1), 0) + s.c + (a.get() != nullptr);
  } catch (const cpucnn::rt::Error& e) {
    n += static_cast<int>(e.what()[0]);
  }
  return n;
}
"""


def _cxx():
    for cxx in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if cxx and shutil.which(cxx):
            return cxx
    pytest.skip("no C++ compiler")


def _defined(nm, path):
    """Demangled names of the external (global or weak) definitions in an object or archive."""
    out = run([nm, "-C", "--defined-only", "--extern-only", path]).stdout
    return {m.group(1) for m in re.finditer(r"^[0-9a-fA-F]* *[A-Za-z] (.+)$", out, re.M)}


def test_cpp_header_names_stay_clear_of_the_library(prefix, tmp_path):
    """cpucnn.hpp defines its inline functions and classes in namespace cpucnn::rt, and the library
    (the static one, what an application links with the header) defines nothing there: no function
    of the header is also one of the core's, in namespace cpucnn (once, the header's inline
    cpucnn::set_num_threads(int) was a second definition of the core's: an ODR violation)."""
    nm = _nm()
    src = tmp_path / "use_header.cc"
    src.write_text(_HEADER_USER)
    obj = tmp_path / "use_header.o"
    run([_cxx(), "-std=c++17", "-O0", "-Wall", "-Wextra", "-Werror", f"-I{prefix / 'include'}", "-c", src, "-o", obj])
    header = {name for name in _defined(nm, obj) if "cpucnn" in name}
    assert any(name.startswith("cpucnn::rt::Model::") for name in header), sorted(header)
    outside = sorted(name for name in header if re.search(r"\bcpucnn::(?!rt::)", name))
    assert not outside, f"cpucnn.hpp defines names outside cpucnn::rt: {outside}"
    library = _defined(nm, prefix / "lib/libcpucnn.a")
    assert not [name for name in library if "cpucnn::rt::" in name], "the library defines names in cpucnn::rt"
    assert not sorted(header & library), f"defined by both cpucnn.hpp and libcpucnn.a: {sorted(header & library)}"
