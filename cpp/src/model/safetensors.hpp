// Reading and writing the safetensors format:
//
//   [8 bytes: little-endian uint64 N][N bytes: JSON header][raw byte buffer]
//
// The header is an object mapping each tensor name to
//   {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
// (offsets relative to the start of the byte buffer), plus an optional "__metadata__" object of
// string -> string. Tensor data is stored little-endian; this implementation assumes a
// little-endian host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cpucnn::safetensors {

// Size in bytes of one element of `dtype` ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8",
// "U64", "U32", "U16", "U8", "BOOL", "F8_E4M3", "F8_E5M2"); 0 for an unknown dtype.
size_t dtype_size(const std::string& dtype);

// One tensor to write. `data` points to product(shape) * dtype_size(dtype) bytes.
struct TensorView {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const void* data;
};

// Writes `tensors` (in the given order) and `metadata` to `path` atomically: the file is written
// to a temporary file in the same directory, flushed to disk and renamed over `path`.
// Throws ValueError for invalid tensors (unknown dtype, negative dimension, duplicate or reserved
// name) before touching the disk, and IOError("cannot save '<path>': <reason>") when writing
// fails; a previous file at `path` is then left untouched.
void write_file(const std::string& path,
                const std::vector<std::pair<std::string, std::string>>& metadata,
                const std::vector<TensorView>& tensors);

// One tensor of a loaded file; `data` points into the file's mapping and lives as long as the File.
struct TensorInfo {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;
  size_t nbytes;
};

// A header is at most 100 MB and is parsed under caps on JSON nesting (64), array length (1024),
// object size (2^20 tensors) and values in all (2^22, 16 bytes each), so the memory it takes is
// bounded whatever the file says; a tensor has at most kMaxRank dimensions.
constexpr size_t kMaxRank = 8;

// A read-only safetensors file, memory-mapped where possible (read into memory otherwise).
// The constructor validates the whole header and throws
//   FileNotFound("no such file: '<path>'") when the file does not exist,
//   IOError for other errors opening or reading it,
//   ValueError("model file '<path>' ...") for any inconsistency in its contents.
// With a `format` ("cpucnn"), a file that is not a safetensors file declaring
// "__metadata__": {"format": <format>, ...} is a ValueError("'<path>' is not a <format> model
// file (<why>)"): an empty file, a zip (PyTorch), ONNX, text, random bytes, another program's
// safetensors file. It is recognised by its framing (a plausible 8-byte header length and a
// header starting with '{') and the format marker in its header, so a truncated or damaged file
// that does carry the marker still gets the specific message ("is truncated", ...).
class File {
 public:
  explicit File(const std::string& path, const std::string& format = "");
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  const std::string* meta(const std::string& key) const;  // nullptr if absent
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
  const TensorInfo* find(const std::string& name) const;   // nullptr if absent

 private:
  struct Storage;  // the mapping or buffer holding the file's bytes

  void parse_header(const uint8_t* bytes, size_t size, const std::string& format);

  std::string path_;
  std::unique_ptr<Storage> storage_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;  // tensor name -> position in tensors_
};

}  // namespace cpucnn::safetensors
