#include "model/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <string_view>
#include <unordered_set>

#include "core/errors.hpp"
#include "model/json.hpp"

// Tensor bytes are stored little-endian and handed out as they are in the file.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cpucnn safetensors support assumes a little-endian host"
#endif

namespace cpucnn::safetensors {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

// A header is an object of tensor entries ({"dtype", "shape": [<= kMaxRank], "data_offsets": [2]})
// and string metadata: about 15 values per tensor, and no long arrays at all.
json::Limits header_limits() {
  json::Limits l;
  l.max_depth = 64;
  l.max_array = 1024;
  l.max_object = size_t(1) << 20;  // tensors (and metadata entries)
  l.max_values = size_t(1) << 22;  // 64 MiB of JSON nodes
  return l;
}

// Whether `text` holds "format" : "<format>" (JSON whitespace allowed around the colon): the
// cheap test of a header for the marker every model file carries in its __metadata__.
bool has_format_marker(std::string_view text, const std::string& format) {
  const std::string key = "\"format\"";
  const std::string value = "\"" + format + "\"";
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  for (size_t at = text.find(key); at != std::string_view::npos; at = text.find(key, at + 1)) {
    size_t i = at + key.size();
    while (i < text.size() && is_space(text[i])) ++i;
    if (i >= text.size() || text[i] != ':') continue;
    ++i;
    while (i < text.size() && is_space(text[i])) ++i;
    if (text.compare(i, value.size(), value) == 0) return true;
  }
  return false;
}

// What a file that does not start like a safetensors file seems to be, for messages.
std::string describe_start(const uint8_t* bytes, size_t size) {
  auto starts = [&](const char* magic, size_t n) { return size >= n && std::memcmp(bytes, magic, n) == 0; };
  if (starts("PK\x03\x04", 4)) return "it is a zip archive, such as a PyTorch .pt file, not a safetensors file";
  if (starts("\x89HDF\r\n\x1a\n", 8)) return "it is an HDF5 file, such as a Keras .h5 file, not a safetensors file";
  const size_t n = std::min<size_t>(size, 64);
  bool text = true;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t c = bytes[i];
    text = text && ((c >= 0x20 && c < 0x7F) || c == '\n' || c == '\r' || c == '\t');
  }
  if (text) return "it looks like a text file, not a safetensors file";
  static const char kHex[] = "0123456789abcdef";
  std::string first;
  for (size_t i = 0; i < std::min<size_t>(size, 8); ++i) {
    if (i) first += ' ';
    first += kHex[bytes[i] >> 4];
    first += kHex[bytes[i] & 0xF];
  }
  return "it does not start with a safetensors header; its first bytes are " + first;
}

// Product of `shape` times `elem_size` in bytes; false if a dimension is negative or it overflows.
bool checked_nbytes(const std::vector<int64_t>& shape, size_t elem_size, size_t& nbytes) {
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t total = elem_size;
  for (int64_t d : shape) {
    if (d < 0) return false;
    auto dim = static_cast<uint64_t>(d);
    if (dim != 0 && total > kMax / dim) return false;
    total *= dim;
  }
  if (total > std::numeric_limits<size_t>::max()) return false;
  nbytes = static_cast<size_t>(total);
  return true;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Closes a file descriptor on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// ---------------------------------------------------------------------------------------------
// Writing

std::string build_header(const std::vector<std::pair<std::string, std::string>>& metadata,
                         const std::vector<TensorView>& tensors, std::vector<size_t>& nbytes) {
  json::Value header = json::Value::object();
  if (!metadata.empty()) {
    json::Value meta = json::Value::object();
    for (const auto& [key, value] : metadata) {
      if (meta.has(key)) throw ValueError("safetensors: duplicate metadata key '" + key + "'");
      meta.set(key, json::Value(value));
    }
    header.set(kMetadataKey, std::move(meta));
  }

  std::unordered_set<std::string> names;
  size_t offset = 0;
  nbytes.clear();
  for (const TensorView& t : tensors) {
    const std::string where = "safetensors: tensor '" + t.name + "'";
    if (t.name == kMetadataKey) throw ValueError(where + ": the name is reserved");
    if (!names.insert(t.name).second) throw ValueError(where + ": duplicate tensor name");
    size_t elem = dtype_size(t.dtype);
    if (elem == 0) throw ValueError(where + ": unknown dtype '" + t.dtype + "'");
    size_t n = 0;
    if (!checked_nbytes(t.shape, elem, n)) {
      throw ValueError(where + ": invalid shape " + shape_str(t.shape));
    }
    if (n > 0 && t.data == nullptr) throw ValueError(where + ": data is null");
    if (offset > std::numeric_limits<size_t>::max() - n) {
      throw ValueError("safetensors: total tensor size overflows");
    }

    json::Value shape = json::Value::array();
    for (int64_t d : t.shape) shape.push_back(json::Value(d));
    json::Value offsets = json::Value::array();
    offsets.push_back(json::Value(offset));
    offsets.push_back(json::Value(offset + n));
    json::Value entry = json::Value::object();
    entry.set("dtype", json::Value(t.dtype));
    entry.set("shape", std::move(shape));
    entry.set("data_offsets", std::move(offsets));
    header.set(t.name, std::move(entry));

    nbytes.push_back(n);
    offset += n;
  }

  std::string text = json::dump(header);
  // Pad with spaces so that the byte buffer starts at an 8-byte aligned file offset.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

std::string temp_path_for(const std::string& path) {
  static std::atomic<unsigned long> counter{0};
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return dir + "." + base + ".tmp-" + std::to_string(static_cast<long>(::getpid())) + "-" +
         std::to_string(counter.fetch_add(1));
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

[[noreturn]] void throw_bad_file(const std::string& path, const std::string& what) {
  throw ValueError("model file '" + path + "' " + what);
}

[[noreturn]] void throw_save_error(const std::string& path, int err) {
  throw IOError("cannot save '" + path + "': " + std::strerror(err));
}

}  // namespace

size_t dtype_size(const std::string& dtype) {
  static const std::pair<const char*, size_t> kSizes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
      {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U64", 8},     {"U32", 4},
      {"U16", 2}, {"U8", 1},  {"BOOL", 1},
  };
  for (const auto& [name, size] : kSizes) {
    if (dtype == name) return size;
  }
  return 0;
}

void write_file(const std::string& path,
                const std::vector<std::pair<std::string, std::string>>& metadata,
                const std::vector<TensorView>& tensors) {
  std::vector<size_t> nbytes;
  const std::string header = build_header(metadata, tensors, nbytes);

  unsigned char length[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(n >> (8 * i));

  const std::string tmp = temp_path_for(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw_save_error(path, errno);
  std::FILE* f = ::fdopen(fd, "wb");
  if (!f) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw_save_error(path, err);
  }

  // Any failure from here on: close, remove the temporary file, report.
  auto fail = [&](int err) {
    if (f) std::fclose(f);
    ::unlink(tmp.c_str());
    throw_save_error(path, err ? err : EIO);
  };

  errno = 0;
  if (std::fwrite(length, 1, sizeof(length), f) != sizeof(length)) fail(errno);
  if (std::fwrite(header.data(), 1, header.size(), f) != header.size()) fail(errno);
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (nbytes[i] == 0) continue;
    if (std::fwrite(tensors[i].data, 1, nbytes[i], f) != nbytes[i]) fail(errno);
  }
  if (std::fflush(f) != 0) fail(errno);
  if (::fsync(::fileno(f)) != 0) fail(errno);
  int close_result = std::fclose(f);
  f = nullptr;
  if (close_result != 0) fail(errno);

  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail(errno);

  // Make the rename itself durable.
  int dir_fd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) throw_save_error(path, errno);
  FdGuard dir_guard(dir_fd);
  if (::fsync(dir_fd) != 0 && errno != EINVAL) throw_save_error(path, errno);
}

// ---------------------------------------------------------------------------------------------
// Reading

struct File::Storage {
  void* map = nullptr;  // mmap'ed file, or nullptr when `buffer` holds the bytes
  size_t map_size = 0;
  std::vector<uint8_t> buffer;

  ~Storage() {
    if (map) ::munmap(map, map_size);
  }
  const uint8_t* data() const {
    return map ? static_cast<const uint8_t*>(map) : buffer.data();
  }
  size_t size() const { return map ? map_size : buffer.size(); }
};

File::File(const std::string& path, const std::string& format)
    : path_(path), storage_(std::make_unique<Storage>()) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) throw FileNotFound("no such file: '" + path + "'");
    throw IOError("cannot open '" + path + "': " + std::strerror(err));
  }
  FdGuard guard(fd);

  struct stat st;
  if (::fstat(fd, &st) != 0) throw IOError("cannot read '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw IOError("cannot read '" + path + "': not a regular file");
  if (static_cast<uint64_t>(st.st_size) > std::numeric_limits<size_t>::max()) {
    throw IOError("cannot read '" + path + "': file too large");
  }
  const auto size = static_cast<size_t>(st.st_size);

  if (size > 0) {
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      storage_->map = map;
      storage_->map_size = size;
    } else {
      // No mmap for this file: read it into memory instead.
      storage_->buffer.resize(size);
      size_t done = 0;
      while (done < size) {
        ssize_t got = ::read(fd, storage_->buffer.data() + done, size - done);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw IOError("cannot read '" + path + "': " + std::strerror(errno));
        if (got == 0) throw IOError("cannot read '" + path + "': file shrank while reading");
        done += static_cast<size_t>(got);
      }
    }
  }

  parse_header(storage_->data(), storage_->size(), format);
}

File::~File() = default;

void File::parse_header(const uint8_t* bytes, size_t size, const std::string& format) {
  auto fail = [this](const std::string& what) { throw_bad_file(path_, what); };
  auto not_ours = [&](const std::string& why) {
    throw ValueError("'" + path_ + "' is not a " + format + " model file (" + why + ")");
  };

  // With a format: is this a file of ours (then every problem gets its specific message) or
  // something else (then that is what the message says)? Ours: the format marker is in the
  // header, read as far as the length field and the file allow. Framed like a safetensors file
  // but without the marker: the parsed metadata decides below.
  bool decide_by_metadata = false;  // framed like a safetensors file, without the marker
  if (!format.empty()) {
    if (size == 0) not_ours("the file is empty");
    if (size < 8) not_ours("it is too short: " + std::to_string(size) + " bytes");
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | bytes[i];
    const bool brace = size > 8 && bytes[8] == '{';
    const bool framed = brace && len >= 2 && len <= size - 8 && len <= kMaxHeaderBytes;
    const size_t window = static_cast<size_t>(std::min<uint64_t>({len, size - 8, kMaxHeaderBytes}));
    const bool marked = brace && has_format_marker({reinterpret_cast<const char*>(bytes + 8), window}, format);
    if (!framed && !marked) {
      if (brace && len > size - 8 && len <= kMaxHeaderBytes) {
        not_ours("it looks like a truncated safetensors file, and what is left of its header has no "
                 "\"format\": \"" + format + "\"");
      }
      not_ours(describe_start(bytes, size));
    }
    decide_by_metadata = framed && !marked;
  }

  if (size < 8) {
    fail("is too short: " + std::to_string(size) + " bytes, a safetensors file has at least 8");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len == 0) fail("has an empty header (length 0)");
  if (header_len > kMaxHeaderBytes) {
    fail("has a header length of " + std::to_string(header_len) + " bytes, over the limit of " +
         std::to_string(kMaxHeaderBytes));
  }
  if (header_len > size - 8) {
    fail("is truncated: header says " + std::to_string(header_len) + " bytes, file has " +
         std::to_string(size - 8) + " after the length field");
  }
  const auto header_size = static_cast<size_t>(header_len);
  const uint8_t* buffer = bytes + 8 + header_size;
  const size_t buffer_size = size - 8 - header_size;

  json::Value header;
  try {
    header = json::parse({reinterpret_cast<const char*>(bytes + 8), header_size}, header_limits());
  } catch (const ValueError& e) {
    if (decide_by_metadata) not_ours(std::string("its header could not be read: ") + e.what());
    fail(std::string("has an invalid header: ") + e.what());
  }
  if (!header.is_object()) {
    fail(std::string("has an invalid header: expected a JSON object, got ") +
         json::kind_name(header.kind()));
  }
  if (decide_by_metadata) {  // say what its metadata holds unless it has the format after all
    const json::Value* meta = header.find(kMetadataKey);
    const json::Value* declared = meta && meta->is_object() ? meta->find("format") : nullptr;
    if (!declared || !declared->is_string() || declared->as_string() != format) {
      not_ours("it is a safetensors file whose metadata has " +
               (declared ? "\"format\": " + json::dump(*declared).substr(0, 40) : std::string("no \"format\"")) +
               ", not \"" + format + "\"");
    }
  }

  // Reads a non-negative integer, or fails naming `what`.
  auto get_count = [&](const json::Value& v, const std::string& what) -> int64_t {
    if (!v.is_number()) fail(what + " must be an integer, got " + json::kind_name(v.kind()));
    int64_t i = 0;
    try {
      i = v.as_int();
    } catch (const ValueError&) {
      fail(what + " must be an integer, got " + json::dump(v));
    }
    if (i < 0) fail(what + " must not be negative, got " + std::to_string(i));
    return i;
  };

  struct Range {
    size_t begin, end, index;
  };
  std::vector<Range> ranges;

  for (const auto& [name, entry] : header.as_object()) {
    if (name == kMetadataKey) {
      if (!entry.is_object()) {
        fail("has an invalid header: __metadata__ must be an object, got " +
             std::string(json::kind_name(entry.kind())));
      }
      for (const auto& [key, value] : entry.as_object()) {
        if (!value.is_string()) {
          fail("has an invalid header: metadata value '" + key + "' must be a string, got " +
               json::kind_name(value.kind()));
        }
        metadata_.emplace_back(key, value.as_string());
      }
      continue;
    }

    const std::string where = "has an invalid header: tensor '" + name + "'";
    if (!entry.is_object()) {
      fail(where + " must be an object, got " + json::kind_name(entry.kind()));
    }
    for (const auto& member : entry.as_object()) {
      const std::string& key = member.first;
      if (key != "dtype" && key != "shape" && key != "data_offsets") {
        fail(where + " has an unexpected key '" + key + "'");
      }
    }
    const json::Value* dtype = entry.find("dtype");
    const json::Value* shape = entry.find("shape");
    const json::Value* offsets = entry.find("data_offsets");
    if (!dtype || !shape || !offsets) {
      fail(where + " needs \"dtype\", \"shape\" and \"data_offsets\"");
    }
    if (!dtype->is_string()) fail(where + ": dtype must be a string");
    const size_t elem = dtype_size(dtype->as_string());
    if (elem == 0) fail(where + " has an unknown dtype '" + dtype->as_string() + "'");

    if (!shape->is_array()) fail(where + ": shape must be an array");
    if (shape->size() > kMaxRank) {
      fail(where + " has " + std::to_string(shape->size()) + " dimensions, exceeding the limit of " +
           std::to_string(kMaxRank));
    }
    TensorInfo info;
    info.name = name;
    info.dtype = dtype->as_string();
    for (const json::Value& d : shape->as_array()) {
      info.shape.push_back(get_count(d, where + ": shape dimension"));
    }
    size_t nbytes = 0;
    if (!checked_nbytes(info.shape, elem, nbytes)) {
      fail(where + " has a shape whose size overflows: " + shape_str(info.shape));
    }

    if (!offsets->is_array() || offsets->size() != 2) {
      fail(where + ": data_offsets must be an array [begin, end]");
    }
    const int64_t begin = get_count(offsets->as_array()[0], where + ": data_offsets begin");
    const int64_t end = get_count(offsets->as_array()[1], where + ": data_offsets end");
    if (begin > end || static_cast<uint64_t>(end) > buffer_size) {
      fail(where + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
           "] outside the data buffer of " + std::to_string(buffer_size) + " bytes");
    }
    if (static_cast<uint64_t>(end - begin) != nbytes) {
      fail(where + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
           "] spanning " + std::to_string(end - begin) + " bytes, but dtype " + info.dtype +
           " and shape " + shape_str(info.shape) + " need " + std::to_string(nbytes));
    }
    info.data = buffer + begin;
    info.nbytes = nbytes;

    if (!index_.emplace(name, tensors_.size()).second) fail(where + " is duplicated");
    ranges.push_back({static_cast<size_t>(begin), static_cast<size_t>(end), tensors_.size()});
    tensors_.push_back(std::move(info));
  }

  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  size_t covered = 0;  // end of the furthest-reaching tensor so far
  const std::string* covered_by = nullptr;
  for (const Range& r : ranges) {
    if (r.begin < covered) {
      fail("has an invalid header: tensors '" + *covered_by + "' and '" +
           tensors_[r.index].name + "' overlap");
    }
    covered = r.end;
    covered_by = &tensors_[r.index].name;
  }
}

const std::string* File::meta(const std::string& key) const {
  for (const auto& [k, v] : metadata_) {
    if (k == key) return &v;
  }
  return nullptr;
}

const TensorInfo* File::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace cpucnn::safetensors
