// llama2_model.h: a llama2.c ("version 0" checkpoint) model and its forward pass.
//
// Checkpoint: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size (negative: separate classifier follows), seq_len), then fp32
// tensors in llama2.c's order. The forward pass is llama2.c's: RMSNorm, RoPE,
// grouped-query attention, SwiGLU FFN, tied classifier, but accumulates in
// double so that results are deterministic and insensitive to summation order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nzeval {

struct Llama2Config {
  int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;
  int head_size() const { return dim / n_heads; }
  int kv_dim() const { return dim / n_heads * n_kv_heads; }
};

// All weights in fp32, stacked over layers as in the checkpoint.
struct Llama2Weights {
  std::vector<float> token_embedding;  // vocab x dim
  std::vector<float> rms_att;          // layers x dim
  std::vector<float> wq;               // layers x dim x dim            (out x in)
  std::vector<float> wk;               // layers x kv_dim x dim
  std::vector<float> wv;               // layers x kv_dim x dim
  std::vector<float> wo;               // layers x dim x dim
  std::vector<float> rms_ffn;          // layers x dim
  std::vector<float> w1;               // layers x hidden x dim
  std::vector<float> w2;               // layers x dim x hidden
  std::vector<float> w3;               // layers x hidden x dim
  std::vector<float> rms_final;        // dim
  std::vector<float> classifier;       // vocab x dim; empty when tied to the embedding
};

// One 2-D weight matrix of one layer, as a framework would hold it.
struct MatrixRef {
  std::string name;  // e.g. "layers.2.wq"
  std::vector<float>* storage;
  size_t offset;  // elements
  size_t count;   // elements
};

// The 2-D matrices (embedding, wq, wk, wv, wo, w1, w2, w3, and the classifier
// when untied), one entry per layer; the norm vectors are not included.
std::vector<MatrixRef> weight_matrices(const Llama2Config& c, Llama2Weights& w);

struct Llama2Model {
  Llama2Config config;
  Llama2Weights weights;
};

// Load and validate a checkpoint (exact file size, positive dimensions,
// heads dividing dim, kv heads dividing heads). False with `error` otherwise.
bool load_llama2(const std::string& path, Llama2Model& model, std::string& error);

// Runs one sequence position at a time, keeping the key/value cache.
class Llama2Runner {
 public:
  Llama2Runner(const Llama2Config& config, const Llama2Weights& weights);
  // Logits for `token` at position `pos` (0-based, < seq_len; positions must
  // be fed in order starting at 0). The returned span is valid until the next call.
  const std::vector<double>& forward(int token, int pos);

 private:
  const Llama2Config& c_;
  const Llama2Weights& w_;
  std::vector<double> x_, xb_, xb2_, hb_, hb2_, q_, k_, v_, att_, logits_;
  std::vector<double> key_cache_, value_cache_;  // layers x seq_len x kv_dim
};

}  // namespace nzeval
