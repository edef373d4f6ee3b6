// Tests of the safetensors reader: every shipped file, and malformed inputs
// that must give clean errors (never a crash or an out-of-range read).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "util/safetensors.h"

using nz::util::SafetensorsFile;

namespace {

const std::string kDir = NZTOOLS_WEIGHTS_DIR;

std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> f(8 + header.size() + data_bytes, 0x11);
  const uint64_t n = header.size();
  for (size_t i = 0; i < 8; ++i) f[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(f.data() + 8, header.data(), header.size());
  return f;
}

std::string parse_error(std::vector<uint8_t> bytes) {
  SafetensorsFile f;
  std::string error;
  if (nz::util::parse_safetensors(std::move(bytes), f, error)) return "";
  EXPECT_FALSE(error.empty());
  return error;
}

}  // namespace

TEST(Safetensors, ReadsGptNeoBf16) {
  SafetensorsFile f;
  std::string error;
  ASSERT_TRUE(nz::util::load_safetensors(kDir + "/gpt-neo-125m-attn-bf16.safetensors", f, error)) << error;
  int bf16_matrices = 0;
  for (const auto& t : f.tensors()) {
    if (t.dtype == "BF16") {
      ++bf16_matrices;
      EXPECT_EQ(t.shape, (std::vector<uint64_t>{768, 768}));
      EXPECT_EQ(f.data(t).size(), 768u * 768u * 2u);
    }
  }
  EXPECT_EQ(bf16_matrices, 16);
  bool has_model = false;
  for (const auto& [k, v] : f.metadata()) has_model |= k == "model" && v == "EleutherAI/gpt-neo-125M";
  EXPECT_TRUE(has_model);
}

TEST(Safetensors, ReadsGpt2F32) {
  SafetensorsFile f;
  std::string error;
  ASSERT_TRUE(nz::util::load_safetensors(kDir + "/gpt2-small-attn-f32.safetensors", f, error)) << error;
  bool wpe = false;
  for (const auto& t : f.tensors()) {
    EXPECT_EQ(t.dtype, "F32");
    if (t.shape == std::vector<uint64_t>{1024, 768}) wpe = true;
  }
  EXPECT_TRUE(wpe);
}

TEST(Safetensors, ReadsFileFromAnotherProducer) {
  SafetensorsFile f;
  std::string error;
  ASSERT_TRUE(nz::util::load_safetensors(kDir + "/silero_vad_16k.safetensors", f, error)) << error;
  EXPECT_EQ(f.tensors().size(), 15u);
  uint64_t covered = 0;
  for (const auto& t : f.tensors()) {
    EXPECT_EQ(t.dtype, "F32");
    covered += t.end - t.begin;
  }
  EXPECT_EQ(covered, f.data_section_bytes());
  // Spot check a value: the first tensor's data is finite floats.
  float first;
  std::memcpy(&first, f.data(f.tensors()[0]).data(), 4);
  EXPECT_TRUE(std::isfinite(first));
}

TEST(Safetensors, MissingFileIsAnError) {
  SafetensorsFile f;
  std::string error;
  EXPECT_FALSE(nz::util::load_safetensors(kDir + "/does-not-exist.safetensors", f, error));
  EXPECT_NE(error.find("cannot open"), std::string::npos);
}

TEST(Safetensors, AcceptsAMinimalValidFile) {
  auto bytes = make_file(R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"__metadata__":{"k":"v"}}  )", 16);
  EXPECT_EQ(parse_error(bytes), "");
  EXPECT_EQ(parse_error(make_file(R"({"e":{"dtype":"BF16","shape":[0],"data_offsets":[0,0]}})", 0)), "");
}

TEST(Safetensors, RejectsTruncatedFiles) {
  EXPECT_NE(parse_error({}), "");
  EXPECT_NE(parse_error({1, 0, 0}), "");
  auto bytes = make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 16);
  for (size_t cut = 0; cut < bytes.size(); ++cut)
    EXPECT_NE(parse_error(std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut))), "")
        << "cut at " << cut;
  // A header length far beyond the file, and one beyond any sane limit.
  auto huge = bytes;
  huge[5] = 0xFF;
  EXPECT_NE(parse_error(huge).find("limit"), std::string::npos);
  auto longer = bytes;
  longer[0] = static_cast<uint8_t>(longer[0] + 100);
  EXPECT_NE(parse_error(longer).find("truncated"), std::string::npos);
}

TEST(Safetensors, RejectsBadJson) {
  EXPECT_NE(parse_error(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})", 16)).find("JSON"),
            std::string::npos);
  EXPECT_NE(parse_error(make_file("[1,2,3]", 0)), "");
  EXPECT_NE(parse_error(make_file(std::string(5000, '{'), 0)), "");
}

TEST(Safetensors, RejectsBadEntries) {
  const char* cases[] = {
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}})",    // past the data section
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}})",     // begin > end
      R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})",    // shape disagrees with the span
      R"({"a":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}})",     // unknown dtype
      R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})",   // negative dimension
      R"({"a":{"dtype":"F32","shape":[4.0],"data_offsets":[0,16]}})",  // non-integer dimension
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0]}})",       // one offset
      R"({"a":{"dtype":"F32","shape":[4]}})",                          // no offsets
      R"({"a":{"shape":[4],"data_offsets":[0,16]}})",                  // no dtype
      R"({"a":[1]})",                                                  // entry not an object
      R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,16]}})",  // count overflows
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      R"({"__metadata__":{"k":1}})",                                   // metadata values are strings
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"extra":1}})",
      R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,18446744073709551616]}})",
  };
  for (const char* header : cases) EXPECT_NE(parse_error(make_file(header, 16)), "") << header;
  EXPECT_NE(parse_error(make_file(cases[12], 16)).find("overlap"), std::string::npos);
}

// Random corruption of a real header: every outcome must be a clean success
// or a clean error (run under ASan/UBSan in the fuzz build to catch more).
TEST(Safetensors, SurvivesRandomCorruption) {
  std::vector<uint8_t> original;
  std::string error;
  ASSERT_TRUE(nz::util::read_file_bytes(kDir + "/silero_vad_16k.safetensors", original, error)) << error;
  std::mt19937 rng(7);
  const size_t header_end = 8 + 1300;  // the header is 1208 bytes; also hit the first data bytes
  int accepted = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    auto bytes = original;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) bytes[rng() % header_end] = static_cast<uint8_t>(rng());
    if (trial % 10 == 0) bytes.resize(rng() % bytes.size());
    SafetensorsFile f;
    std::string e;
    if (nz::util::parse_safetensors(std::move(bytes), f, e)) {
      ++accepted;
      for (const auto& t : f.tensors()) {
        auto span = f.data(t);
        volatile uint8_t sink = 0;
        if (!span.empty()) sink = static_cast<uint8_t>(sink + span.back());  // in range by construction
      }
    } else {
      EXPECT_FALSE(e.empty());
    }
  }
  EXPECT_LT(accepted, 2000);  // corruption is noticed at least sometimes
}
