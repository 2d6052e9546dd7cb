// A minimal, strict JSON value type with a parser and a compact writer.
//
// Used for model files (safetensors headers, model configs). Objects keep insertion order so that
// dump() is deterministic. Numbers are doubles, except that integer literals and integers passed to
// the constructors are kept exactly as int64, so 64-bit integers survive a round trip.
//
// A Value is a 16-byte tagged node: a kind, and one payload (a bool, a double, an int64, or a
// pointer to an owned string, array or object). A header of many small numbers thus costs 16 bytes
// per number (it was 104 when every node carried every field), and parse() sizes arrays and
// objects exactly. parse() also caps nesting, array and object sizes and the number of values
// (Limits), so the memory a document can take is bounded by its size and those caps.
//
// Every error is a cpucnn::ValueError whose message starts with "JSON: ".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cpucnn::json {

namespace detail {
class Parser;
}

class Value {
 public:
  enum class Kind : uint8_t { Null, Bool, Number, String, Array, Object };
  using Member = std::pair<std::string, Value>;

  Value() noexcept {}  // null
  Value(bool b) : kind_(Kind::Bool) { u_.b = b; }
  Value(double x) : kind_(Kind::Number) { u_.d = x; }
  Value(int x) : Value(static_cast<int64_t>(x)) {}
  Value(int64_t x) : kind_(Kind::Number), exact_int_(true) { u_.i = x; }
  Value(const char* s);
  Value(std::string s);
  // Any other integer type (size_t, long long, unsigned, ...). Throws ValueError above INT64_MAX.
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Value(T x) : Value(checked_int64(x)) {}

  Value(const Value& other);
  Value(Value&& other) noexcept : kind_(other.kind_), exact_int_(other.exact_int_), u_(other.u_) {
    other.kind_ = Kind::Null;
  }
  Value& operator=(const Value& other);
  Value& operator=(Value&& other) noexcept;
  ~Value() { release(); }

  static Value array();
  static Value object();

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Number; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }

  bool as_bool() const;
  double as_number() const;
  // Throws ValueError unless the number is integral and fits in int64.
  int64_t as_int() const;
  const std::string& as_string() const;
  const std::vector<Value>& as_array() const;
  std::vector<Value>& as_array();
  const std::vector<Member>& as_object() const;

  // Object access. `at` throws ValueError("JSON: missing key 'k'"); `find` returns nullptr.
  bool has(const std::string& key) const;
  const Value& at(const std::string& key) const;
  const Value* find(const std::string& key) const;
  // Inserts or replaces `key`; returns the stored value.
  Value& set(const std::string& key, Value v);

  // Array append.
  void push_back(Value v);

  // Number of elements of an array or members of an object.
  size_t size() const;

  // True when the number is held as an exact 64-bit integer (integer literal or integer constructor).
  bool is_exact_int() const { return kind_ == Kind::Number && exact_int_; }

 private:
  friend class detail::Parser;

  template <typename T>
  static int64_t checked_int64(T x) {
    if constexpr (std::is_unsigned_v<T>) {
      if (static_cast<unsigned long long>(x) > static_cast<unsigned long long>(INT64_MAX)) {
        throw_int64_range();
      }
    }
    return static_cast<int64_t>(x);
  }
  [[noreturn]] static void throw_int64_range();
  void expect(Kind k) const;
  void release() noexcept;

  Kind kind_ = Kind::Null;
  bool exact_int_ = false;  // a Number held in u_.i rather than u_.d
  union Payload {
    bool b;
    double d;
    int64_t i;
    std::string* s;
    std::vector<Value>* a;
    std::vector<Member>* o;
  } u_{};
};
static_assert(sizeof(Value) == 16, "a JSON node is a tag and one 8-byte payload");

// Caps parse() enforces; exceeding one is a ValueError ("JSON: ... exceeds the limit of N ...").
// The defaults suit model configs; the safetensors reader passes tighter ones for file headers.
struct Limits {
  int max_depth = 64;                      // nested arrays/objects
  size_t max_array = size_t(1) << 20;      // elements of one array
  size_t max_object = size_t(1) << 20;     // members of one object
  size_t max_values = size_t(1) << 24;     // values in the whole document (16 bytes each)
};

// Name of a kind for messages: "null", "a boolean", "a number", "a string", "an array", "an object".
const char* kind_name(Value::Kind kind);

// Parses one JSON document (RFC 8259, strict: no comments, no trailing commas, no NaN, no
// duplicate object keys, strings must be valid UTF-8) within `limits`.
// Throws ValueError("JSON: <what> at offset N").
Value parse(std::string_view text, const Limits& limits = Limits());

// Compact, deterministic serialisation. Throws ValueError for NaN or infinity.
std::string dump(const Value& v);

}  // namespace cpucnn::json
