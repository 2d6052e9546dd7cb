/*
 * cpucnn.h - the C API of the cpucnn edge runtime.
 *
 * Load a model saved from Python (`model.save("model.cnn")`) and run it on a CPU, with no Python:
 *
 *     cpucnn_model* m = cpucnn_load("model.cnn");
 *     if (!m) { fprintf(stderr, "%s\n", cpucnn_last_error()); return 1; }
 *     float* out = malloc(sizeof(float) * cpucnn_output_size(m) * batch);
 *     if (cpucnn_predict(m, input, batch, out) != 0) fprintf(stderr, "%s\n", cpucnn_last_error());
 *     cpucnn_free(m);
 *
 * Link with `-lcpucnn` (pkg-config: `pkg-config --libs cpucnn`, add `--static` for the static
 * library) or `find_package(cpucnn)` + `target_link_libraries(app cpucnn::cpucnn)`.
 *
 * Data: inputs are float32 in NCHW order, `batch` samples of cpucnn_input_size() floats each;
 * outputs are `batch` rows of cpucnn_output_size() floats (the last layer's output, flattened:
 * logits unless the model ends in Softmax), the same numbers as `model.predict` in Python.
 *
 * Errors: functions returning a pointer return NULL on failure, functions returning int return a
 * negative value; cpucnn_last_error() then tells what went wrong. No function aborts or lets a C++
 * exception escape; a corrupted or truncated model file is an error return, never a crash.
 *
 * Threads: every function may be called from any thread. cpucnn_predict() does not modify the
 * model, so several threads may call it at the same time on one loaded model (each call uses its
 * own buffers). Do not call cpucnn_free() while another thread still uses the model.
 *
 * Kernels: the best path for the CPU is picked at run time; the environment variable
 * CPUCNN_ISA=scalar|avx2|avx512 (x86-64) or scalar|neon (aarch64) forces one (an unsupported one makes the first cpucnn_predict()
 * fail with a message, later calls then use the best path).
 *
 * The API is stable: functions are only ever added. Only these names are exported from the
 * shared library.
 */
#ifndef CPUCNN_CPUCNN_H_
#define CPUCNN_CPUCNN_H_

#if defined(_WIN32) && !defined(CPUCNN_STATIC)
#  if defined(CPUCNN_BUILDING)
#    define CPUCNN_API __declspec(dllexport)
#  else
#    define CPUCNN_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define CPUCNN_API __attribute__((visibility("default")))
#else
#  define CPUCNN_API
#endif

/* Bumped when functions are added. 1: the first release. 2: cpucnn_set_max_activation_bytes()
 * and cpucnn_max_activation_bytes(). */
#define CPUCNN_API_VERSION 3

#ifdef __cplusplus
extern "C" {
#endif

/* A loaded model: opaque. */
typedef struct cpucnn_model cpucnn_model;

/* Loads a model file (.cnn, as written by cpucnn's `model.save`). The file is memory-mapped and
 * every offset, size and shape is checked before use. Returns NULL on failure (missing file,
 * corrupted or truncated file, unknown format version, a file that is not a cpucnn model file,
 * activations over cpucnn_max_activation_bytes(), ...): see cpucnn_last_error(). */
CPUCNN_API cpucnn_model* cpucnn_load(const char* path);

/* A human-readable message for the last failed call made by this thread ("" if none). The
 * string belongs to the library and stays valid until this thread's next failing call. */
CPUCNN_API const char* cpucnn_last_error(void);

/* Floats per input sample: C*H*W of the model's input shape. -1 if model is NULL. */
CPUCNN_API int cpucnn_input_size(const cpucnn_model* model);

/* Floats per output sample (the product of the last layer's output shape). -1 if model is NULL. */
CPUCNN_API int cpucnn_output_size(const cpucnn_model* model);

/* The input shape (C, H, W) per sample. A model with a flat input (F,) reports (F, 1, 1).
 * Any of c, h, w may be NULL. Returns 0, or -1 if model is NULL. */
CPUCNN_API int cpucnn_input_shape(const cpucnn_model* model, int* c, int* h, int* w);

/* Runs inference on `batch` samples: reads batch * cpucnn_input_size() floats from `input`,
 * writes batch * cpucnn_output_size() floats to `output` (which must not overlap `input`).
 * batch == 0 does nothing. Returns 0 on success, -1 on failure (see cpucnn_last_error()).
 * Safe to call from several threads at once on the same model. */
CPUCNN_API int cpucnn_predict(cpucnn_model* model, const float* input, int batch, float* output);

/* The number of threads each cpucnn_predict() call uses (n <= 0: all cores). Global to the
 * process; defaults to OpenMP's default (OMP_NUM_THREADS, else all cores). Set it before running
 * predictions, not while another thread is inside cpucnn_predict(). */
CPUCNN_API void cpucnn_set_num_threads(int n);

/* The most bytes one sample's activations may take in one buffer (a layer's output, or a
 * convolution's unfolded input). A model file states its own shapes; cpucnn_load() rejects, before
 * allocating anything, a model that exceeds this limit, naming the layer. Global to the process;
 * default 1 GiB (1073741824). Set it before loading, not while another thread is inside
 * cpucnn_load(). Returns 0, or -1 if bytes <= 0 (see cpucnn_last_error()). Since API version 2. */
CPUCNN_API int cpucnn_set_max_activation_bytes(long long bytes);

/* The limit set by cpucnn_set_max_activation_bytes(). Since API version 2. */
CPUCNN_API long long cpucnn_max_activation_bytes(void);

/* Frees a model returned by cpucnn_load(). NULL is ignored. */
CPUCNN_API void cpucnn_free(cpucnn_model* model);

/* The library version, e.g. "0.1.0". */
CPUCNN_API const char* cpucnn_version(void);

/* The kernel path predictions run on: "avx512", "avx2", "neon" or "scalar" (the best this CPU
 * runs, or CPUCNN_ISA's). NULL, with cpucnn_last_error() set, when CPUCNN_ISA names a path this
 * build or CPU lacks. API version 3. */
CPUCNN_API const char* cpucnn_isa(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CPUCNN_CPUCNN_H_ */
