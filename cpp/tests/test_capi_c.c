/* The C API from strict C99 (the header must compile as C), linked against the shared library
 * when it is built: loads the test models written by cpucnn_make_test_models and compares
 * cpucnn_predict with the outputs the C++ core computed for the same inputs.
 * Usage: test_capi_c DIR.  Prints "N passed, N failed". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpucnn/cpucnn.h"

static int passed = 0, failed = 0;

static void check(int ok, const char* what, const char* detail) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    printf("FAIL: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  }
}

/* Reads a whole raw float32 file; returns the number of floats (0 on error). */
static size_t read_floats(const char* path, float** out) {
  FILE* f = fopen(path, "rb");
  long size;
  size_t n;
  *out = NULL;
  if (!f) return 0;
  fseek(f, 0, SEEK_END);
  size = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (size <= 0 || size % 4) {
    fclose(f);
    return 0;
  }
  *out = (float*)malloc((size_t)size);
  n = fread(*out, 4, (size_t)size / 4, f);
  fclose(f);
  return n;
}

static void test_model(const char* dir, const char* name) {
  char path[4096], what[256];
  float *x = NULL, *want = NULL, *got;
  size_t nx, nw, i;
  int batch, in, out;
  double worst = 0.0;
  cpucnn_model* m;

  snprintf(path, sizeof path, "%s/%s.cnn", dir, name);
  m = cpucnn_load(path);
  snprintf(what, sizeof what, "%s loads", name);
  check(m != NULL, what, cpucnn_last_error());
  if (!m) return;
  in = cpucnn_input_size(m);
  out = cpucnn_output_size(m);
  snprintf(path, sizeof path, "%s/%s_input.f32", dir, name);
  nx = read_floats(path, &x);
  snprintf(path, sizeof path, "%s/%s_expected.f32", dir, name);
  nw = read_floats(path, &want);
  snprintf(what, sizeof what, "%s: input/expected files fit the model's sizes", name);
  check(in > 0 && out > 0 && nx > 0 && nx % (size_t)in == 0 && nw == nx / (size_t)in * (size_t)out, what, path);
  if (nx > 0 && in > 0 && nw == nx / (size_t)in * (size_t)out) {
    batch = (int)(nx / (size_t)in);
    got = (float*)malloc(nw * sizeof(float));
    snprintf(what, sizeof what, "%s: predict returns 0", name);
    check(cpucnn_predict(m, x, batch, got) == 0, what, cpucnn_last_error());
    for (i = 0; i < nw; ++i) {
      double d = fabs((double)got[i] - (double)want[i]);
      if (!(d <= worst)) worst = d; /* NaN counts as worst */
    }
    snprintf(what, sizeof what, "%s: outputs match the core (max diff %g)", name, worst);
    check(worst <= 1e-4, what, NULL);
    free(got);
  }
  free(x);
  free(want);
  cpucnn_free(m);
}

int main(int argc, char** argv) {
  const char* models[] = {"lenet", "all_layers", "conv_out", "flat"};
  size_t k;
  int c = 0, h = 0, w = 0;
  char path[4096];
  cpucnn_model* m;
  if (argc != 2) {
    fprintf(stderr, "usage: test_capi_c DIR\n");
    return 2;
  }
  check(strlen(cpucnn_version()) > 0, "version", NULL);
  check(CPUCNN_API_VERSION >= 1, "API version macro", NULL);
  for (k = 0; k < sizeof models / sizeof models[0]; ++k) test_model(argv[1], models[k]);

  snprintf(path, sizeof path, "%s/lenet.cnn", argv[1]);
  m = cpucnn_load(path);
  check(m != NULL && cpucnn_input_shape(m, &c, &h, &w) == 0 && c == 1 && h == 28 && w == 28, "lenet input shape",
        NULL);
  check(cpucnn_output_size(m) == 10, "lenet has 10 outputs", NULL);
  cpucnn_set_num_threads(1);
  cpucnn_free(m);
  cpucnn_set_num_threads(0);

  snprintf(path, sizeof path, "%s/no_such_model.cnn", argv[1]);
  check(cpucnn_load(path) == NULL && strstr(cpucnn_last_error(), "no such file") != NULL, "missing file message",
        cpucnn_last_error());
  check(cpucnn_predict(NULL, NULL, 1, NULL) == -1, "predict(NULL) fails cleanly", NULL);

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
