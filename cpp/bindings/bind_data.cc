// cpucnn._core.BatchLoader: the C++ side of cpucnn.data. The source arrays are
// held (referenced, never copied) for the loader's lifetime; workers read them
// through raw pointers without the GIL. Batches come back as numpy arrays that
// own the buffers the workers filled (no copy).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "core/errors.hpp"
#include "data/loader.hpp"

namespace py = pybind11;

namespace cpucnn::bindings {

namespace {

struct PyLoader {
  py::object x, y;                      // keep the sources alive (y: None without labels)
  std::unique_ptr<data::BatchLoader> loader;
  py::object y_dtype;
  std::vector<py::ssize_t> y_row_shape;
};

template <typename T>
py::array owning_array(std::vector<T>&& v, std::vector<py::ssize_t> shape, const py::dtype& dt) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array(dt, std::move(shape), {}, heap->data(), owner);
}

bool c_contiguous(const py::array& a) { return (a.flags() & py::array::c_style) != 0; }

}  // namespace

void register_data(py::module_& m) {
  py::class_<PyLoader>(m, "BatchLoader",
                       "One epoch of a cpucnn.data pipeline: batches made by C++ worker threads.")
      .def(py::init([](py::array x, py::object y, py::array_t<int64_t, py::array::c_style | py::array::forcecast> order,
                       int64_t batch_size, bool drop_remainder, std::tuple<int64_t, int64_t> out_hw, int64_t pad,
                       bool crop, bool flip, float scale, std::vector<float> mean, std::vector<float> std,
                       uint64_t seed, uint64_t epoch, int64_t index_offset, int workers, int prefetch) {
             auto pl = std::make_unique<PyLoader>();
             pl->y = py::none();
             data::LoaderConfig cfg;
             if (x.ndim() != 4)
               throw ValueError("data: x must be (N, C, H, W), got " + std::to_string(x.ndim()) + " dimensions");
             if (!c_contiguous(x)) throw ValueError("data: x must be C-contiguous");
             const py::dtype dt = x.dtype();
             const bool native = dt.byteorder() != '>';
             if (dt.kind() == 'u' && dt.itemsize() == 1)
               cfg.spec.type = data::SourceType::u8;
             else if (dt.kind() == 'f' && dt.itemsize() == 4 && native)
               cfg.spec.type = data::SourceType::f32;
             else
               throw TypeError("data: x must be uint8 or float32, got " +
                               py::str(x.dtype()).cast<std::string>());
             cfg.n = x.shape(0);
             cfg.spec.c = x.shape(1);
             cfg.spec.h = x.shape(2);
             cfg.spec.w = x.shape(3);
             cfg.spec.out_h = std::get<0>(out_hw);
             cfg.spec.out_w = std::get<1>(out_hw);
             cfg.spec.pad = pad;
             cfg.spec.crop = crop;
             cfg.spec.flip = flip;
             cfg.spec.scale = scale;
             cfg.spec.mean = std::move(mean);
             cfg.spec.std = std::move(std);
             cfg.spec.seed = seed;
             cfg.x = static_cast<const uint8_t*>(x.data());
             if (!y.is_none()) {
               py::array ya = py::array::ensure(y);
               if (!ya || ya.ndim() < 1 || ya.shape(0) != cfg.n || !c_contiguous(ya))
                 throw ValueError("data: y must be a C-contiguous array with one row per sample");
               cfg.y = static_cast<const uint8_t*>(ya.data());
               cfg.y_row_bytes = ya.shape(0) ? static_cast<int64_t>(ya.nbytes()) / ya.shape(0) : ya.itemsize();
               pl->y_dtype = ya.dtype();
               for (py::ssize_t i = 1; i < ya.ndim(); ++i) pl->y_row_shape.push_back(ya.shape(i));
               pl->y = ya;
             }
             cfg.order.assign(order.data(), order.data() + order.size());
             cfg.index_offset = index_offset;
             cfg.batch_size = batch_size;
             cfg.drop_remainder = drop_remainder;
             cfg.workers = workers;
             cfg.prefetch = prefetch;
             cfg.epoch = epoch;
             pl->x = x;
             pl->loader = std::make_unique<data::BatchLoader>(std::move(cfg));
             return pl;
           }),
           py::arg("x"), py::arg("y"), py::arg("order"), py::arg("batch_size"), py::arg("drop_remainder"),
           py::arg("out_hw"), py::arg("pad"), py::arg("crop"), py::arg("flip"), py::arg("scale"), py::arg("mean"),
           py::arg("std"), py::arg("seed"), py::arg("epoch"), py::arg("index_offset"), py::arg("workers"),
           py::arg("prefetch"))
      .def_property_readonly("num_batches", [](PyLoader& s) { return s.loader ? s.loader->num_batches() : 0; })
      .def_property_readonly("live_workers", [](PyLoader& s) { return s.loader ? s.loader->live_workers() : 0; })
      .def("next",
           [](PyLoader& s) -> py::object {
             if (!s.loader) return py::none();
             data::Batch b;
             bool got;
             {
               py::gil_scoped_release nogil;
               got = s.loader->next(b);
             }
             if (!got) return py::none();
             const data::AugmentSpec& sp = s.loader->config().spec;
             py::array xb = owning_array(std::move(b.x), {b.size, sp.c, sp.out_h, sp.out_w}, py::dtype::of<float>());
             if (s.y.is_none()) return py::make_tuple(xb, py::none());
             std::vector<py::ssize_t> yshape = {b.size};
             yshape.insert(yshape.end(), s.y_row_shape.begin(), s.y_row_shape.end());
             // y rows are raw bytes of y's dtype: view them with that dtype.
             py::array yb = owning_array(std::move(b.y), {b.size * s.loader->config().y_row_bytes},
                                         py::dtype::of<uint8_t>());
             return py::make_tuple(xb, yb.attr("view")(s.y_dtype).attr("reshape")(py::tuple(py::cast(yshape))));
           },
           "The next batch (x, y) in order, or None after the last; waits without the GIL.")
      .def("close",
           [](PyLoader& s) {
             if (!s.loader) return;
             py::gil_scoped_release nogil;
             s.loader->close();
           },
           "Stops and joins the worker threads (also done when the loader is destroyed).");
}

}  // namespace cpucnn::bindings
