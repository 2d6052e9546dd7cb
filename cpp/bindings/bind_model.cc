#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bindings.hpp"
#include "core/errors.hpp"
#include "model/model_file.hpp"
#include "model/sequential.hpp"

namespace py = pybind11;

namespace cpucnn::bindings {

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using LabelArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

Dims dims_of(const py::array& a) {
  Dims d;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) d.push_back(a.shape(i));
  return d;
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>() + " array"; }

py::tuple to_tuple(const Dims& d) {
  py::tuple t(d.size());
  for (size_t i = 0; i < d.size(); ++i) t[i] = d[i];
  return t;
}

// The model's readers-writer lock (Sequential::mutex), always taken with the
// GIL released: a thread waiting for it never blocks the interpreter, and a
// thread holding it never waits for the GIL.
using ReadLock = std::shared_lock<RwLock>;
using WriteLock = std::unique_lock<RwLock>;

// A Collective (model/collective.hpp) that calls a Python function with the
// values as a float64 numpy view; the function sums them over the processes in
// place (cpucnn.distributed does it with mpi4py's Allreduce). Called from a
// training step that runs without the GIL: it takes the GIL only for the call.
class PyCollective : public Collective {
 public:
  explicit PyCollective(py::function fn) : fn_(std::move(fn)) {}
  ~PyCollective() override {
    py::gil_scoped_acquire gil;
    fn_ = py::function();
  }
  void allreduce_sum(double* values, int64_t n) override {
    py::gil_scoped_acquire gil;
    try {
      py::capsule owner(values, [](void*) {});   // a view: the layer owns the values
      py::array_t<double> view({static_cast<py::ssize_t>(n)}, {static_cast<py::ssize_t>(sizeof(double))}, values,
                               owner);
      fn_(view);
    } catch (py::error_already_set& e) {
      // Turned into a C++ error here, with the GIL held, so nothing Python
      // crosses the GIL-free code above us.
      throw std::runtime_error(std::string("sync_batchnorm: the allreduce of the batch statistics failed: ") +
                               e.what());
    }
  }

 private:
  py::function fn_;
};

// A GradientSink calling fn(offset, count) with the GIL (cpucnn.distributed starts
// the allreduce of that range of the gradient buffer).
class PySink : public GradientSink {
 public:
  explicit PySink(py::function fn) : fn_(std::move(fn)) {}
  void ready(int64_t offset, int64_t count) override {
    py::gil_scoped_acquire gil;
    try {
      fn_(offset, count);
    } catch (py::error_already_set& e) {
      throw std::runtime_error(std::string("the gradient allreduce failed: ") + e.what());
    }
  }

 private:
  py::function fn_;
};

// The model as Python sees it. Inference, reading parameters and saving hold
// the lock shared; training, parameter writes and compile hold it exclusively.
struct PyModel {
  std::unique_ptr<Sequential> m;
  std::unique_ptr<PyCollective> collective;   // set_collective's; the model points to it

  Param& param(size_t i, const std::string& name) {
    if (i >= m->size()) throw py::index_error("layer index out of range");
    Param* p = m->layer(i).find_param(name);
    if (!p) throw ValueError(m->layer(i).label() + " has no parameter '" + name + "'");
    return *p;
  }

  // Validates (x, y) for a loss; returns n.
  int64_t check_xy(const FloatArray& x, const py::array& y) {
    m->check_input(dims_of(x));
    const int64_t n = x.shape(0);
    if (y.ndim() == 0 || y.shape(0) != n)
      throw ValueError("x has " + std::to_string(n) + " samples but y has shape " + shape_str(dims_of(y)));
    if (m->loss_name() == "mse") {
      const Dims want = {n, m->output_shape()[0]};
      if (dims_of(y) != want)
        throw ValueError("mse needs targets y of shape " + shape_str(want) + ", got " + shape_str(dims_of(y)));
    } else if (y.ndim() == 2) {
      const Dims want = {n, m->output_shape()[0]};
      if (dims_of(y) != want)
        throw ValueError("cross_entropy needs labels y of shape (" + std::to_string(n) +
                         ",) or probability targets of shape " + shape_str(want) + ", got " + shape_str(dims_of(y)));
    } else if (y.ndim() != 1) {
      throw ValueError("cross_entropy needs labels y of shape (" + std::to_string(n) + ",), got " +
                       shape_str(dims_of(y)));
    }
    return n;
  }

  // Float targets: mse's, or cross_entropy's probabilities (y of two dimensions).
  bool float_targets(const py::array& y) const { return m->loss_name() == "mse" || y.ndim() == 2; }

  // Checks and converts a batch (x, y, sample_weight), then returns run(n, labels, targets, weights)
  // (labels or targets null, weights null for none) called with the GIL released, holding a Lock
  // (ReadLock or WriteLock) on the model.
  template <typename Lock, typename Run>
  auto with_batch(const FloatArray& x, const py::array& y, const py::object& sample_weight, Run&& run) {
    const int64_t n = check_xy(x, y);
    const FloatArray w = weights(sample_weight, n);
    const float* wp = sample_weight.is_none() ? nullptr : w.data();
    if (float_targets(y)) {
      FloatArray t = FloatArray::ensure(y);
      if (!t) throw py::type_error("targets y must be convertible to float32, got " + dtype_str(y));
      py::gil_scoped_release nogil;
      Lock lock(m->mutex());
      return run(n, static_cast<const int64_t*>(nullptr), t.data(), wp);
    }
    LabelArray t = LabelArray::ensure(y);
    if (!t) throw py::type_error("labels y must be convertible to int64, got " + dtype_str(y));
    py::gil_scoped_release nogil;
    Lock lock(m->mutex());
    return run(n, t.data(), static_cast<const float*>(nullptr), wp);
  }

  // sample_weight as float32 (n), or an empty array for none.
  static FloatArray weights(const py::object& w, int64_t n) {
    if (w.is_none()) return FloatArray();
    FloatArray a = FloatArray::ensure(w);
    if (!a) throw py::type_error("sample_weight must be convertible to float32");
    if (a.ndim() != 1 || a.shape(0) != n)
      throw ValueError("sample_weight must have shape (" + std::to_string(n) + ",), got " + shape_str(dims_of(a)));
    return a;
  }
};

}  // namespace

void register_model(py::module_& mod) {
  py::class_<PyModel>(mod, "Model")
      .def(py::init([](const std::string& arch, uint64_t seed) {
             auto pm = std::make_unique<PyModel>();
             pm->m = std::make_unique<Sequential>(json::parse(arch), seed);
             return pm;
           }),
           py::arg("architecture"), py::arg("seed"))
      .def("architecture", [](PyModel& s) { return json::dump(s.m->architecture()); })
      .def_property_readonly("input_shape", [](PyModel& s) { return to_tuple(s.m->input_shape()); })
      .def_property_readonly("output_shape", [](PyModel& s) { return to_tuple(s.m->output_shape()); })
      .def_property_readonly("num_layers", [](PyModel& s) { return s.m->size(); })
      .def_property_readonly("seed", [](PyModel& s) { return s.m->seed(); })
      .def_property("step_count", [](PyModel& s) { return s.m->step_count(); },
                    [](PyModel& s, uint64_t v) {
                      py::gil_scoped_release nogil;
                      WriteLock lock(s.m->mutex());
                      s.m->set_step_count(v);
                    })
      .def("layer_info",
           [](PyModel& s, size_t i) {
             if (i >= s.m->size()) throw py::index_error("layer index out of range");
             const Layer& l = s.m->layer(i);
             py::dict d;
             d["type"] = l.type();
             d["label"] = l.label();
             d["config"] = json::dump(l.config());
             d["input_shape"] = to_tuple(l.in_shape);
             d["output_shape"] = to_tuple(l.out_shape);
             int64_t count = 0;
             py::list names;
             for (const Param& p : l.params()) {
               names.append(py::make_tuple(p.name, to_tuple(p.value.shape()), p.trainable));
               if (p.trainable) count += p.value.numel();
             }
             d["params"] = names;
             d["trainable_count"] = count;
             d["trainable"] = !l.frozen();
             d["macs"] = l.macs();
             return d;
           })
      .def("set_trainable",
           [](PyModel& s, size_t i, bool trainable) {
             if (i >= s.m->size()) throw py::index_error("layer index out of range");
             py::gil_scoped_release nogil;
             WriteLock lock(s.m->mutex());
             s.m->set_trainable(i, trainable);
           },
           py::arg("index"), py::arg("trainable"), "layer.trainable: False freezes the layer's parameters.")
      .def("get_param",
           [](PyModel& s, size_t i, const std::string& name) {
             const Param& p = s.param(i, name);   // the set of parameters never changes
             py::array_t<float> out(p.value.shape());
             float* o = out.mutable_data();
             py::gil_scoped_release nogil;
             ReadLock lock(s.m->mutex());
             std::memcpy(o, p.value.data(), p.value.numel() * sizeof(float));
             return out;
           })
      .def("get_params",
           [](PyModel& s, const std::vector<std::pair<size_t, std::string>>& which) {
             std::vector<const Param*> ps;
             std::vector<py::array_t<float>> outs;
             for (const auto& w : which) {
               ps.push_back(&s.param(w.first, w.second));
               outs.emplace_back(ps.back()->value.shape());
             }
             std::vector<float*> dst;
             for (auto& o : outs) dst.push_back(o.mutable_data());
             {
               py::gil_scoped_release nogil;
               ReadLock lock(s.m->mutex());
               for (size_t k = 0; k < ps.size(); ++k)
                 std::memcpy(dst[k], ps[k]->value.data(), ps[k]->value.numel() * sizeof(float));
             }
             return outs;
           },
           py::arg("which"), "Several parameters [(layer, name)], read as one snapshot.")
      .def("set_param",
           [](PyModel& s, size_t i, const std::string& name, const FloatArray& v) {
             Param& p = s.param(i, name);
             if (dims_of(v) != p.value.shape())
               throw ValueError(s.m->layer(i).label() + ": " + name + " must have shape " +
                                shape_str(p.value.shape()) + ", got " + shape_str(dims_of(v)));
             py::gil_scoped_release nogil;
             WriteLock lock(s.m->mutex());
             std::memcpy(p.value.data(), v.data(), p.value.numel() * sizeof(float));
             s.m->parameters_changed();
           })
      .def("set_params",
           [](PyModel& s, const std::vector<std::tuple<size_t, std::string, FloatArray>>& items) {
             std::vector<Param*> ps;
             for (const auto& [i, name, v] : items) {
               Param& p = s.param(i, name);
               if (dims_of(v) != p.value.shape())
                 throw ValueError(s.m->layer(i).label() + ": " + name + " must have shape " +
                                  shape_str(p.value.shape()) + ", got " + shape_str(dims_of(v)));
               ps.push_back(&p);
             }
             py::gil_scoped_release nogil;
             WriteLock lock(s.m->mutex());
             for (size_t k = 0; k < ps.size(); ++k)
               std::memcpy(ps[k]->value.data(), std::get<2>(items[k]).data(), ps[k]->value.numel() * sizeof(float));
             s.m->parameters_changed();
           },
           py::arg("items"), "Several parameters [(layer, name, array)], written as one update.")
      .def("compile",
           [](PyModel& s, const std::string& loss, const std::string& optimizer) {
             const json::Value opt = json::parse(optimizer);
             py::gil_scoped_release nogil;
             WriteLock lock(s.m->mutex());
             s.m->compile(loss, opt);
           })
      .def_property(
          "label_smoothing", [](PyModel& s) { return s.m->label_smoothing(); },
          [](PyModel& s, float e) {
            py::gil_scoped_release nogil;
            WriteLock lock(s.m->mutex());
            s.m->set_label_smoothing(e);
          })
      .def_property_readonly("compiled", [](PyModel& s) { return s.m->compiled(); })
      .def_property_readonly("loss", [](PyModel& s) { return s.m->loss_name(); })
      .def("optimizer_config",
           [](PyModel& s) {
             if (!s.m->compiled()) throw ValueError("the model is not compiled");
             return json::dump(s.m->optimizer()->config());
           })
      .def_property(
          "lr",
          [](PyModel& s) {
            if (!s.m->compiled()) throw ValueError("the model is not compiled");
            return s.m->optimizer()->lr;
          },
          [](PyModel& s, float lr) {
            if (!(lr >= 0.0f) || lr == INFINITY) throw ValueError("lr must be a finite non-negative number");
            py::gil_scoped_release nogil;
            WriteLock lock(s.m->mutex());
            if (!s.m->compiled()) throw ValueError("the model is not compiled");
            s.m->optimizer()->lr = lr;
          })
      .def_property_readonly("optimizer_steps", [](PyModel& s) {
        return s.m->compiled() ? s.m->optimizer()->steps() : 0;
      })
      .def("train_step",
           [](PyModel& s, const FloatArray& x, const py::array& y, const py::object& sample_weight) {
             const StepResult r = s.with_batch<WriteLock>(
                 x, y, sample_weight, [&](int64_t n, const int64_t* labels, const float* targets, const float* w) {
                   return s.m->train_step(x.data(), n, labels, targets, w);
                 });
             return py::make_tuple(r.loss, r.correct);
           },
           py::arg("x"), py::arg("y"), py::arg("sample_weight") = py::none(),
           "One training step; returns (mean loss, top-1 hits). y: labels (N,), or (N, outputs) targets "
           "(mse's, or cross_entropy's probabilities); sample_weight: (N,) or None.")
      .def("compute_gradients",
           [](PyModel& s, const FloatArray& x, const py::array& y, const py::object& sample_weight) {
             const StepResult r = s.with_batch<WriteLock>(
                 x, y, sample_weight, [&](int64_t n, const int64_t* labels, const float* targets, const float* w) {
                   return s.m->compute_gradients(x.data(), n, labels, targets, w);
                 });
             return py::make_tuple(r.loss, r.correct);
           },
           py::arg("x"), py::arg("y"), py::arg("sample_weight") = py::none(),
           "train_step's first half: forward, loss, backward; returns (mean loss, top-1 hits) and leaves the "
           "gradients of the batch's mean loss in the parameters (apply_gradients updates them).")
      .def("compute_gradients_overlapped",
           [](PyModel& s, const FloatArray& x, const py::array& y, const py::object& sample_weight, float pack_scale,
              const py::function& on_ready, int64_t bucket_floats) {
             PySink sink(on_ready);
             const StepResult r = s.with_batch<WriteLock>(
                 x, y, sample_weight, [&](int64_t n, const int64_t* labels, const float* targets, const float* w) {
                   return s.m->compute_gradients_overlapped(x.data(), n, labels, targets, w, pack_scale, sink,
                                                            bucket_floats);
                 });
             return py::make_tuple(r.loss, r.correct);
           },
           py::arg("x"), py::arg("y"), py::arg("sample_weight"), py::arg("pack_scale"), py::arg("on_ready"),
           py::arg("bucket_floats"),
           "compute_gradients that packs the gradients (times pack_scale) into gradient_buffer() during the "
           "backward pass and calls on_ready(offset, count) for each bucket as soon as it is final.")
      .def("gradient_buckets",
           [](PyModel& s, int64_t bucket_floats) {
             py::gil_scoped_release nogil;
             WriteLock lock(s.m->mutex());
             return s.m->gradient_buckets(bucket_floats);
           },
           py::arg("bucket_floats"), "The (offset, count) ranges compute_gradients_overlapped hands over, in order.")
      .def("idle_gradients",
           [](PyModel& s) {
             py::gil_scoped_release nogil;
             WriteLock lock(s.m->mutex());
             s.m->idle_gradients();
           },
           "A data-parallel step without samples: zero gradients, the same collective calls as a step.")
      .def("gradient_buffer",
           [](py::object self) {
             PyModel& s = self.cast<PyModel&>();
             float* p;
             int64_t n;
             {
               py::gil_scoped_release nogil;
               WriteLock lock(s.m->mutex());
               n = s.m->gradient_numel() + Sequential::kGradientExtra;
               p = s.m->gradient_buffer();
             }
             // A view kept valid by the model object (the buffer lives as long as the model).
             return py::array_t<float>({static_cast<py::ssize_t>(n)}, {static_cast<py::ssize_t>(sizeof(float))}, p,
                                       self);
           },
           "The gradients as one contiguous float32 array (a view, no copy), in parameter order, then 2 slots "
           "for the caller.")
      .def("pack_gradients",
           [](PyModel& s, float scale) {
             py::gil_scoped_release nogil;
             WriteLock lock(s.m->mutex());
             s.m->pack_gradients(scale);
           },
           py::arg("scale"), "gradient_buffer() = gradients * scale.")
      .def("apply_gradients",
           [](PyModel& s, const py::object& unpack_scale) {
             const bool unpack = !unpack_scale.is_none();
             const float scale = unpack ? unpack_scale.cast<float>() : 1.0f;
             py::gil_scoped_release nogil;
             WriteLock lock(s.m->mutex());
             if (unpack) s.m->unpack_gradients(scale);
             s.m->apply_gradients();
           },
           py::arg("unpack_scale") = py::none(),
           "train_step's second half: clip and update. With unpack_scale, the gradients are first read back "
           "from gradient_buffer() times unpack_scale.")
      .def_property(
          "dropout_stream", [](PyModel& s) { return s.m->dropout_stream(); },
          [](PyModel& s, uint64_t v) {
            py::gil_scoped_release nogil;
            WriteLock lock(s.m->mutex());
            s.m->set_dropout_stream(v);
          },
          "Dropout's random stream in training (0: the model's seed; data-parallel training sets the rank).")
      .def("set_collective",
           [](PyModel& s, const py::object& fn) {
             std::unique_ptr<PyCollective> c;
             if (!fn.is_none()) c = std::make_unique<PyCollective>(fn.cast<py::function>());
             {
               py::gil_scoped_release nogil;
               WriteLock lock(s.m->mutex());
               s.m->set_collective(c.get());
             }
             s.collective = std::move(c);
           },
           py::arg("fn"),
           "fn(values: float64 array) sums values over the processes in place (synced BatchNorm statistics); "
           "None: per-process statistics.")
      .def("predict",
           [](PyModel& s, const FloatArray& x, int64_t batch_size) {
             s.m->check_input(dims_of(x));
             const int64_t n = x.shape(0);
             Dims od = {n};
             for (int64_t d : s.m->output_shape()) od.push_back(d);
             py::array_t<float> out(od);
             float* o = out.mutable_data();
             {
               py::gil_scoped_release nogil;
               ReadLock lock(s.m->mutex());
               s.m->predict(x.data(), n, o, batch_size);
             }
             return out;
           },
           py::arg("x"), py::arg("batch_size") = 256)
      .def("predict_outputs",
           [](PyModel& s, const FloatArray& x, size_t begin, const std::vector<size_t>& capture,
              int64_t batch_size) {
             if (begin >= s.m->size()) throw py::index_error("layer index out of range");
             const Layer& first = s.m->layer(begin);
             Dims want = {-1};
             want.insert(want.end(), first.in_shape.begin(), first.in_shape.end());
             const Dims got = dims_of(x);
             bool ok = got.size() == want.size();
             for (size_t i = 1; ok && i < want.size(); ++i) ok = got[i] == want[i];
             if (!ok) {
               std::string w = "(N";
               for (int64_t d : first.in_shape) w += ", " + std::to_string(d);
               throw ValueError(first.label() + ": expects input " + w + "), got " + shape_str(got));
             }
             const int64_t n = x.shape(0);
             std::vector<py::array_t<float>> arrays;
             std::vector<float*> outs;
             for (size_t i : capture) {
               if (i >= s.m->size()) throw py::index_error("layer index out of range");
               Dims od = {n};
               for (int64_t d : s.m->layer(i).out_shape) od.push_back(d);
               arrays.emplace_back(od);
               outs.push_back(arrays.back().mutable_data());
             }
             {
               py::gil_scoped_release nogil;
               ReadLock lock(s.m->mutex());
               s.m->predict_outputs(x.data(), n, begin, capture, outs, batch_size);
             }
             py::list result;
             for (auto& arr : arrays) result.append(arr);
             return result;
           },
           py::arg("x"), py::arg("begin"), py::arg("capture"), py::arg("batch_size") = 256,
           "Runs layers from `begin` and returns the outputs of the layers in `capture` (ascending).")
      .def("evaluate",
           [](PyModel& s, const FloatArray& x, const py::array& y, int64_t batch_size,
              const py::object& sample_weight) {
             const EvalResult r = s.with_batch<ReadLock>(
                 x, y, sample_weight, [&](int64_t n, const int64_t* labels, const float* targets, const float* w) {
                   return s.m->evaluate(x.data(), n, labels, targets, batch_size, w);
                 });
             return py::make_tuple(r.loss_sum, r.correct, r.top5, r.count);
           },
           py::arg("x"), py::arg("y"), py::arg("batch_size") = 256, py::arg("sample_weight") = py::none())
      .def("save",
           [](PyModel& s, const std::string& path, bool include_optimizer, const Metadata& extra) {
             py::gil_scoped_release nogil;
             ReadLock lock(s.m->mutex());
             save_model(*s.m, path, include_optimizer, extra);
           },
           py::arg("path"), py::arg("include_optimizer") = true, py::arg("metadata") = Metadata{})
      .def_static("load", [](const std::string& path) {
        LoadedModel lm;
        {
          py::gil_scoped_release nogil;
          lm = load_model(path);
        }
        auto pm = std::make_unique<PyModel>();
        pm->m = std::move(lm.model);
        py::dict meta;
        for (const auto& kv : lm.metadata) meta[py::str(kv.first)] = kv.second;
        return py::make_tuple(std::move(pm), meta);
      });
}

}  // namespace cpucnn::bindings
