/* classify: run a cpucnn model on images with the C API alone (no Python).
 *
 *   classify MODEL IMAGES [--labels FILE] [--threads N]
 *
 * MODEL is a .cnn file saved from Python (examples/train_fashion_mnist.py saves one).
 * IMAGES is either a .npy file of float32 images, shape (N, C, H, W) or (C, H, W), or a raw file of
 * little-endian float32 values, N * C * H * W of them (N is taken from the file size), already
 * preprocessed the way the model was trained (e.g. pixels / 255). LABELS holds one class name per
 * line. Prints one line per image: its index, the best class and its softmax probability.
 *
 * Build against an installed cpucnn (see README.md here):
 *   cmake -S examples/edge -B build-edge -DCMAKE_PREFIX_PATH=PREFIX && cmake --build build-edge
 *   cc -std=c99 classify.c $(pkg-config --cflags --libs cpucnn) -lm -o classify
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpucnn/cpucnn.h>

/* Reads a whole file into memory; returns NULL on failure. */
static unsigned char* read_file(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  unsigned char* buf;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return NULL;
  }
  buf = (unsigned char*)malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *size = (size_t)n;
  return buf;
}

/* The float32 data of IMAGES and how many floats it holds; NULL with a message on error. For a
 * .npy file the header must say '<f4' and C order; its shape is checked against the model below
 * through the total size. */
static const float* load_images(const unsigned char* buf, size_t size, size_t* count, const char* path) {
  if (size >= 10 && memcmp(buf, "\x93NUMPY", 6) == 0) {
    size_t header_len, start;
    const char* header;
    if (buf[6] == 1) {
      header_len = (size_t)buf[8] | (size_t)buf[9] << 8;
      start = 10;
    } else {
      header_len = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
      start = 12;
    }
    if (start + header_len > size) {
      fprintf(stderr, "%s: truncated .npy header\n", path);
      return NULL;
    }
    header = (const char*)buf + start;
    if (!strstr(header, "'<f4'") || !strstr(header, "'fortran_order': False")) {
      fprintf(stderr, "%s: needs float32 little-endian C-order data (numpy: x.astype('<f4'))\n", path);
      return NULL;
    }
    if ((size - start - header_len) % 4) {
      fprintf(stderr, "%s: data is not a whole number of float32 values\n", path);
      return NULL;
    }
    *count = (size - start - header_len) / 4;
    return (const float*)(buf + start + header_len); /* .npy data is 64-byte aligned in the file */
  }
  if (size % 4) {
    fprintf(stderr, "%s: a raw file must hold float32 values (its size is not a multiple of 4)\n", path);
    return NULL;
  }
  *count = size / 4;
  return (const float*)buf;
}

/* Class names from a file, one per line (NULL entries past the end). */
static char** load_labels(const char* path, int classes) {
  size_t size = 0, i;
  int k = 0;
  char* text = (char*)read_file(path, &size);
  char** names = (char**)calloc((size_t)classes, sizeof(char*));
  if (!text || !names) {
    fprintf(stderr, "cannot read labels from %s\n", path);
    free(text);
    free(names);
    return NULL;
  }
  text[size] = '\0';
  names[0] = text;
  for (i = 0; i < size && k < classes; ++i) {
    if (text[i] == '\n' || text[i] == '\r') {
      text[i] = '\0';
      if (text[i + 1] != '\n' && k + 1 < classes) names[++k] = text + i + 1;
    }
  }
  return names;
}

int main(int argc, char** argv) {
  const char *model_path = NULL, *images_path = NULL, *labels_path = NULL;
  unsigned char* buf;
  const float* images;
  float* out;
  size_t size = 0, count = 0;
  int i, threads = 0, in, classes, n, c, h, w;
  char** labels = NULL;
  cpucnn_model* model;

  for (i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--labels") && i + 1 < argc) {
      labels_path = argv[++i];
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else if (!model_path) {
      model_path = argv[i];
    } else if (!images_path) {
      images_path = argv[i];
    } else {
      model_path = NULL;
      break;
    }
  }
  if (!model_path || !images_path) {
    fprintf(stderr, "usage: %s MODEL IMAGES(.npy or raw float32) [--labels FILE] [--threads N]\n", argv[0]);
    return 2;
  }
  if (threads > 0) cpucnn_set_num_threads(threads);

  model = cpucnn_load(model_path);
  if (!model) {
    fprintf(stderr, "%s\n", cpucnn_last_error());
    return 1;
  }
  in = cpucnn_input_size(model);
  classes = cpucnn_output_size(model);
  cpucnn_input_shape(model, &c, &h, &w);

  buf = read_file(images_path, &size);
  if (!buf) {
    fprintf(stderr, "cannot read %s\n", images_path);
    cpucnn_free(model);
    return 1;
  }
  images = load_images(buf, size, &count, images_path);
  if (!images || count == 0 || count % (size_t)in) {
    if (images)
      fprintf(stderr, "%s holds %lu floats, not a whole number of %dx%dx%d images\n", images_path,
              (unsigned long)count, c, h, w);
    free(buf);
    cpucnn_free(model);
    return 1;
  }
  n = (int)(count / (size_t)in);
  if (labels_path && !(labels = load_labels(labels_path, classes))) {
    free(buf);
    cpucnn_free(model);
    return 1;
  }

  out = (float*)malloc(sizeof(float) * (size_t)n * (size_t)classes);
  if (!out || cpucnn_predict(model, images, n, out) != 0) {
    fprintf(stderr, "prediction failed: %s\n", out ? cpucnn_last_error() : "out of memory");
    free(out);
    free(buf);
    cpucnn_free(model);
    return 1;
  }
  printf("cpucnn %s: %d image(s) of %dx%dx%d, %d classes\n", cpucnn_version(), n, c, h, w, classes);
  for (i = 0; i < n; ++i) {
    const float* row = out + (size_t)i * (size_t)classes;
    int k, best = 0;
    double sum = 0.0;
    for (k = 1; k < classes; ++k)
      if (row[k] > row[best]) best = k;
    for (k = 0; k < classes; ++k) sum += exp((double)row[k] - (double)row[best]);
    printf("image %d: class %d", i, best);
    if (labels && labels[best]) printf(" (%s)", labels[best]);
    printf(", p=%.4f\n", 1.0 / sum);
  }
  if (labels) {
    free(labels[0]);
    free(labels);
  }
  free(out);
  free(buf);
  cpucnn_free(model);
  return 0;
}
