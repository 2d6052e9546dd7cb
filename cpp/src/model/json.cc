#include "model/json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string_view>

#include "core/errors.hpp"

namespace cpucnn::json {

namespace {

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

Value::Value(const char* s) : kind_(Kind::String) { u_.s = new std::string(s); }
Value::Value(std::string s) : kind_(Kind::String) { u_.s = new std::string(std::move(s)); }

Value::Value(const Value& other) : kind_(other.kind_), exact_int_(other.exact_int_), u_(other.u_) {
  // Deep copy of the owned payload (if it throws, nothing was owned yet).
  switch (kind_) {
    case Kind::String: u_.s = new std::string(*other.u_.s); break;
    case Kind::Array: u_.a = new std::vector<Value>(*other.u_.a); break;
    case Kind::Object: u_.o = new std::vector<Member>(*other.u_.o); break;
    default: break;
  }
}

Value& Value::operator=(const Value& other) {
  if (this != &other) *this = Value(other);
  return *this;
}

Value& Value::operator=(Value&& other) noexcept {
  if (this != &other) {
    // `other` may live inside this value's payload (v = v.as_array()[0]): detach it first.
    Value taken;
    taken.kind_ = other.kind_;
    taken.exact_int_ = other.exact_int_;
    taken.u_ = other.u_;
    other.kind_ = Kind::Null;
    release();
    kind_ = taken.kind_;
    exact_int_ = taken.exact_int_;
    u_ = taken.u_;
    taken.kind_ = Kind::Null;
  }
  return *this;
}

void Value::release() noexcept {
  switch (kind_) {
    case Kind::String: delete u_.s; break;
    case Kind::Array: delete u_.a; break;
    case Kind::Object: delete u_.o; break;
    default: break;
  }
  kind_ = Kind::Null;
}

Value Value::array() {
  Value v;
  v.u_.a = new std::vector<Value>();
  v.kind_ = Kind::Array;
  return v;
}

Value Value::object() {
  Value v;
  v.u_.o = new std::vector<Member>();
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
  return u_.b;
}

double Value::as_number() const {
  expect(Kind::Number);
  return exact_int_ ? static_cast<double>(u_.i) : u_.d;
}

int64_t Value::as_int() const {
  expect(Kind::Number);
  if (exact_int_) return u_.i;
  const double x = u_.d;
  if (!std::isfinite(x) || std::trunc(x) != x) {
    throw ValueError("JSON: expected an integer, got " + dump(*this));
  }
  // Every double in [-2^63, 2^63) converts exactly.
  if (x < -kTwoPow63 || x >= kTwoPow63) {
    throw ValueError("JSON: integer " + dump(*this) + " is out of the int64 range");
  }
  return static_cast<int64_t>(x);
}

const std::string& Value::as_string() const {
  expect(Kind::String);
  return *u_.s;
}

const std::vector<Value>& Value::as_array() const {
  expect(Kind::Array);
  return *u_.a;
}

std::vector<Value>& Value::as_array() {
  expect(Kind::Array);
  return *u_.a;
}

const std::vector<Value::Member>& Value::as_object() const {
  expect(Kind::Object);
  return *u_.o;
}

bool Value::has(const std::string& key) const { return find(key) != nullptr; }

const Value& Value::at(const std::string& key) const {
  const Value* v = find(key);
  if (!v) throw ValueError("JSON: missing key '" + key + "'");
  return *v;
}

const Value* Value::find(const std::string& key) const {
  expect(Kind::Object);
  for (const auto& [k, v] : *u_.o) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value& Value::set(const std::string& key, Value v) {
  expect(Kind::Object);
  for (auto& [k, existing] : *u_.o) {
    if (k == key) {
      existing = std::move(v);
      return existing;
    }
  }
  u_.o->emplace_back(key, std::move(v));
  return u_.o->back().second;
}

void Value::push_back(Value v) {
  expect(Kind::Array);
  u_.a->push_back(std::move(v));
}

size_t Value::size() const {
  if (kind_ == Kind::Array) return u_.a->size();
  if (kind_ == Kind::Object) return u_.o->size();
  throw ValueError(std::string("JSON: expected an array or an object, got ") + kind_name(kind_));
}

// ---------------------------------------------------------------------------------------------
// Parser

namespace detail {

class Parser {
 public:
  Parser(std::string_view text, const Limits& limits) : s_(text), limits_(limits) {}

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

  [[noreturn]] void fail_limit(const std::string& what, size_t limit, const char* unit) const {
    fail(what + " exceeds the limit of " + std::to_string(limit) + " " + unit);
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
    if (++values_ > limits_.max_values) fail_limit("the number of values", limits_.max_values, "values");
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
    if (depth > limits_.max_depth) {
      fail_limit("nesting depth", static_cast<size_t>(limits_.max_depth), "levels");
    }
  }

  // Elements are collected on a stack shared by every array being parsed (a deque: growing it
  // copies nothing) and moved into an exactly sized vector at the ']', so an array costs 16 bytes
  // per element and no growth slack.
  Value parse_array(int depth) {
    check_depth(depth);
    ++pos_;  // '['
    Value out = Value::array();
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return out;
    }
    const size_t mark = elements_.size();
    for (;;) {
      if (elements_.size() - mark == limits_.max_array) {
        fail_limit("the length of an array", limits_.max_array, "elements");
      }
      elements_.push_back(parse_value(depth));
      skip_whitespace();
      if (at_end()) fail("unterminated array");
      if (peek() == ']') {
        ++pos_;
        break;
      }
      if (peek() != ',') fail("expected ',' or ']'");
      ++pos_;
    }
    std::vector<Value>& items = *out.u_.a;
    items.reserve(elements_.size() - mark);
    for (size_t i = mark; i < elements_.size(); ++i) items.push_back(std::move(elements_[i]));
    elements_.resize(mark);
    return out;
  }

  // Members go through a stack like array elements. Duplicate keys are found once the object is
  // complete, by sorting pointers to the keys (small objects: by comparing every pair).
  Value parse_object(int depth) {
    check_depth(depth);
    ++pos_;  // '{'
    Value out = Value::object();
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return out;
    }
    const size_t mark = members_.size();
    for (;;) {
      skip_whitespace();
      if (at_end()) fail("unterminated object");
      if (peek() != '"') fail("expected a string key");
      if (members_.size() - mark == limits_.max_object) {
        fail_limit("the size of an object", limits_.max_object, "members");
      }
      key_offsets_.push_back(pos_);
      std::string key = parse_string();
      skip_whitespace();
      if (at_end() || peek() != ':') fail("expected ':'");
      ++pos_;
      Value v = parse_value(depth);
      members_.emplace_back(std::move(key), std::move(v));
      skip_whitespace();
      if (at_end()) fail("unterminated object");
      if (peek() == '}') {
        ++pos_;
        break;
      }
      if (peek() != ',') fail("expected ',' or '}'");
      ++pos_;
    }
    check_unique_keys(mark);
    std::vector<Value::Member>& items = *out.u_.o;
    items.reserve(members_.size() - mark);
    for (size_t i = mark; i < members_.size(); ++i) items.push_back(std::move(members_[i]));
    members_.resize(mark);
    key_offsets_.resize(mark);
    return out;
  }

  // Fails at the first key (in document order) that repeats an earlier key of the same object.
  void check_unique_keys(size_t mark) const {
    const size_t n = members_.size() - mark;
    size_t dup = n;  // index of the first repeated key
    if (n <= 16) {
      for (size_t j = 1; j < n && dup == n; ++j) {
        for (size_t i = 0; i < j; ++i) {
          if (members_[mark + i].first == members_[mark + j].first) {
            dup = j;
            break;
          }
        }
      }
    } else {
      std::vector<size_t> order(n);
      for (size_t i = 0; i < n; ++i) order[i] = i;
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const std::string& ka = members_[mark + a].first;
        const std::string& kb = members_[mark + b].first;
        return ka != kb ? ka < kb : a < b;
      });
      for (size_t i = 1; i < n; ++i) {
        if (members_[mark + order[i]].first == members_[mark + order[i - 1]].first) {
          dup = std::min(dup, order[i]);
        }
      }
    }
    if (dup != n) {
      fail_at("duplicate key '" + members_[mark + dup].first + "'", key_offsets_[mark + dup]);
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

  std::string_view s_;
  const Limits& limits_;
  size_t pos_ = 0;
  size_t values_ = 0;                   // values parsed so far, for limits_.max_values
  std::deque<Value> elements_;          // elements of the arrays being parsed
  std::deque<Value::Member> members_;   // members of the objects being parsed
  std::deque<size_t> key_offsets_;      // where each of members_' keys starts
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

Value parse(std::string_view text, const Limits& limits) {
  return detail::Parser(text, limits).parse_document();
}

std::string dump(const Value& v) {
  std::string out;
  dump_value(out, v);
  return out;
}

}  // namespace cpucnn::json
