// nzeval: perplexity of the llama2.c stories260K model with its weights in
// fp32, bf16, bf16 + neuzip lossless, and bf16 + neuzip lossy (K x block).
// Usage: docs/NZEVAL.md. Exit codes: 0 ok; 1 a codec failed or lossless did
// not reproduce bf16 exactly; 2 bad usage or unreadable input.
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "util/json_value.h"
#include "util/safetensors.h"
#include "compressed_weights.h"
#include "perplexity.h"
#include "tokenizer.h"

#ifndef NZEVAL_DEFAULT_WEIGHTS
#define NZEVAL_DEFAULT_WEIGHTS "../shared/weights"
#endif

namespace {

using namespace nzeval;

struct Row {
  Method method;
  double perplexity;
  uint64_t bytes;
};

std::vector<Method> methods() {
  std::vector<Method> m = {{"fp32", Variant::Fp32, 0, 0},
                           {"bf16", Variant::Bf16, 0, 0},
                           {"bf16 + neuzip lossless", Variant::Bf16Lossless, 0, 0}};
  for (uint32_t k : {0u, 1u, 3u})
    for (uint32_t b : {0u, 64u, 512u})
      m.push_back({fmt::format("neuzip lossy K={} block={}", k, b ? fmt::format("{}", b) : "none"),
                   Variant::Bf16Lossy, k, b});
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = NZEVAL_DEFAULT_WEIGHTS;
  std::string model_path, tok_path;
  std::vector<std::string> texts;
  bool json = false, quick = false;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--json") json = true;
    else if (a == "--quick") quick = true;
    else if ((a == "--weights-dir" || a == "--model" || a == "--tokenizer" || a == "--text" || a == "--threads") &&
             (v = value()) != nullptr) {
      if (a == "--weights-dir") dir = v;
      else if (a == "--model") model_path = v;
      else if (a == "--tokenizer") tok_path = v;
      else if (a == "--text") texts.emplace_back(v);
      else threads = static_cast<unsigned>(std::max(1, std::atoi(v)));
    } else {
      fmt::print(stderr,
                 "usage: nzeval [--weights-dir DIR] [--model F] [--tokenizer F] [--text F]... [--threads T] "
                 "[--quick] [--json]\n");
      return 2;
    }
  }
  if (model_path.empty()) model_path = dir + "/stories260K.bin";
  if (tok_path.empty()) tok_path = dir + "/tok512.bin";
  if (texts.empty()) texts.push_back(dir + "/tinystories_sample.txt");

  std::string error;
  Llama2Model model;
  Tokenizer tok;
  if (!load_llama2(model_path, model, error) || !tok.load(tok_path, model.config.vocab_size, error)) {
    fmt::print(stderr, "nzeval: {}\n", error);
    return 2;
  }
  std::vector<std::vector<int>> token_streams;
  for (const auto& path : texts) {
    std::vector<uint8_t> bytes;
    if (!nz::util::read_file_bytes(path, bytes, error)) {
      fmt::print(stderr, "nzeval: {}\n", error);
      return 2;
    }
    std::string text(bytes.begin(), bytes.end());
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    token_streams.push_back(tok.encode(text, true));
  }

  auto all = methods();
  if (quick) all.resize(3);
  // rows[text][method]
  std::vector<std::vector<Row>> rows(texts.size());
  for (const auto& m : all) {
    PreparedWeights w;
    if (!prepare_weights(model, m, w, error)) {
      fmt::print(stderr, "nzeval: {}\n", error);
      return 1;
    }
    for (size_t t = 0; t < texts.size(); ++t) {
      const auto r = perplexity(model.config, w.weights, token_streams[t], threads);
      rows[t].push_back({m, r.perplexity, w.matrix_bytes});
    }
  }

  int rc = 0;
  std::string json_out = "{\"tool\": \"nzeval\", \"model\": " + nz::util::json::quote(model_path) +
                         ", \"compressed\": \"2-D matrices (embedding/classifier, wq, wk, wv, wo, w1, w2, w3), one "
                         "buffer per layer; norms stay fp32\", \"texts\": [";
  for (size_t t = 0; t < texts.size(); ++t) {
    const double fp32_bytes = static_cast<double>(rows[t][0].bytes), bf16_bytes = static_cast<double>(rows[t][1].bytes);
    const bool exact = rows[t][2].perplexity == rows[t][1].perplexity;
    if (!exact) rc = 1;
    if (!json) {
      fmt::print("\n### {} ({} tokens, {} scored, windows of {})\n\n", texts[t], token_streams[t].size(),
                 token_streams[t].size() - 1, model.config.seq_len);
      fmt::print("| method | perplexity | weight bytes | ratio vs fp32 | ratio vs bf16 |\n|---|---|---|---|---|\n");
      for (const auto& r : rows[t])
        fmt::print("| {} | {:.4f} | {} | {:.4f} | {:.4f} |\n", r.method.name, r.perplexity, r.bytes,
                   static_cast<double>(r.bytes) / fp32_bytes, static_cast<double>(r.bytes) / bf16_bytes);
      fmt::print("\nweight bytes: the {} elements of the 2-D matrices (norm vectors, {} fp32 values, not counted "
                 "and never compressed)\n",
                 static_cast<uint64_t>(fp32_bytes) / 4,
                 model.weights.rms_att.size() + model.weights.rms_ffn.size() + model.weights.rms_final.size());
      fmt::print("bf16 + neuzip lossless == bf16: {} (perplexity {:.17g} vs {:.17g})\n", exact ? "EXACT" : "MISMATCH",
                 rows[t][2].perplexity, rows[t][1].perplexity);
    }
    json_out += fmt::format("{}{{\"text\": {}, \"tokens\": {}, \"lossless_equals_bf16\": {}, \"rows\": [", t ? ", " : "",
                            nz::util::json::quote(texts[t]), token_streams[t].size(), exact ? "true" : "false");
    for (size_t k = 0; k < rows[t].size(); ++k) {
      const auto& r = rows[t][k];
      json_out += fmt::format(
          "{}{{\"method\": {}, \"kept_bits\": {}, \"block\": {}, \"perplexity\": {}, \"weight_bytes\": {}, "
          "\"ratio_vs_fp32\": {}, \"ratio_vs_bf16\": {}}}",
          k ? ", " : "", nz::util::json::quote(r.method.name),
          r.method.variant == Variant::Bf16Lossy ? fmt::format("{}", r.method.kept_bits) : "null",
          r.method.variant == Variant::Bf16Lossy ? fmt::format("{}", r.method.block) : "null", r.perplexity, r.bytes,
          static_cast<double>(r.bytes) / fp32_bytes, static_cast<double>(r.bytes) / bf16_bytes);
    }
    json_out += "]}";
  }
  json_out += "]}\n";
  if (json) std::fwrite(json_out.data(), 1, json_out.size(), stdout);
  if (rc) fmt::print(stderr, "nzeval: bf16 + neuzip lossless did NOT reproduce the bf16 perplexity exactly\n");
  return rc;
}
