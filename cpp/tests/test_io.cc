// Tests of the JSON parser/writer and the safetensors reader/writer.
// A plain program: prints each failure, then "N passed, N failed"; exits non-zero on failure.

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "model/json.hpp"
#include "model/safetensors.hpp"
#include "check.hpp"

namespace json = cpucnn::json;
namespace st = cpucnn::safetensors;

// Counts the bytes live through the global operator new, and their peak, so the JSON memory test
// can measure what a parse costs. (The aligned forms are left alone: nothing here uses them.)
namespace {
std::atomic<size_t> g_live_bytes{0}, g_peak_bytes{0};
constexpr size_t kPrefix = 16;  // keeps the default new alignment
}  // namespace

void* operator new(size_t n) {
  void* p = std::malloc(n + kPrefix);
  if (!p) throw std::bad_alloc();
  *static_cast<size_t*>(p) = n;
  const size_t live = g_live_bytes.fetch_add(n) + n;
  size_t peak = g_peak_bytes.load();
  while (live > peak && !g_peak_bytes.compare_exchange_weak(peak, live)) {
  }
  return static_cast<char*>(p) + kPrefix;
}
void operator delete(void* p) noexcept {
  if (!p) return;
  char* block = static_cast<char*>(p) - kPrefix;
  g_live_bytes.fetch_sub(*reinterpret_cast<size_t*>(block));
  std::free(block);
}
void operator delete(void* p, size_t) noexcept { operator delete(p); }

namespace {

using cpucnn_test::check;

// Printable form of a test input for failure messages.
std::string show(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 80)) {
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > 80) out += "...";
  return out;
}

// Runs `f` and checks that it throws exactly E (or a subclass); reports anything else.
template <typename E>
void expect_throw(const std::string& what, const std::function<void()>& f,
                  const std::string& message_part = "") {
  try {
    f();
    check(false, what + ": no exception");
  } catch (const E& e) {
    bool has = message_part.empty() || std::string(e.what()).find(message_part) != std::string::npos;
    check(has, what + ": message '" + e.what() + "' lacks '" + message_part + "'");
  } catch (const std::exception& e) {
    check(false, what + ": wrong exception type: " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// JSON

void test_json_round_trips() {
  const char* canonical[] = {
      "null", "true", "false", "0", "-1", "42", "123456789012345678", "9223372036854775807",
      "-9223372036854775808", "1.5", "-0.0", "0.1", "1e+300", "-2.5e-300", "\"\"", "\"abc\"",
      "\"\\\"\\\\\\n\\t\\r\\b\\f\\u0001\\u001f\"", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "[]", "{}",
      "[1,2,[3,{}],[[]]]", "{\"b\":1,\"a\":[true,null],\"c\":{\"d\":\"x\"}}",
  };
  for (const char* text : canonical) {
    try {
      std::string out = json::dump(json::parse(text));
      check(out == text, std::string("round trip of ") + text + " gave " + out);
    } catch (const std::exception& e) {
      check(false, std::string("round trip of ") + text + " threw " + e.what());
    }
  }

  const std::pair<const char*, const char*> normalised[] = {
      {" [ 1 ,\t2\n,\r3 ] ", "[1,2,3]"},
      {"1.0", "1"},
      {"1E2", "100"},
      {"-1.25e+1", "-12.5"},
      {"\"\\/\"", "\"/\""},
      {"\"\\u00e9\"", "\"\xc3\xa9\""},
      {"\"\\u20AC\"", "\"\xe2\x82\xac\""},
      {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""},
      {"\"\\u0000\"", "\"\\u0000\""},
      {"1e-400", "0"},
      {"-1e-400", "-0.0"},
      {"9007199254740993", "9007199254740993"},
  };
  for (const auto& [in, expected] : normalised) {
    try {
      std::string out = json::dump(json::parse(in));
      check(out == expected, std::string("dump(parse(") + in + ")) = " + out + ", expected " + expected);
    } catch (const std::exception& e) {
      check(false, std::string("parse of ") + in + " threw " + e.what());
    }
  }

  // An integer literal beyond int64 becomes a double, and round trips as one.
  const double two64 = json::parse("18446744073709551616").as_number();
  check(two64 == 18446744073709551616.0, "2^64 literal parses as a double");
  check(json::parse(json::dump(json::Value(two64))).as_number() == two64, "2^64 round trips");

  // Random doubles survive dump -> parse bit for bit.
  std::mt19937_64 rng(1234);
  int mismatches = 0;
  for (int i = 0; i < 20000; ++i) {
    uint64_t bits = rng();
    double x;
    std::memcpy(&x, &bits, sizeof(x));
    if (!std::isfinite(x)) continue;
    double y = json::parse(json::dump(json::Value(x))).as_number();
    if (std::memcmp(&x, &y, sizeof(x)) != 0) ++mismatches;
  }
  check(mismatches == 0, "random doubles round trip (" + std::to_string(mismatches) + " mismatches)");

  // A value built in code.
  json::Value obj = json::Value::object();
  obj.set("z", 1);
  obj.set("a", "text");
  obj.set("z", 2.5);  // replaced in place, keeps its position
  json::Value arr = json::Value::array();
  arr.push_back(json::Value());
  arr.push_back(true);
  arr.push_back(int64_t{-7});
  arr.push_back(size_t{7});
  obj.set("arr", arr);
  check(json::dump(obj) == "{\"z\":2.5,\"a\":\"text\",\"arr\":[null,true,-7,7]}",
        "built value dumps as " + json::dump(obj));
  check(obj.size() == 3 && arr.size() == 4, "size()");
  check(obj.has("a") && !obj.has("b") && obj.find("b") == nullptr, "has/find");
  check(obj.at("arr").as_array()[2].as_int() == -7, "at/as_int");
}

void test_json_accessors() {
  json::Value s("str");
  expect_throw<cpucnn::ValueError>("as_number on a string", [&] { s.as_number(); },
                                   "JSON: expected a number, got a string");
  expect_throw<cpucnn::ValueError>("as_bool on a string", [&] { s.as_bool(); },
                                   "expected a boolean");
  expect_throw<cpucnn::ValueError>("as_array on null", [] { json::Value().as_array(); },
                                   "expected an array, got null");
  expect_throw<cpucnn::ValueError>("as_object on a number",
                                   [] { json::Value(1).as_object(); }, "expected an object");
  expect_throw<cpucnn::ValueError>("as_string on bool", [] { json::Value(true).as_string(); },
                                   "expected a string, got a boolean");
  expect_throw<cpucnn::ValueError>("size on a number", [] { json::Value(1).size(); });
  expect_throw<cpucnn::ValueError>("push_back on an object",
                                   [] { json::Value::object().push_back(1); });
  expect_throw<cpucnn::ValueError>("set on an array", [] { json::Value::array().set("a", 1); });
  expect_throw<cpucnn::ValueError>("at on a missing key",
                                   [] { json::parse("{\"a\":1}").at("k"); },
                                   "JSON: missing key 'k'");

  check(json::parse("-9223372036854775808").as_int() == std::numeric_limits<int64_t>::min(),
        "as_int of int64 min");
  check(json::Value(3.0).as_int() == 3, "as_int of 3.0");
  check(json::parse("1e3").as_int() == 1000, "as_int of 1e3");
  check(json::Value(-9.223372036854775808e18).as_int() == std::numeric_limits<int64_t>::min(),
        "as_int of -2^63 as a double");
  expect_throw<cpucnn::ValueError>("as_int of 1.5", [] { json::parse("1.5").as_int(); });
  expect_throw<cpucnn::ValueError>("as_int of 2^63", [] { json::Value(9.223372036854775808e18).as_int(); });
  expect_throw<cpucnn::ValueError>("as_int of a huge literal",
                                   [] { json::parse("18446744073709551616").as_int(); });
  expect_throw<cpucnn::ValueError>("Value(uint64 max)",
                                   [] { json::Value v(std::numeric_limits<uint64_t>::max()); });
  expect_throw<cpucnn::ValueError>("dump NaN", [] { json::dump(json::Value(std::nan(""))); });
  expect_throw<cpucnn::ValueError>("dump infinity", [] {
    json::Value a = json::Value::array();
    a.push_back(std::numeric_limits<double>::infinity());
    json::dump(a);
  });
  check(json::parse("1.5").as_number() == 1.5 && json::parse("0.1").as_number() == 0.1,
        "as_number");
  check(json::parse("\"\\ud83d\\ude00\"").as_string() == "\xf0\x9f\x98\x80", "surrogate pair");
}

void test_json_malformed() {
  const std::vector<std::string> bad = {
      "", " ", "[", "]", "{", "}", "[1,]", "[,1]", "[1 2]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}",
      "{\"a\"}", "{1:2}", "{\"a\":}", "01", "-01", "-", "--1", "1.", ".5", "1e", "1e+", "+1",
      "0x10", "tru", "nul", "True", "NaN", "-Infinity", "1e999", "-1e400", "\"abc", "\"\\x\"",
      "\"\\u12\"", "\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
      "\"\\ud800x\"", "\"\t\"", "\"\x01\"", "\"\n\"", "[1] x", "1 2", "{\"a\":1,\"a\":2}",
      "\"\xff\"", "\"\xc0\x80\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
      "\xef\xbb\xbf{}", std::string("[1]\0", 4), std::string("\0", 1), "/*c*/1", "'a'", "[1,2",
      "{\"a\":1", "\"\\", "[\"a\"", "nulll", "truefalse", "\x7f",
  };
  for (const std::string& text : bad) {
    expect_throw<cpucnn::ValueError>("parse of '" + show(text) + "'",
                                     [&] { json::parse(text); }, "JSON: ");
  }
  expect_throw<cpucnn::ValueError>("error offset", [] { json::parse("[1, 2, x]"); },
                                   "at offset 7");
}

void test_json_depth() {
  auto nested_arrays = [](size_t n) { return std::string(n, '[') + std::string(n, ']'); };
  auto nested_objects = [](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s += "{\"a\":";
    s += "1";
    s += std::string(n, '}');
    return s;
  };
  try {
    std::string text = nested_arrays(64);
    check(json::dump(json::parse(text)) == text, "64 nested arrays round trip");
    text = nested_objects(64);
    check(json::dump(json::parse(text)) == text, "64 nested objects round trip");
  } catch (const std::exception& e) {
    check(false, std::string("64 levels of nesting threw ") + e.what());
  }
  expect_throw<cpucnn::ValueError>("65 nested arrays", [&] { json::parse(nested_arrays(65)); },
                                   "nesting");
  expect_throw<cpucnn::ValueError>("65 nested objects", [&] { json::parse(nested_objects(65)); },
                                   "nesting");
  expect_throw<cpucnn::ValueError>("1e6 open brackets",
                                   [] { json::parse(std::string(1000000, '[')); }, "nesting");
  expect_throw<cpucnn::ValueError>("1e6 nested arrays",
                                   [&] { json::parse(nested_arrays(1000000)); }, "nesting");
}

// A parse costs 16 bytes per value (a tagged node) plus, while it runs, the stack the elements
// of unfinished arrays wait on; before the tagged node it was 104 bytes per value (156 at peak).
void test_json_memory() {
  check(sizeof(json::Value) == 16, "sizeof(json::Value) is " + std::to_string(sizeof(json::Value)));
  struct Case {
    const char* item;
    double live_per_value, peak_per_value;  // bounds, in bytes
  };
  for (const Case& c : {Case{"0", 16.5, 40}, Case{"-1.25e-3", 16.5, 40}, Case{"\"ab\"", 48.5, 72}}) {
    std::string text = "[";
    size_t n = 0;
    while (text.size() < (size_t(1) << 20)) {
      if (n++) text += ',';
      text += c.item;
    }
    text += ']';
    const size_t base = g_live_bytes.load();
    g_peak_bytes.store(base);
    size_t live = 0, values = 0;
    {
      json::Value v = json::parse(text);
      live = g_live_bytes.load() - base;
      values = v.size() + 1;
    }
    const size_t peak = g_peak_bytes.load() - base;
    const bool freed = g_live_bytes.load() == base;
    const double live_per = double(live) / double(values), peak_per = double(peak) / double(values);
    std::printf("json: a 1 MB array of %zu x %s: %.1f bytes per value live, %.1f at peak (%.1fx the text)\n",
                values - 1, c.item, live_per, peak_per, double(peak) / double(text.size()));
    check(values == n + 1, "the array has every element");
    check(live_per <= c.live_per_value, std::string("live bytes per value of ") + c.item + ": " +
                                            std::to_string(live_per));
    check(peak_per <= c.peak_per_value, std::string("peak bytes per value of ") + c.item + ": " +
                                            std::to_string(peak_per));
    check(freed, "everything freed after the parse");
  }
}

void test_json_value_semantics() {
  json::Value v = json::parse("[[1,2],[3],\"s\",{\"k\":[4]}]");
  json::Value copy = v;
  copy.as_array()[0].push_back(9);
  check(json::dump(v) == "[[1,2],[3],\"s\",{\"k\":[4]}]", "a copy is deep: " + json::dump(v));
  check(json::dump(copy) == "[[1,2,9],[3],\"s\",{\"k\":[4]}]", "the copy changed: " + json::dump(copy));
  json::Value moved = std::move(copy);
  check(copy.is_null() && moved.size() == 4, "a moved-from value is null");
  v = v.as_array()[0];  // assigning a part of itself
  check(json::dump(v) == "[1,2]", "v = v[0] gives " + json::dump(v));
  moved = std::move(moved.as_array()[3]);
  check(json::dump(moved) == "{\"k\":[4]}", "moving a part of itself gives " + json::dump(moved));
  json::Value& self = v;
  v = self;
  check(json::dump(v) == "[1,2]", "self-assignment");
  check(json::Value(int64_t{9007199254740993}).as_int() == 9007199254740993 &&
            json::Value(int64_t{9007199254740993}).is_exact_int() && !json::Value(1.0).is_exact_int(),
        "exact integers are kept exactly");
}

void test_json_limits() {
  json::Limits l;
  l.max_array = 3;
  l.max_object = 2;
  l.max_values = 6;
  l.max_depth = 3;
  auto ok = [&](const std::string& text) {
    try {
      check(json::dump(json::parse(text, l)) == text, "within the limits: " + text);
    } catch (const std::exception& e) {
      check(false, "within the limits: " + text + " threw " + e.what());
    }
  };
  ok("[1,2,3]");
  ok("{\"a\":1,\"b\":[]}");
  ok("[[[1]],2]");
  ok("[1,2,[3,4]]");
  expect_throw<cpucnn::ValueError>("array over the limit", [&] { json::parse("[1,2,3,4]", l); },
                                   "JSON: the length of an array exceeds the limit of 3 elements at offset 7");
  expect_throw<cpucnn::ValueError>("object over the limit", [&] { json::parse("{\"a\":1,\"b\":2,\"c\":3}", l); },
                                   "JSON: the size of an object exceeds the limit of 2 members");
  expect_throw<cpucnn::ValueError>("values over the limit", [&] { json::parse("[1,[2,[3]],[4,5]]", l); },
                                   "JSON: the number of values exceeds the limit of 6 values");
  expect_throw<cpucnn::ValueError>("depth over the limit", [&] { json::parse("[[[[1]]]]", l); },
                                   "JSON: nesting depth exceeds the limit of 3 levels");
  // The defaults: 2^20 elements per array.
  std::string big = "[0";
  for (size_t i = 0; i < (size_t(1) << 20); ++i) big += ",0";
  big += "]";
  expect_throw<cpucnn::ValueError>("2^20 + 1 elements", [&] { json::parse(big); }, "exceeds the limit of 1048576");
  // Duplicate keys in a large object (found by sorting) are reported where they repeat.
  std::string obj = "{";
  for (int i = 0; i < 40; ++i) obj += "\"k" + std::to_string(i) + "\":0,";
  const size_t dup_at = obj.size();
  obj += "\"k7\":1,\"k3\":2}";
  expect_throw<cpucnn::ValueError>("duplicate key in a large object", [&] { json::parse(obj); },
                                   "duplicate key 'k7' at offset " + std::to_string(dup_at));
}

// ---------------------------------------------------------------------------------------------
// safetensors

std::string g_dir;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::string> hidden_files(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name.size() > 2 && name[0] == '.' && name != "..") names.push_back(name);
    }
    closedir(d);
  }
  return names;
}

// A safetensors file from raw parts: header length (defaults to the header's size), header, buffer.
std::string make_file(const std::string& header, const std::string& buffer,
                      uint64_t length = UINT64_MAX) {
  if (length == UINT64_MAX) length = header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(length >> (8 * i));
  return out + header + buffer;
}

// Loads `bytes` written to a file; returns true on success and false on ValueError, records a
// failure for anything else. Touches every tensor byte of a successful load.
bool try_load(const std::string& bytes, const std::string& what) {
  const std::string path = g_dir + "/fuzz.st";
  write_bytes(path, bytes);
  try {
    st::File f(path);
    unsigned sum = 0;
    for (const auto& t : f.tensors()) {
      for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
    }
    (void)sum;
    return true;
  } catch (const cpucnn::ValueError&) {
    return false;
  } catch (const std::exception& e) {
    check(false, what + ": unexpected exception " + e.what());
    return false;
  }
}

void expect_invalid(const std::string& bytes, const std::string& what,
                    const std::string& message_part = "") {
  const std::string path = g_dir + "/bad.st";
  write_bytes(path, bytes);
  expect_throw<cpucnn::ValueError>(what, [&] { st::File f(path); }, message_part);
}

struct Sample {
  std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -7.0f};
  std::vector<int64_t> i64 = {1, -2, int64_t{1} << 40, -(int64_t{1} << 62)};
  std::vector<double> f64 = {3.141592653589793};
  std::vector<int32_t> i32 = {1, 2, 3, 4, 5};
  std::vector<uint8_t> u8 = {0, 1, 2, 255, 128, 7, 9};

  std::vector<st::TensorView> views() const {
    return {
        {"layer.weight", "F32", {2, 3}, f32.data()},
        {"steps", "I64", {4}, i64.data()},
        {"empty", "F32", {0, 3}, nullptr},
        {"scalar", "F64", {}, f64.data()},
        {"ints", "I32", {5}, i32.data()},
        {"bytes", "U8", {7}, u8.data()},
    };
  }
};

const std::vector<std::pair<std::string, std::string>> kMeta = {
    {"format", "cpucnn"}, {"config", "{\"layers\":[1,2]}"}, {"note", "caf\xc3\xa9\n\"q\""}};

void test_safetensors_round_trip() {
  const std::string path = g_dir + "/model.st";
  Sample s;
  auto views = s.views();
  try {
    st::write_file(path, kMeta, views);
    std::string bytes = read_bytes(path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
    check((8 + n) % 8 == 0, "buffer starts at an 8-byte aligned offset");
    check(bytes[8] == '{', "header starts with '{'");

    st::File f(path);
    check(f.metadata() == kMeta, "metadata read back in order");
    check(f.meta("format") && *f.meta("format") == "cpucnn", "meta(format)");
    check(f.meta("missing") == nullptr, "meta(missing) is null");
    check(f.tensors().size() == views.size(), "tensor count");
    for (size_t i = 0; i < views.size() && i < f.tensors().size(); ++i) {
      const st::TensorInfo& t = f.tensors()[i];
      const st::TensorView& v = views[i];
      size_t numel = 1;
      for (int64_t d : v.shape) numel *= static_cast<size_t>(d);
      size_t nbytes = numel * st::dtype_size(v.dtype);
      check(t.name == v.name && t.dtype == v.dtype && t.shape == v.shape, "tensor " + v.name + " header");
      check(t.nbytes == nbytes, "tensor " + v.name + " nbytes");
      check(nbytes == 0 || std::memcmp(t.data, v.data, nbytes) == 0, "tensor " + v.name + " data");
      check(f.find(v.name) == &t, "find(" + v.name + ")");
    }
    check(f.find("nope") == nullptr, "find(missing) is null");
    check(bytes.size() == 8 + n + 24 + 32 + 0 + 8 + 20 + 7, "file size");
  } catch (const std::exception& e) {
    check(false, std::string("round trip threw ") + e.what());
  }

  // Overwriting works and leaves no temporary files behind.
  try {
    st::write_file(path, {}, {{"only", "U8", {1}, s.u8.data()}});
    st::File f(path);
    check(f.tensors().size() == 1 && f.metadata().empty(), "overwrite");
    st::write_file(path, {}, {});
    st::File g(path);
    check(g.tensors().empty(), "empty file round trip");
    check(read_bytes(path).size() == 16, "empty file is 8 + 8 bytes");
  } catch (const std::exception& e) {
    check(false, std::string("overwrite threw ") + e.what());
  }
  check(hidden_files(g_dir).empty(), "no temporary files left");
}

void test_safetensors_write_errors() {
  const std::string path = g_dir + "/keep.st";
  Sample s;
  st::write_file(path, kMeta, s.views());
  const std::string before = read_bytes(path);

  auto bad_write = [&](const std::string& what, std::vector<st::TensorView> views,
                       std::vector<std::pair<std::string, std::string>> meta = {}) {
    expect_throw<cpucnn::ValueError>(what, [&] { st::write_file(path, meta, views); });
  };
  bad_write("unknown dtype", {{"a", "F128", {1}, s.f32.data()}});
  bad_write("negative dimension", {{"a", "F32", {-1}, s.f32.data()}});
  bad_write("overflowing shape", {{"a", "F32", {int64_t{1} << 40, int64_t{1} << 40}, s.f32.data()}});
  bad_write("duplicate name", {{"a", "F32", {1}, s.f32.data()}, {"a", "F32", {1}, s.f32.data()}});
  bad_write("reserved name", {{"__metadata__", "F32", {1}, s.f32.data()}});
  bad_write("null data", {{"a", "F32", {1}, nullptr}});
  bad_write("duplicate metadata key", {}, {{"k", "1"}, {"k", "2"}});
  check(read_bytes(path) == before, "failed writes leave the previous file untouched");

  expect_throw<cpucnn::IOError>("save into a missing directory",
                                [&] { st::write_file(g_dir + "/no/such/dir.st", {}, {}); },
                                "cannot save '" + g_dir + "/no/such/dir.st': ");
  const std::string subdir = g_dir + "/subdir";
  mkdir(subdir.c_str(), 0755);
  expect_throw<cpucnn::IOError>("save over a directory",
                                [&] { st::write_file(subdir, {}, s.views()); }, "cannot save");
  struct stat sb;
  check(stat(subdir.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode), "directory survives a failed save");
  check(hidden_files(g_dir).empty(), "failed saves leave no temporary files");
  rmdir(subdir.c_str());
}

void test_safetensors_open_errors() {
  expect_throw<cpucnn::FileNotFound>("missing file", [] { st::File f(g_dir + "/missing.st"); },
                                     "no such file: '" + g_dir + "/missing.st'");
  expect_throw<cpucnn::IOError>("directory", [] { st::File f(g_dir); });
}

void test_safetensors_corrupted() {
  const std::string path = g_dir + "/small.st";
  Sample s;
  st::write_file(path, {{"k", "v"}},
                 {{"w", "F32", {2, 3}, s.f32.data()}, {"b", "I32", {2}, s.i32.data()}});
  const std::string good = read_bytes(path);
  check(try_load(good, "small file"), "small file loads");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(good[i]);

  // Truncation at every byte offset.
  for (size_t len = 0; len < good.size(); ++len) {
    expect_invalid(good.substr(0, len), "truncated to " + std::to_string(len) + " bytes");
  }
  expect_invalid(good.substr(0, 5), "5 bytes", "is too short");
  expect_invalid(good.substr(0, 20), "20 bytes",
                 "is truncated: header says " + std::to_string(header_len) + " bytes");

  // Byte flips anywhere in the length field and header: a clean load or a ValueError, no crash.
  int loaded = 0, rejected = 0;
  const unsigned char masks[] = {0x01, 0x02, 0x20, 0x40, 0x80, 0xFF};
  for (size_t i = 0; i < 8 + header_len; ++i) {
    for (unsigned char m : masks) {
      std::string bytes = good;
      bytes[i] = static_cast<char>(bytes[i] ^ m);
      (try_load(bytes, "flip byte " + std::to_string(i)) ? loaded : rejected)++;
    }
  }
  check(rejected > loaded, "most header flips are rejected (" + std::to_string(rejected) +
                               " rejected, " + std::to_string(loaded) + " loaded)");

  // Random mutations.
  std::mt19937 rng(42);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes = good;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % (8 + header_len);
      bytes[pos] = static_cast<char>(rng() & 0xFF);
    }
    if (rng() % 4 == 0) bytes.resize(rng() % (bytes.size() + 16), '\0');
    try_load(bytes, "random mutation " + std::to_string(iter));
  }
}

void test_safetensors_crafted() {
  const std::string buf16(16, '\x01');
  auto tensor = [](const std::string& name, const std::string& body) {
    return "\"" + name + "\":" + body;
  };
  auto ok = [&](const std::string& header, const std::string& buffer, const std::string& what) {
    check(try_load(make_file(header, buffer), what), what + " loads");
  };
  auto bad = [&](const std::string& header, const std::string& buffer, const std::string& what,
                 const std::string& part = "") {
    expect_invalid(make_file(header, buffer), what, part);
  };
  const std::string a8 = tensor("a", "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}");

  ok("{" + a8 + "}", buf16, "gap after the last tensor");
  ok("  {" + a8 + "}  \n", buf16, "whitespace around the header");
  ok("{\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,8]}," + a8 + "}", buf16,
     "empty tensor at the end of another");
  ok("{\"__metadata__\":{}}", "", "empty metadata");

  expect_invalid(make_file("", ""), "header length 0", "empty header");
  expect_invalid(make_file("{}", "", 200'000'000), "header length over 100 MB", "over the limit");
  expect_invalid(make_file("{}", "", UINT64_MAX - 1), "header length 2^64-2", "over the limit");
  expect_invalid(make_file("{}", "", 3), "header length past the end", "is truncated");
  bad("[]", "", "array header", "expected a JSON object");
  bad("{", "", "unterminated header", "invalid header: JSON");
  bad("{} x", "", "trailing garbage", "invalid header");
  bad(std::string("{}\0", 3), "", "NUL in header");
  bad("{\"a\":1}", "", "tensor entry not an object", "tensor 'a'");
  bad("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", buf16, "missing dtype");
  bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", buf16, "missing shape");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", buf16, "missing offsets");
  bad("{\"a\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,8]}}", buf16, "unknown dtype",
      "unknown dtype 'F128'");
  bad("{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", buf16, "numeric dtype");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", buf16, "shape not array");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", buf16, "negative dim");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", buf16, "fractional dim");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", buf16, "string dim");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,8]}}", buf16, "huge dim");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}",
      buf16, "overflowing shape", "overflows");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", buf16, "size mismatch",
      "need 12");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", buf16, "begin > end");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", buf16, "end past buffer",
      "outside the data buffer of 16 bytes");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", buf16, "negative begin");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]}}", buf16, "3 offsets");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", buf16, "1 offset");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{}}}", buf16, "object offsets");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8.5]}}", buf16,
      "fractional offsets");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1e300,1e300]}}", buf16,
      "huge offsets");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[18446744073709551608,"
      "18446744073709551616]}}",
      buf16, "offsets beyond int64");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", buf16,
      "unexpected key", "unexpected key 'x'");
  bad("{" + a8 + "," + tensor("b", "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}") + "}",
      buf16, "overlapping tensors", "overlap");
  bad("{" + tensor("b", "{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}") + "," + a8 + "}",
      buf16, "empty tensor inside another", "overlap");
  bad("{" + a8 + "," + a8 + "}", buf16, "duplicate tensor name", "duplicate key 'a'");
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", buf16, "rank 9",
      "tensor 'a' has 9 dimensions, exceeding the limit of 8");
  ok("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", buf16, "rank 8");
  std::string long_shape = "[1";
  for (int i = 0; i < 1100; ++i) long_shape += ",1";
  bad("{\"a\":{\"dtype\":\"F32\",\"shape\":" + long_shape + "],\"data_offsets\":[0,4]}}", buf16, "1101 dims",
      "has an invalid header: JSON: the length of an array exceeds the limit of 1024 elements");
  bad("{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}", "", "nested 100 deep",
      "JSON: nesting depth exceeds the limit of 64 levels");
  bad("{\"__metadata__\":[]}", "", "metadata not an object", "__metadata__");
  bad("{\"__metadata__\":{\"k\":1}}", "", "metadata value not a string", "metadata value 'k'");
}

// With a format, a file that is not one of ours says so; one that carries the marker keeps the
// specific messages.
void test_safetensors_format() {
  const std::string path = g_dir + "/fmt.st";
  auto not_ours = [&](const std::string& bytes, const std::string& what, const std::string& why) {
    write_bytes(path, bytes);
    expect_throw<cpucnn::ValueError>(what, [&] { st::File f(path, "cpucnn"); },
                                     "'" + path + "' is not a cpucnn model file (" + why);
  };
  auto ours_bad = [&](const std::string& bytes, const std::string& what, const std::string& part) {
    write_bytes(path, bytes);
    expect_throw<cpucnn::ValueError>(what, [&] { st::File f(path, "cpucnn"); }, "model file '" + path + "' " + part);
  };
  std::string random(4096, '\0');
  std::mt19937 rng(3);
  for (char& c : random) c = static_cast<char>(rng() & 0xFF);
  not_ours("", "empty", "the file is empty");
  not_ours("abc", "3 bytes", "it is too short: 3 bytes");
  not_ours(random, "random bytes", "it does not start with a safetensors header; its first bytes are ");
  not_ours(std::string("PK\x03\x04\x14\0\0\0", 8) + std::string(100, '\0'), "zip", "it is a zip archive");
  not_ours(std::string("\x08\x08\x12\x07pytorch\x1a\x05" "2.1.0:\x9c\x02", 20) + random, "ONNX-like",
           "it does not start with a safetensors header; its first bytes are 08 08 12 07 70 79 74 6f");
  not_ours("ir_version: 8\nproducer_name: \"pytorch\"\n", "text", "it looks like a text file");
  not_ours(make_file("{}", "", 1000), "cut short without the marker", "it looks like a truncated safetensors file");
  not_ours(make_file("{\"a\":1", ""), "framed, not JSON", "its header could not be read: JSON: ");
  std::string wide = "{\"a\":[0";
  for (int i = 0; i < 2000; ++i) wide += ",0";
  not_ours(make_file(wide + "]}", ""), "framed, over the header caps",
           "its header could not be read: JSON: the length of an array exceeds the limit of 1024 elements");
  Sample s;
  st::write_file(path, {}, s.views());
  std::string plain = read_bytes(path);
  not_ours(plain, "plain safetensors", "it is a safetensors file whose metadata has no \"format\", not \"cpucnn\"");
  st::write_file(path, {{"format", "pt"}}, s.views());
  not_ours(read_bytes(path), "format pt", "it is a safetensors file whose metadata has \"format\": \"pt\"");

  st::write_file(path, kMeta, s.views());  // kMeta has "format": "cpucnn"
  const std::string good = read_bytes(path);
  try {
    st::File f(path, "cpucnn");
    check(f.tensors().size() == s.views().size(), "a file with the format loads");
  } catch (const std::exception& e) {
    check(false, std::string("a file with the format threw ") + e.what());
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(good[i]);
  ours_bad(good.substr(0, 8 + header_len / 2), "ours, truncated",
           "is truncated: header says " + std::to_string(header_len) + " bytes");
  std::string flipped = good;
  flipped[5] = static_cast<char>(flipped[5] ^ 0x10);
  ours_bad(flipped, "ours, length field damaged", "has a header length of ");
  std::string broken = good;
  broken[8 + header_len - 3] = '#';
  ours_bad(broken, "ours, header damaged", "has an invalid header: JSON");
}

}  // namespace

int main() {
  char dir_template[] = "/tmp/cpucnn_test_io_XXXXXX";
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/cpucnn_test_io_XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  const char* made = mkdtemp(buf.data());
  if (!made) made = mkdtemp(dir_template);
  if (!made) {
    std::printf("cannot create a temporary directory\n");
    return 1;
  }
  g_dir = made;

  test_json_round_trips();
  test_json_accessors();
  test_json_malformed();
  test_json_depth();
  test_json_memory();
  test_json_value_semantics();
  test_json_limits();
  test_safetensors_round_trip();
  test_safetensors_write_errors();
  test_safetensors_open_errors();
  test_safetensors_corrupted();
  test_safetensors_crafted();
  test_safetensors_format();

  for (const char* name : {"model.st", "keep.st", "small.st", "fuzz.st", "bad.st", "fmt.st"}) {
    std::remove((g_dir + "/" + name).c_str());
  }
  rmdir(g_dir.c_str());

  return cpucnn_test::report();
}
