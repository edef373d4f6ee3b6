// Tests of nzeval's model, tokenizer and perplexity on the shipped llama2.c model.
#include <gtest/gtest.h>

#include <string>

#include "util/safetensors.h"
#include "nzeval/llama2_model.h"
#include "nzeval/perplexity.h"
#include "nzeval/tokenizer.h"

namespace {

const std::string kDir = NZTOOLS_WEIGHTS_DIR;

struct Loaded {
  nzeval::Llama2Model model;
  nzeval::Tokenizer tok;
  std::vector<int> tokens;
};

const Loaded& loaded() {
  static const Loaded* l = [] {
    auto* x = new Loaded;
    std::string error;
    EXPECT_TRUE(nzeval::load_llama2(kDir + "/stories260K.bin", x->model, error)) << error;
    EXPECT_TRUE(x->tok.load(kDir + "/tok512.bin", x->model.config.vocab_size, error)) << error;
    std::vector<uint8_t> text;
    EXPECT_TRUE(nz::util::read_file_bytes(kDir + "/tinystories_sample.txt", text, error)) << error;
    x->tokens = x->tok.encode(std::string(text.begin(), text.end()), true);
    return x;
  }();
  return *l;
}

}  // namespace

TEST(Nzeval, LoadsStories260K) {
  const auto& c = loaded().model.config;
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_TRUE(c.shared_classifier);
  auto w = loaded().model.weights;
  EXPECT_EQ(nzeval::weight_matrices(c, w).size(), 1u + 7u * 5u);
}

TEST(Nzeval, RejectsTruncatedCheckpoint) {
  std::vector<uint8_t> bytes;
  std::string error;
  ASSERT_TRUE(nz::util::read_file_bytes(kDir + "/stories260K.bin", bytes, error));
  const std::string path = ::testing::TempDir() + "/nzeval_truncated.bin";
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(bytes.data(), 1, bytes.size() - 4, f);
  std::fclose(f);
  nzeval::Llama2Model m;
  EXPECT_FALSE(nzeval::load_llama2(path, m, error));
  EXPECT_NE(error.find("does not match"), std::string::npos);
}

TEST(Nzeval, TokenizerMergesAndFallsBackToBytes) {
  const auto& tok = loaded().tok;
  const auto ids = tok.encode("Once upon a time", true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], nzeval::Tokenizer::kBos);
  std::string decoded;
  for (size_t i = 1; i < ids.size(); ++i) decoded += tok.piece(ids[i]);
  EXPECT_EQ(decoded, " Once upon a time");  // the dummy prefix space, then the text
  EXPECT_LT(ids.size(), 10u);                 // merged, not one token per character
  // A character outside the vocabulary falls back to byte tokens (byte + 3).
  const auto snow = tok.encode("\xe2\x98\x83", false);
  ASSERT_GE(snow.size(), 3u);
  EXPECT_EQ(snow[snow.size() - 3], 0xe2 + 3);
}

TEST(Nzeval, Fp32PerplexityIsPlausible) {
  const auto& l = loaded();
  ASSERT_GT(l.tokens.size(), 1000u);
  const auto r = nzeval::perplexity(l.model.config, l.model.weights, l.tokens, 2);
  EXPECT_EQ(r.predicted, l.tokens.size() - 1);
  EXPECT_GT(r.perplexity, 1.0);
  EXPECT_LT(r.perplexity, 50.0);  // trained model: far below the vocabulary size 512
}

TEST(Nzeval, PerplexityDoesNotDependOnThreadCount) {
  const auto& l = loaded();
  std::vector<int> some(l.tokens.begin(), l.tokens.begin() + 700);  // two windows
  const auto a = nzeval::perplexity(l.model.config, l.model.weights, some, 1);
  const auto b = nzeval::perplexity(l.model.config, l.model.weights, some, 2);
  EXPECT_EQ(a.perplexity, b.perplexity);
}
