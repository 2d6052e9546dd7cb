// A minimal, strict JSON value type with a parser and a compact writer.
//
// Used for model files (safetensors headers, model configs). Objects keep insertion order so that
// dump() is deterministic. Numbers are doubles; integer literals and integers passed to the
// constructors are additionally kept exactly, so 64-bit integers survive a round trip.
//
// Every error is a cpucnn::ValueError whose message starts with "JSON: ".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace cpucnn::json {

namespace detail {
class Parser;
}

class Value {
 public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Value();  // null
  Value(bool b);
  Value(double x);
  Value(int x);
  Value(int64_t x);
  Value(const char* s);
  Value(std::string s);
  // Any other integer type (size_t, long long, unsigned, ...). Throws ValueError above INT64_MAX.
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Value(T x) : Value(checked_int64(x)) {}

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
  const std::vector<std::pair<std::string, Value>>& as_object() const;

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

  Kind kind_ = Kind::Null;
  bool bool_ = false;
  bool exact_int_ = false;
  double number_ = 0.0;
  int64_t int_ = 0;
  std::string string_;
  std::vector<Value> array_;
  std::vector<std::pair<std::string, Value>> object_;
};

// Name of a kind for messages: "null", "a boolean", "a number", "a string", "an array", "an object".
const char* kind_name(Value::Kind kind);

// Parses one JSON document (RFC 8259, strict: no comments, no trailing commas, no NaN, no
// duplicate object keys, strings must be valid UTF-8). Nesting is limited to 64 levels.
// Throws ValueError("JSON: <what> at offset N").
Value parse(const std::string& text);

// Compact, deterministic serialisation. Throws ValueError for NaN or infinity.
std::string dump(const Value& v);

}  // namespace cpucnn::json
