// Tests of the tools' JSON parser: the subset safetensors and nzbench use.
#include <gtest/gtest.h>

#include <string>

#include "util/json_value.h"

using nz::util::json::parse;
using nz::util::json::ParseError;

TEST(JsonValue, ParsesNestedValues) {
  ParseError err;
  auto v = parse(R"( {"a": [1, 2.5, -3e2, true, false, null], "b": {"c": "x\"\u00e9\ud83d\ude00"}} )", &err);
  ASSERT_TRUE(v) << err.message;
  const auto* a = v->find("a");
  ASSERT_TRUE(a && a->is_array());
  ASSERT_EQ(a->items.size(), 6u);
  EXPECT_EQ(a->items[0].as_u64(), 1u);
  EXPECT_FALSE(a->items[1].as_u64());
  EXPECT_DOUBLE_EQ(*a->items[1].as_double(), 2.5);
  EXPECT_DOUBLE_EQ(*a->items[2].as_double(), -300.0);
  EXPECT_TRUE(a->items[5].is_null());
  EXPECT_EQ(v->find("b")->find("c")->text, "x\"\xc3\xa9\xf0\x9f\x98\x80");
}

TEST(JsonValue, KeepsLargeIntegersExact) {
  auto v = parse("[18446744073709551615, 18446744073709551616]", nullptr);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->items[0].as_u64(), UINT64_MAX);
  EXPECT_FALSE(v->items[1].as_u64());  // overflow is refused, not wrapped
}

TEST(JsonValue, RejectsMalformedInput) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "{\"a\":1,}", "01", "1.", "-", "\"abc", "\"\\x\"", "tru",
                          "{} {}", "\"\\ud800\"", "[1 2]", "{1:2}", "\"a\nb\""}) {
    ParseError err;
    EXPECT_FALSE(parse(bad, &err)) << bad;
    EXPECT_FALSE(err.message.empty()) << bad;
  }
}

TEST(JsonValue, LimitsNestingDepth) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  ParseError err;
  EXPECT_FALSE(parse(deep, &err));
  EXPECT_NE(err.message.find("deep"), std::string::npos);
  EXPECT_TRUE(parse(std::string(10, '[') + std::string(10, ']'), nullptr));
}

TEST(JsonValue, QuoteRoundTrips) {
  const std::string s = "a\"b\\c\nd\x01";
  auto v = parse(nz::util::json::quote(s), nullptr);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->text, s);
}
