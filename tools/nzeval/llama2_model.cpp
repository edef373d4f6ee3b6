// llama2_model.cpp: checkpoint loading and the forward pass (see header).
#include "llama2_model.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "util/safetensors.h"

namespace nzeval {

namespace {

// out[i] = sum_j W[i, j] * x[j], W row-major (rows x cols) at `w`.
void matmul(std::vector<double>& out, const float* w, const std::vector<double>& x, int rows, int cols) {
  for (int i = 0; i < rows; ++i) {
    const float* row = w + static_cast<size_t>(i) * static_cast<size_t>(cols);
    double sum = 0.0;
    for (int j = 0; j < cols; ++j) sum += static_cast<double>(row[j]) * x[static_cast<size_t>(j)];
    out[static_cast<size_t>(i)] = sum;
  }
}

void rmsnorm(std::vector<double>& out, const std::vector<double>& x, const float* weight, int n) {
  double ss = 0.0;
  for (int j = 0; j < n; ++j) ss += x[static_cast<size_t>(j)] * x[static_cast<size_t>(j)];
  ss = 1.0 / std::sqrt(ss / n + 1e-5);
  for (int j = 0; j < n; ++j) out[static_cast<size_t>(j)] = weight[j] * (ss * x[static_cast<size_t>(j)]);
}

void softmax(double* x, int n) {
  double max = x[0];
  for (int i = 1; i < n; ++i) max = std::max(max, x[i]);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  for (int i = 0; i < n; ++i) x[i] /= sum;
}

}  // namespace

std::vector<MatrixRef> weight_matrices(const Llama2Config& c, Llama2Weights& w) {
  std::vector<MatrixRef> out;
  const size_t dim = static_cast<size_t>(c.dim), kv = static_cast<size_t>(c.kv_dim()),
               hidden = static_cast<size_t>(c.hidden_dim);
  out.push_back({"token_embedding", &w.token_embedding, 0, w.token_embedding.size()});
  struct Stacked {
    const char* name;
    std::vector<float>* v;
    size_t per_layer;
  } stacked[] = {{"wq", &w.wq, dim * dim},     {"wk", &w.wk, kv * dim},         {"wv", &w.wv, kv * dim},
                 {"wo", &w.wo, dim * dim},     {"w1", &w.w1, hidden * dim},     {"w2", &w.w2, dim * hidden},
                 {"w3", &w.w3, hidden * dim}};
  for (int l = 0; l < c.n_layers; ++l)
    for (const auto& s : stacked)
      out.push_back({fmt::format("layers.{}.{}", l, s.name), s.v, static_cast<size_t>(l) * s.per_layer, s.per_layer});
  if (!w.classifier.empty()) out.push_back({"classifier", &w.classifier, 0, w.classifier.size()});
  return out;
}

bool load_llama2(const std::string& path, Llama2Model& model, std::string& error) {
  std::vector<uint8_t> bytes;
  if (!nz::util::read_file_bytes(path, bytes, error)) return false;
  if (bytes.size() < 28) {
    error = fmt::format("{}: too short for the llama2.c header", path);
    return false;
  }
  int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof h);
  Llama2Config c;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = h[5] < 0 ? -h[5] : h[5];
  c.seq_len = h[6];
  const bool sane = c.dim > 0 && c.hidden_dim > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
                    c.vocab_size > 0 && c.seq_len > 0 && c.dim <= 65536 && c.hidden_dim <= 262144 &&
                    c.n_layers <= 1024 && c.vocab_size <= (1 << 20) && c.seq_len <= (1 << 20) &&
                    c.dim % c.n_heads == 0 && c.n_heads % c.n_kv_heads == 0 && c.head_size() % 2 == 0;
  if (!sane) {
    error = fmt::format("{}: implausible llama2.c header ({} {} {} {} {} {} {})", path, h[0], h[1], h[2], h[3], h[4],
                        h[5], h[6]);
    return false;
  }
  const uint64_t dim = static_cast<uint64_t>(c.dim), L = static_cast<uint64_t>(c.n_layers),
                 kv = static_cast<uint64_t>(c.kv_dim()), hidden = static_cast<uint64_t>(c.hidden_dim),
                 vocab = static_cast<uint64_t>(c.vocab_size), head = static_cast<uint64_t>(c.head_size()),
                 seq = static_cast<uint64_t>(c.seq_len);
  Llama2Weights& w = model.weights;
  struct Part {
    std::vector<float>* v;
    uint64_t count;
  };
  const Part parts[] = {{&w.token_embedding, vocab * dim}, {&w.rms_att, L * dim},         {&w.wq, L * dim * dim},
                        {&w.wk, L * kv * dim},             {&w.wv, L * kv * dim},         {&w.wo, L * dim * dim},
                        {&w.rms_ffn, L * dim},             {&w.w1, L * hidden * dim},     {&w.w2, L * dim * hidden},
                        {&w.w3, L * hidden * dim},         {&w.rms_final, dim},           {nullptr, seq * head}};
  uint64_t need = 0;
  for (const auto& p : parts) need += p.count;
  if (!c.shared_classifier) need += vocab * dim;
  if (bytes.size() != 28 + 4 * need) {
    error = fmt::format("{}: size {} does not match the {} bytes the header implies", path, bytes.size(),
                        28 + 4 * need);
    return false;
  }
  size_t at = 28;
  for (const auto& p : parts) {
    if (p.v) {
      p.v->resize(p.count);
      std::memcpy(p.v->data(), bytes.data() + at, p.count * 4);
    }
    at += p.count * 4;  // the null part is freq_cis_real + freq_cis_imag (seq x head/2 each): skipped
  }
  if (!c.shared_classifier) {
    w.classifier.resize(vocab * dim);
    std::memcpy(w.classifier.data(), bytes.data() + at, vocab * dim * 4);
  }
  model.config = c;
  return true;
}

Llama2Runner::Llama2Runner(const Llama2Config& c, const Llama2Weights& w) : c_(c), w_(w) {
  const size_t dim = static_cast<size_t>(c.dim), hidden = static_cast<size_t>(c.hidden_dim),
               kv = static_cast<size_t>(c.kv_dim());
  x_.resize(dim);
  xb_.resize(dim);
  xb2_.resize(dim);
  hb_.resize(hidden);
  hb2_.resize(hidden);
  q_.resize(dim);
  k_.resize(kv);
  v_.resize(kv);
  att_.resize(static_cast<size_t>(c.n_heads) * static_cast<size_t>(c.seq_len));
  logits_.resize(static_cast<size_t>(c.vocab_size));
  key_cache_.resize(static_cast<size_t>(c.n_layers) * static_cast<size_t>(c.seq_len) * kv);
  value_cache_.resize(key_cache_.size());
}

const std::vector<double>& Llama2Runner::forward(int token, int pos) {
  const int dim = c_.dim, kv_dim = c_.kv_dim(), hidden = c_.hidden_dim, head_size = c_.head_size();
  const int kv_mul = c_.n_heads / c_.n_kv_heads;
  const size_t udim = static_cast<size_t>(dim), ukv = static_cast<size_t>(kv_dim),
               uhidden = static_cast<size_t>(hidden), useq = static_cast<size_t>(c_.seq_len);
  const float* emb = w_.token_embedding.data() + static_cast<size_t>(token) * udim;
  for (int i = 0; i < dim; ++i) x_[static_cast<size_t>(i)] = emb[i];

  for (int l = 0; l < c_.n_layers; ++l) {
    const size_t ul = static_cast<size_t>(l);
    rmsnorm(xb_, x_, w_.rms_att.data() + ul * udim, dim);
    matmul(q_, w_.wq.data() + ul * udim * udim, xb_, dim, dim);
    matmul(k_, w_.wk.data() + ul * ukv * udim, xb_, kv_dim, dim);
    matmul(v_, w_.wv.data() + ul * ukv * udim, xb_, kv_dim, dim);
    // RoPE, as llama2.c: rotate pairs (i, i+1) by pos * 10000^(-(i % head_size) / head_size).
    for (int i = 0; i < dim; i += 2) {
      const int head_dim = i % head_size;
      const double freq = 1.0 / std::pow(10000.0, static_cast<double>(head_dim) / head_size);
      const double val = pos * freq;
      const double fcr = std::cos(val), fci = std::sin(val);
      const int rotations = i < kv_dim ? 2 : 1;  // q always, k only inside kv_dim
      for (int r = 0; r < rotations; ++r) {
        std::vector<double>& vec = r == 0 ? q_ : k_;
        const double v0 = vec[static_cast<size_t>(i)], v1 = vec[static_cast<size_t>(i) + 1];
        vec[static_cast<size_t>(i)] = v0 * fcr - v1 * fci;
        vec[static_cast<size_t>(i) + 1] = v0 * fci + v1 * fcr;
      }
    }
    double* kc = key_cache_.data() + ul * useq * ukv;
    double* vc = value_cache_.data() + ul * useq * ukv;
    std::copy(k_.begin(), k_.end(), kc + static_cast<size_t>(pos) * ukv);
    std::copy(v_.begin(), v_.end(), vc + static_cast<size_t>(pos) * ukv);
    // Grouped-query attention: head h reads kv head h / kv_mul.
    for (int h = 0; h < c_.n_heads; ++h) {
      const double* q = q_.data() + static_cast<size_t>(h * head_size);
      double* att = att_.data() + static_cast<size_t>(h) * useq;
      const size_t kv_off = static_cast<size_t>((h / kv_mul) * head_size);
      for (int t = 0; t <= pos; ++t) {
        const double* k = kc + static_cast<size_t>(t) * ukv + kv_off;
        double score = 0.0;
        for (int i = 0; i < head_size; ++i) score += q[i] * k[i];
        att[t] = score / std::sqrt(static_cast<double>(head_size));
      }
      softmax(att, pos + 1);
      double* out = xb_.data() + static_cast<size_t>(h * head_size);
      for (int i = 0; i < head_size; ++i) out[i] = 0.0;
      for (int t = 0; t <= pos; ++t) {
        const double* v = vc + static_cast<size_t>(t) * ukv + kv_off;
        for (int i = 0; i < head_size; ++i) out[i] += att[t] * v[i];
      }
    }
    matmul(xb2_, w_.wo.data() + ul * udim * udim, xb_, dim, dim);
    for (size_t i = 0; i < udim; ++i) x_[i] += xb2_[i];

    rmsnorm(xb_, x_, w_.rms_ffn.data() + ul * udim, dim);
    matmul(hb_, w_.w1.data() + ul * uhidden * udim, xb_, hidden, dim);
    matmul(hb2_, w_.w3.data() + ul * uhidden * udim, xb_, hidden, dim);
    for (size_t i = 0; i < uhidden; ++i) {
      const double a = hb_[i];
      hb_[i] = a / (1.0 + std::exp(-a)) * hb2_[i];  // SwiGLU: silu(w1 x) * (w3 x)
    }
    matmul(xb_, w_.w2.data() + ul * udim * uhidden, hb_, dim, hidden);
    for (size_t i = 0; i < udim; ++i) x_[i] += xb_[i];
  }
  rmsnorm(x_, x_, w_.rms_final.data(), dim);
  const float* cls = w_.classifier.empty() ? w_.token_embedding.data() : w_.classifier.data();
  matmul(logits_, cls, x_, c_.vocab_size, dim);
  return logits_;
}

}  // namespace nzeval
