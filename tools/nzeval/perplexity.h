// perplexity.h: teacher-forced perplexity of a llama2.c model on a token stream.
#pragma once

#include <cstdint>
#include <vector>

#include "llama2_model.h"

namespace nzeval {

struct PerplexityResult {
  double perplexity = 0;  // exp(mean negative log-likelihood)
  double nll_sum = 0;     // natural log
  uint64_t predicted = 0; // tokens scored
};

// Windows of seq_len tokens: window k covers tokens [k*(seq_len-1), k*(seq_len-1)+seq_len),
// so every token but the first is predicted exactly once, from at most
// seq_len-1 tokens of context. Windows run in parallel on `threads` threads;
// the sum is taken in window order, so the result does not depend on it.
PerplexityResult perplexity(const Llama2Config& config, const Llama2Weights& weights, const std::vector<int>& tokens,
                            unsigned threads);

}  // namespace nzeval
