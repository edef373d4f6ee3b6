// perplexity.cpp: windowed teacher forcing (see header).
#include "perplexity.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

namespace nzeval {

namespace {

// Negative log-likelihood of tokens[begin+1 .. end) given their prefixes in the window.
double window_nll(const Llama2Config& c, const Llama2Weights& w, const std::vector<int>& tokens, size_t begin,
                  size_t end) {
  Llama2Runner runner(c, w);
  double nll = 0.0;
  for (size_t i = begin; i + 1 < end; ++i) {
    const auto& logits = runner.forward(tokens[i], static_cast<int>(i - begin));
    double max = logits[0];
    for (double v : logits) max = std::max(max, v);
    double sum = 0.0;
    for (double v : logits) sum += std::exp(v - max);
    nll -= logits[static_cast<size_t>(tokens[i + 1])] - max - std::log(sum);
  }
  return nll;
}

}  // namespace

PerplexityResult perplexity(const Llama2Config& c, const Llama2Weights& w, const std::vector<int>& tokens,
                            unsigned threads) {
  PerplexityResult r;
  if (tokens.size() < 2 || c.seq_len < 2) return r;
  const size_t stride = static_cast<size_t>(c.seq_len) - 1;
  std::vector<std::pair<size_t, size_t>> windows;
  for (size_t b = 0; b + 1 < tokens.size(); b += stride)
    windows.emplace_back(b, std::min(tokens.size(), b + static_cast<size_t>(c.seq_len)));
  std::vector<double> nll(windows.size(), 0.0);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t k; (k = next.fetch_add(1)) < windows.size();)
      nll[k] = window_nll(c, w, tokens, windows[k].first, windows[k].second);
  };
  std::vector<std::thread> pool;
  const unsigned n = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(windows.size())));
  for (unsigned i = 1; i < n; ++i) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (size_t k = 0; k < windows.size(); ++k) {
    r.nll_sum += nll[k];
    r.predicted += windows[k].second - windows[k].first - 1;
  }
  r.perplexity = std::exp(r.nll_sum / static_cast<double>(r.predicted));
  return r;
}

}  // namespace nzeval
