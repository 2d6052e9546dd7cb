#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "core/limits.hpp"
#include "core/parallel.hpp"
#include "dispatch/cpu_features.hpp"
#include "dispatch/dispatch.hpp"

namespace py = pybind11;

namespace cpucnn::bindings {

void register_system(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Threads used by every op (n <= 0: all cores).");
  m.def("get_num_threads", &get_num_threads);
  m.def("available_isas", &available_isas, "ISAs this CPU can run, best first.");
  m.def("set_isa", &set_isa, py::arg("name"), "Force a kernel path (scalar, avx2, avx512 on x86-64; scalar, neon on aarch64).");
  m.def("set_max_activation_bytes", &set_max_activation_bytes, py::arg("n"),
        "The most bytes one sample's activations may take in one buffer (a layer's output or its "
        "unfolded input); models built or loaded afterwards are checked against it. n > 0.");
  m.def("get_max_activation_bytes", &max_activation_bytes);
  m.def("cpu_info", [] {
    const KernelTable& kt = kernels();
    const CpuFeatures& f = cpu_features();
    py::dict d;
    d["isa"] = kt.isa;
    d["available_isas"] = available_isas();
    py::dict impl;
    for (const auto& kv : kt.impl) impl[py::str(kv.first)] = kv.second;
    d["kernels"] = impl;
    d["brand"] = f.brand;
    py::dict feats;
    feats["avx2"] = f.avx2;
    feats["fma"] = f.fma;
    feats["avx512f"] = f.avx512f;
    feats["avx512bw"] = f.avx512bw;
    feats["avx512dq"] = f.avx512dq;
    feats["avx512vl"] = f.avx512vl;
    feats["avx512_vnni"] = f.avx512_vnni;
    feats["avx512_bf16"] = f.avx512_bf16;
    feats["amx"] = f.amx;
    feats["asimd"] = f.asimd;      // aarch64: NEON
    feats["asimddp"] = f.asimddp;  // aarch64: dot product (SDOT/UDOT)
    feats["fphp"] = f.fphp;        // aarch64: half-precision scalar arithmetic
    feats["asimdhp"] = f.asimdhp;  // aarch64: half-precision vector arithmetic
    d["features"] = feats;
    d["num_threads"] = get_num_threads();
#ifdef _OPENMP
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
    d["version"] = CPUCNN_VERSION_STRING;
    return d;
  });
  m.attr("__version__") = CPUCNN_VERSION_STRING;
}

}  // namespace cpucnn::bindings
