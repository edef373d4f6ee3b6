// json_value.cpp: the parser behind json_value.h is nlohmann/json's (Debian's
// nlohmann-json3-dev, header-only, so binaries stay self-contained). A SAX
// handler builds our Value instead of nlohmann's DOM because the readers rely
// on three things that DOM drops: members in document order with duplicates
// kept (the safetensors reader refuses duplicate keys), number literals as
// written (64-bit offsets stay exact; an overflowing integer is refused by
// as_u64, not rounded), and a depth limit reported as an error. nlohmann's
// parser is iterative, so deep input cannot exhaust the stack either way.
#include "util/json_value.h"

#include <charconv>
#include <cstdlib>

#include <nlohmann/json.hpp>

namespace nz::util::json {

const Value* Value::find(std::string_view key) const {
  if (kind != Kind::Object) return nullptr;
  for (const auto& [name, value] : members)
    if (name == key) return &value;
  return nullptr;
}

std::optional<uint64_t> Value::as_u64() const {
  if (kind != Kind::Number || text.empty()) return std::nullopt;
  for (char c : text)
    if (c < '0' || c > '9') return std::nullopt;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<double> Value::as_double() const {
  if (kind != Kind::Number) return std::nullopt;
  // strtod needs a terminated string; `text` is one.
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

namespace {

using Json = nlohmann::json;

// Builds a Value tree from nlohmann's SAX events. `stack_` holds the open
// containers; a finished value goes into the innermost one (under the key
// read last, for an object) or becomes the root.
class Builder final : public nlohmann::json_sax<Json> {
 public:
  explicit Builder(int max_depth) : max_depth_(max_depth) {}

  bool null() override { return put(Value{}); }
  bool boolean(bool b) override {
    Value v;
    v.kind = Kind::Bool;
    v.boolean = b;
    return put(std::move(v));
  }
  bool number_integer(number_integer_t n) override { return number(std::to_string(n)); }
  bool number_unsigned(number_unsigned_t n) override { return number(std::to_string(n)); }
  // Also what an integer too large for 64 bits arrives as: keep its literal.
  bool number_float(number_float_t, const string_t& literal) override { return number(literal); }
  bool string(string_t& s) override {
    Value v;
    v.kind = Kind::String;
    v.text = std::move(s);
    return put(std::move(v));
  }
  bool binary(binary_t&) override { return fail(0, "binary values are not JSON"); }
  bool start_object(std::size_t) override { return open(Kind::Object); }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(Kind::Array); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    // nlohmann counts characters read (1-based); we report the 0-based offset.
    return fail(position ? position - 1 : 0, ex.what());
  }

  std::optional<Value> result(ParseError* error) {
    if (failed_ || !root_) {
      if (error) *error = failed_ ? error_ : ParseError{0, "no value"};
      return std::nullopt;
    }
    return std::move(root_);
  }

 private:
  bool fail(size_t offset, std::string message) {
    if (!failed_) error_ = ParseError{offset, std::move(message)};
    failed_ = true;
    return false;  // stops the parse
  }

  bool number(std::string literal) {
    Value v;
    v.kind = Kind::Number;
    v.text = std::move(literal);
    return put(std::move(v));
  }

  bool open(Kind kind) {
    if (static_cast<int>(stack_.size()) >= max_depth_) return fail(0, "nesting too deep");
    Value v;
    v.kind = kind;
    stack_.emplace_back(std::move(key_), std::move(v));
    return true;
  }

  bool close() {
    auto [k, v] = std::move(stack_.back());
    stack_.pop_back();
    key_ = std::move(k);
    return put(std::move(v));
  }

  bool put(Value v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return true;
    }
    Value& parent = stack_.back().second;
    if (parent.kind == Kind::Array) parent.items.push_back(std::move(v));
    else parent.members.emplace_back(std::move(key_), std::move(v));
    return true;
  }

  int max_depth_;
  std::vector<std::pair<std::string, Value>> stack_;  // open containers and the key each goes under
  std::string key_;
  std::optional<Value> root_;
  bool failed_ = false;
  ParseError error_;
};

}  // namespace

std::optional<Value> parse(std::string_view text, ParseError* error, int max_depth) {
  Builder builder(max_depth);
  try {
    Json::sax_parse(text, &builder, nlohmann::detail::input_format_t::json, true, false);
  } catch (const std::exception& e) {  // allocation failure inside the parser
    if (error) *error = ParseError{0, e.what()};
    return std::nullopt;
  }
  return builder.result(error);
}

std::string quote(std::string_view s) {
  // Invalid UTF-8 (a path, say) becomes U+FFFD rather than an exception.
  return Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace nz::util::json
