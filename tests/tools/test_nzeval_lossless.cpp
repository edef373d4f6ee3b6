// nzeval with the codec: bf16 + neuzip lossless must give exactly the bf16 perplexity.
#include <gtest/gtest.h>

#include <string>

#include "util/safetensors.h"
#include "nzeval/compressed_weights.h"
#include "nzeval/perplexity.h"
#include "nzeval/tokenizer.h"

TEST(NzevalLossless, EqualsBf16Exactly) {
  const std::string dir = NZTOOLS_WEIGHTS_DIR;
  nzeval::Llama2Model model;
  nzeval::Tokenizer tok;
  std::string error;
  ASSERT_TRUE(nzeval::load_llama2(dir + "/stories260K.bin", model, error)) << error;
  ASSERT_TRUE(tok.load(dir + "/tok512.bin", model.config.vocab_size, error)) << error;
  std::vector<uint8_t> text;
  ASSERT_TRUE(nz::util::read_file_bytes(dir + "/tinystories_sample.txt", text, error)) << error;
  const auto tokens = tok.encode(std::string(text.begin(), text.end()), true);

  nzeval::PreparedWeights bf16, lossless, lossy;
  ASSERT_TRUE(nzeval::prepare_weights(model, {"bf16", nzeval::Variant::Bf16, 0, 0}, bf16, error)) << error;
  ASSERT_TRUE(nzeval::prepare_weights(model, {"lossless", nzeval::Variant::Bf16Lossless, 0, 0}, lossless, error))
      << error;
  EXPECT_EQ(lossless.weights.wq, bf16.weights.wq);
  EXPECT_EQ(lossless.weights.token_embedding, bf16.weights.token_embedding);
  EXPECT_LT(lossless.matrix_bytes, bf16.matrix_bytes * 3 / 4);  // compression happened
  const auto p_bf16 = nzeval::perplexity(model.config, bf16.weights, tokens, 2);
  const auto p_lossless = nzeval::perplexity(model.config, lossless.weights, tokens, 2);
  EXPECT_EQ(p_lossless.perplexity, p_bf16.perplexity);  // exactly, not approximately

  // Lossy K=0 changes the weights and (for this model) the perplexity.
  ASSERT_TRUE(nzeval::prepare_weights(model, {"k0", nzeval::Variant::Bf16Lossy, 0, 0}, lossy, error)) << error;
  EXPECT_NE(lossy.weights.wq, bf16.weights.wq);
  EXPECT_LT(lossy.matrix_bytes, lossless.matrix_bytes);
}
