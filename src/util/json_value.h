// json_value.h: a small, strict JSON parser (safetensors headers, the tools'
// own JSON output and the runtime trace in tests). Not a general-purpose library: it keeps
// numbers as their literal text so 64-bit offsets survive exactly, limits
// nesting depth so hostile input cannot exhaust the stack, and reports the
// byte position of the first error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nz::util::json {

enum class Kind { Null, Bool, Number, String, Array, Object };

struct Value {
  Kind kind = Kind::Null;
  bool boolean = false;
  std::string text;  // String: the decoded string; Number: the literal as written
  std::vector<Value> items;                            // Array
  std::vector<std::pair<std::string, Value>> members;  // Object, in document order

  bool is_null() const { return kind == Kind::Null; }
  bool is_number() const { return kind == Kind::Number; }
  bool is_string() const { return kind == Kind::String; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_object() const { return kind == Kind::Object; }

  // First member named `key`, or nullptr (also when this is not an object).
  const Value* find(std::string_view key) const;
  // The number as an unsigned 64-bit integer: only for plain non-negative
  // integer literals (no sign, fraction or exponent) that fit.
  std::optional<uint64_t> as_u64() const;
  // The number as a double (any number literal).
  std::optional<double> as_double() const;
};

struct ParseError {
  size_t offset = 0;
  std::string message;
};

// Parse exactly one JSON value surrounded by optional whitespace.
// Returns nullopt and fills `error` on any syntax error or when nesting
// exceeds `max_depth`.
std::optional<Value> parse(std::string_view text, ParseError* error, int max_depth = 64);

// `s` as a JSON string literal, quotes included.
std::string quote(std::string_view s);

}  // namespace nz::util::json
