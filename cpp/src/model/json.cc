#include "model/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <unordered_set>

#include "core/errors.hpp"

namespace cpucnn::json {

namespace {

constexpr int kMaxDepth = 64;
constexpr double kTwoPow53 = 9007199254740992.0;
constexpr double kTwoPow63 = 9223372036854775808.0;

[[noreturn]] void throw_kind(Value::Kind expected, Value::Kind got) {
  throw ValueError(std::string("JSON: expected ") + kind_name(expected) + ", got " + kind_name(got));
}

}  // namespace

const char* kind_name(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::Null: return "null";
    case Value::Kind::Bool: return "a boolean";
    case Value::Kind::Number: return "a number";
    case Value::Kind::String: return "a string";
    case Value::Kind::Array: return "an array";
    case Value::Kind::Object: return "an object";
  }
  return "an unknown kind";
}

// ---------------------------------------------------------------------------------------------
// Value

Value::Value() = default;
Value::Value(bool b) : kind_(Kind::Bool), bool_(b) {}
Value::Value(double x) : kind_(Kind::Number), number_(x) {}
Value::Value(int x) : Value(static_cast<int64_t>(x)) {}
Value::Value(int64_t x)
    : kind_(Kind::Number), exact_int_(true), number_(static_cast<double>(x)), int_(x) {}
Value::Value(const char* s) : kind_(Kind::String), string_(s) {}
Value::Value(std::string s) : kind_(Kind::String), string_(std::move(s)) {}

Value Value::array() {
  Value v;
  v.kind_ = Kind::Array;
  return v;
}

Value Value::object() {
  Value v;
  v.kind_ = Kind::Object;
  return v;
}

void Value::throw_int64_range() {
  throw ValueError("JSON: integer is out of the int64 range");
}

void Value::expect(Kind k) const {
  if (kind_ != k) throw_kind(k, kind_);
}

bool Value::as_bool() const {
  expect(Kind::Bool);
  return bool_;
}

double Value::as_number() const {
  expect(Kind::Number);
  return number_;
}

int64_t Value::as_int() const {
  expect(Kind::Number);
  if (exact_int_) return int_;
  if (!std::isfinite(number_) || std::trunc(number_) != number_) {
    throw ValueError("JSON: expected an integer, got " + dump(*this));
  }
  // Every double in [-2^63, 2^63) converts exactly.
  if (number_ < -kTwoPow63 || number_ >= kTwoPow63) {
    throw ValueError("JSON: integer " + dump(*this) + " is out of the int64 range");
  }
  return static_cast<int64_t>(number_);
}

const std::string& Value::as_string() const {
  expect(Kind::String);
  return string_;
}

const std::vector<Value>& Value::as_array() const {
  expect(Kind::Array);
  return array_;
}

std::vector<Value>& Value::as_array() {
  expect(Kind::Array);
  return array_;
}

const std::vector<std::pair<std::string, Value>>& Value::as_object() const {
  expect(Kind::Object);
  return object_;
}

bool Value::has(const std::string& key) const { return find(key) != nullptr; }

const Value& Value::at(const std::string& key) const {
  const Value* v = find(key);
  if (!v) throw ValueError("JSON: missing key '" + key + "'");
  return *v;
}

const Value* Value::find(const std::string& key) const {
  expect(Kind::Object);
  for (const auto& [k, v] : object_) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value& Value::set(const std::string& key, Value v) {
  expect(Kind::Object);
  for (auto& [k, existing] : object_) {
    if (k == key) {
      existing = std::move(v);
      return existing;
    }
  }
  object_.emplace_back(key, std::move(v));
  return object_.back().second;
}

void Value::push_back(Value v) {
  expect(Kind::Array);
  array_.push_back(std::move(v));
}

size_t Value::size() const {
  if (kind_ == Kind::Array) return array_.size();
  if (kind_ == Kind::Object) return object_.size();
  throw ValueError(std::string("JSON: expected an array or an object, got ") + kind_name(kind_));
}

// ---------------------------------------------------------------------------------------------
// Parser

namespace detail {

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  Value parse_document() {
    Value v = parse_value(0);
    skip_whitespace();
    if (pos_ != s_.size()) fail("unexpected trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { fail_at(what, pos_); }

  [[noreturn]] void fail_at(const std::string& what, size_t offset) const {
    throw ValueError("JSON: " + what + " at offset " + std::to_string(offset));
  }

  bool at_end() const { return pos_ >= s_.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(s_[pos_]); }

  void skip_whitespace() {
    while (!at_end()) {
      char c = s_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  Value parse_value(int depth) {
    skip_whitespace();
    if (at_end()) fail("unexpected end of input");
    switch (peek()) {
      case '{': return parse_object(depth + 1);
      case '[': return parse_array(depth + 1);
      case '"': return Value(parse_string());
      case 't': expect_literal("true"); return Value(true);
      case 'f': expect_literal("false"); return Value(false);
      case 'n': expect_literal("null"); return Value();
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number();
        fail("unexpected character");
    }
  }

  void expect_literal(std::string_view word) {
    if (s_.compare(pos_, word.size(), word) != 0) fail("invalid literal");
    pos_ += word.size();
  }

  void check_depth(int depth) const {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
  }

  Value parse_array(int depth) {
    check_depth(depth);
    ++pos_;  // '['
    Value out = Value::array();
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return out;
    }
    for (;;) {
      out.push_back(parse_value(depth));
      skip_whitespace();
      if (at_end()) fail("unterminated array");
      if (peek() == ']') {
        ++pos_;
        return out;
      }
      if (peek() != ',') fail("expected ',' or ']'");
      ++pos_;
    }
  }

  Value parse_object(int depth) {
    check_depth(depth);
    ++pos_;  // '{'
    Value out = Value::object();
    std::unordered_set<std::string> seen;
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return out;
    }
    for (;;) {
      skip_whitespace();
      if (at_end()) fail("unterminated object");
      if (peek() != '"') fail("expected a string key");
      size_t key_offset = pos_;
      std::string key = parse_string();
      if (!seen.insert(key).second) fail_at("duplicate key '" + key + "'", key_offset);
      skip_whitespace();
      if (at_end() || peek() != ':') fail("expected ':'");
      ++pos_;
      // Keys are known to be unique: append directly instead of the linear search in set().
      Value v = parse_value(depth);
      out.object_.emplace_back(std::move(key), std::move(v));
      skip_whitespace();
      if (at_end()) fail("unterminated object");
      if (peek() == '}') {
        ++pos_;
        return out;
      }
      if (peek() != ',') fail("expected ',' or '}'");
      ++pos_;
    }
  }

  unsigned parse_hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      unsigned char c = peek();
      unsigned digit;
      if (c >= '0' && c <= '9') digit = c - '0';
      else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
      else fail("invalid hex digit in \\u escape");
      code = code * 16 + digit;
      ++pos_;
    }
    return code;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  void parse_escape(std::string& out) {
    size_t start = pos_;
    ++pos_;  // '\\'
    if (at_end()) fail("unterminated string");
    char c = s_[pos_++];
    switch (c) {
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case '/': out += '/'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default: fail_at("invalid escape", start);
    }
    unsigned cp = parse_hex4();
    if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at("unpaired low surrogate", start);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (s_.compare(pos_, 2, "\\u") != 0) fail_at("unpaired high surrogate", start);
      pos_ += 2;
      unsigned low = parse_hex4();
      if (low < 0xDC00 || low > 0xDFFF) fail_at("unpaired high surrogate", start);
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(out, cp);
  }

  // Copies one UTF-8 encoded code point (lead byte >= 0x80), rejecting overlong forms, surrogates
  // and code points above U+10FFFF.
  void copy_utf8(std::string& out) {
    unsigned char lead = peek();
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
      len = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      len = 3;
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      len = 4;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    } else {
      fail("invalid UTF-8 in string");
    }
    if (s_.size() - pos_ < len) fail("invalid UTF-8 in string");
    for (size_t i = 1; i < len; ++i) {
      auto c = static_cast<unsigned char>(s_[pos_ + i]);
      unsigned char min = (i == 1) ? lo : 0x80;
      unsigned char max = (i == 1) ? hi : 0xBF;
      if (c < min || c > max) fail("invalid UTF-8 in string");
    }
    out.append(s_, pos_, len);
    pos_ += len;
  }

  std::string parse_string() {
    size_t start = pos_;
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail_at("unterminated string", start);
      unsigned char c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\\') {
        parse_escape(out);
      } else if (c < 0x20) {
        fail("control character in string");
      } else if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
      } else {
        copy_utf8(out);
      }
    }
  }

  size_t skip_digits() {
    size_t n = 0;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      ++pos_;
      ++n;
    }
    return n;
  }

  Value parse_number() {
    const size_t start = pos_;
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    if (at_end() || peek() < '0' || peek() > '9') fail("invalid number");

    // Integer part: "0" or a non-zero digit followed by digits.
    const size_t int_start = pos_;
    if (peek() == '0') {
      ++pos_;
      if (!at_end() && peek() >= '0' && peek() <= '9') fail_at("leading zero in number", start);
    } else {
      skip_digits();
    }
    const size_t int_end = pos_;
    size_t frac_start = pos_, frac_end = pos_;
    bool integral = true;
    if (!at_end() && peek() == '.') {
      integral = false;
      ++pos_;
      frac_start = pos_;
      if (skip_digits() == 0) fail("expected digits after '.'");
      frac_end = pos_;
    }
    long exponent = 0;
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      integral = false;
      ++pos_;
      bool exp_negative = false;
      if (!at_end() && (peek() == '+' || peek() == '-')) exp_negative = s_[pos_++] == '-';
      size_t exp_start = pos_;
      if (skip_digits() == 0) fail("expected digits in exponent");
      for (size_t i = exp_start; i < pos_ && exponent < 100000000; ++i) {
        exponent = exponent * 10 + (s_[i] - '0');
      }
      if (exp_negative) exponent = -exponent;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;

    if (integral) {
      int64_t i = 0;
      auto [ptr, ec] = std::from_chars(first, last, i);
      if (ec == std::errc() && ptr == last) return Value(i);
      // Too large for int64: fall through and keep it as a double.
    }

    double x = 0.0;
    bool out_of_range = false;
#if defined(__cpp_lib_to_chars)
    auto [ptr, ec] = std::from_chars(first, last, x);
    if (ptr != last) fail_at("invalid number", start);
    out_of_range = ec == std::errc::result_out_of_range;
#else
    // strtod honours LC_NUMERIC; only used where <charconv> lacks floating point support.
    std::string copy(first, last);
    char* end = nullptr;
    x = std::strtod(copy.c_str(), &end);
    if (end != copy.c_str() + copy.size()) fail_at("invalid number", start);
    out_of_range = std::isinf(x);
#endif
    if (out_of_range) {
      // Decide between overflow (rejected) and underflow (rounds to zero) from the decimal
      // magnitude: the position of the first significant digit relative to the decimal point.
      long magnitude = exponent;
      size_t int_digits = int_end - int_start;
      if (!(int_digits == 1 && s_[int_start] == '0')) {
        magnitude += static_cast<long>(int_digits);
      } else {
        size_t zeros = 0;
        while (frac_start + zeros < frac_end && s_[frac_start + zeros] == '0') ++zeros;
        magnitude -= static_cast<long>(zeros);
      }
      if (magnitude > 0) fail_at("number out of range", start);
      x = negative ? -0.0 : 0.0;
    }
    return Value(x);
  }

  const std::string& s_;
  size_t pos_ = 0;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

void dump_string(std::string& out, const std::string& s) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void dump_number(std::string& out, const Value& v) {
  if (v.is_exact_int()) {
    out += std::to_string(v.as_int());
    return;
  }
  double x = v.as_number();
  if (!std::isfinite(x)) throw ValueError("JSON: cannot serialise NaN or infinity");
  if (x == 0.0 && std::signbit(x)) {
    out += "-0.0";
    return;
  }
  if (std::trunc(x) == x && std::fabs(x) < kTwoPow53) {
    out += std::to_string(static_cast<int64_t>(x));
    return;
  }
  char buf[64];
#if defined(__cpp_lib_to_chars)
  auto result = std::to_chars(buf, buf + sizeof(buf), x);  // shortest round-trip form
  out.append(buf, result.ptr);
#else
  int n = std::snprintf(buf, sizeof(buf), "%.17g", x);
  out.append(buf, static_cast<size_t>(n));
#endif
}

void dump_value(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Null: out += "null"; return;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::Number: dump_number(out, v); return;
    case Value::Kind::String: dump_string(out, v.as_string()); return;
    case Value::Kind::Array: {
      out += '[';
      bool first = true;
      for (const Value& item : v.as_array()) {
        if (!first) out += ',';
        first = false;
        dump_value(out, item);
      }
      out += ']';
      return;
    }
    case Value::Kind::Object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.as_object()) {
        if (!first) out += ',';
        first = false;
        dump_string(out, key);
        out += ':';
        dump_value(out, item);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace

Value parse(const std::string& text) { return detail::Parser(text).parse_document(); }

std::string dump(const Value& v) {
  std::string out;
  dump_value(out, v);
  return out;
}

}  // namespace cpucnn::json
