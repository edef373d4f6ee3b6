// minifw_kernels.cpp: the kernels of minifw, as host functions in a module
// library for the simulated driver (tests/sim/nzsim.h). Each kernel does its
// whole grid in one call, in a fixed loop order, so results are bit-for-bit
// deterministic. Math is fp32 (no contraction: the project builds with
// -ffp-contract=off); bf16 weights are widened on read and rounded to
// nearest even on write.
#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bf16.h"
#include "kernel_abi.h"
#include "nzsim.h"

namespace minifw {
namespace {

// Parameter i of a launch, copied out of the parameter array.
template <typename T>
T arg(const nzsim_launch* launch, unsigned i) {
  T value;
  std::memcpy(&value, launch->params[i], sizeof value);
  return value;
}

// Offsets of a packed parameter buffer: each parameter at its natural
// alignment, as nvcc lays out a kernel's parameters.
template <typename... Ts>
constexpr std::array<nzsim_param, sizeof...(Ts)> layout() {
  std::array<nzsim_param, sizeof...(Ts)> out{};
  const size_t sizes[] = {sizeof(Ts)...};
  const size_t aligns[] = {alignof(Ts)...};
  size_t offset = 0;
  for (size_t i = 0; i < sizeof...(Ts); ++i) {
    offset = (offset + aligns[i] - 1) / aligns[i] * aligns[i];
    out[i] = nzsim_param{offset, sizes[i]};
    offset += sizes[i];
  }
  return out;
}

inline float load_weight(const void* w, int32_t dtype, size_t i) {
  if (dtype == kDtypeBF16) return bf16_to_float(static_cast<const uint16_t*>(w)[i]);
  return static_cast<const float*>(w)[i];
}

// y[r, o] = sum_i x[r, i] * w[o, i] + b[o], for r < rows, o < out.
// y has row stride ldy, so a caller may compute a slice of columns.
void linear_forward(const float* x, const void* w, int32_t dtype, const float* b, float* y,
                    int rows, int out, int in, int ldy) {
  std::vector<float> row(static_cast<size_t>(in));
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in; ++i) row[i] = load_weight(w, dtype, static_cast<size_t>(o) * in + i);
    for (int r = 0; r < rows; ++r) {
      const float* xr = x + static_cast<size_t>(r) * in;
      float acc = 0.0f;
      for (int i = 0; i < in; ++i) acc += xr[i] * row[i];
      if (b != nullptr) acc += b[o];
      y[static_cast<size_t>(r) * ldy + o] = acc;
    }
  }
}

// ---- kernels ----

// (const float* src, uint16_t* dst, uint64_t n)
int cast_f32_to_bf16(const nzsim_launch* l) {
  auto src = arg<const float*>(l, 0);
  auto dst = arg<uint16_t*>(l, 1);
  auto n = arg<uint64_t>(l, 2);
  for (uint64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
  return 0;
}

// (const uint16_t* src, float* dst, uint64_t n)
int cast_bf16_to_f32(const nzsim_launch* l) {
  auto src = arg<const uint16_t*>(l, 0);
  auto dst = arg<float*>(l, 1);
  auto n = arg<uint64_t>(l, 2);
  for (uint64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i]);
  return 0;
}

// (const int32_t* tokens, const uint16_t* table, float* x, int rows, int dim, int vocab)
int embedding_forward(const nzsim_launch* l) {
  auto tokens = arg<const int32_t*>(l, 0);
  auto table = arg<const uint16_t*>(l, 1);
  auto x = arg<float*>(l, 2);
  auto rows = arg<int32_t>(l, 3);
  auto dim = arg<int32_t>(l, 4);
  auto vocab = arg<int32_t>(l, 5);
  for (int r = 0; r < rows; ++r) {
    const int32_t t = tokens[r];
    if (t < 0 || t >= vocab) return 1;  // a device-side assert, as in PyTorch
    for (int d = 0; d < dim; ++d) {
      x[static_cast<size_t>(r) * dim + d] = bf16_to_float(table[static_cast<size_t>(t) * dim + d]);
    }
  }
  return 0;
}

// (const int32_t* tokens, const float* dx, float* dtable, int rows, int dim)
// Rows accumulate in token order, so repeated tokens sum deterministically.
int embedding_backward(const nzsim_launch* l) {
  auto tokens = arg<const int32_t*>(l, 0);
  auto dx = arg<const float*>(l, 1);
  auto dtable = arg<float*>(l, 2);
  auto rows = arg<int32_t>(l, 3);
  auto dim = arg<int32_t>(l, 4);
  for (int r = 0; r < rows; ++r) {
    float* dst = dtable + static_cast<size_t>(tokens[r]) * dim;
    for (int d = 0; d < dim; ++d) dst[d] += dx[static_cast<size_t>(r) * dim + d];
  }
  return 0;
}

// Weights by plain (possibly interior) pointer:
// (const float* x, const void* w, const float* b, float* y, int rows, int out, int in, int ldy, int dtype)
int linear_forward_ptr(const nzsim_launch* l) {
  linear_forward(arg<const float*>(l, 0), arg<const void*>(l, 1), arg<int32_t>(l, 8),
                 arg<const float*>(l, 2), arg<float*>(l, 3), arg<int32_t>(l, 4),
                 arg<int32_t>(l, 5), arg<int32_t>(l, 6), arg<int32_t>(l, 7));
  return 0;
}

// Weights inside a by-value struct: (const float* x, LinearParams p, float* y, int rows, int ldy)
int linear_forward_struct(const nzsim_launch* l) {
  auto p = arg<LinearParams>(l, 1);
  linear_forward(arg<const float*>(l, 0), p.weight, p.dtype, p.bias, arg<float*>(l, 2),
                 arg<int32_t>(l, 3), p.out_features, p.in_features, arg<int32_t>(l, 4));
  return 0;
}

// dx[r, i] (+)= sum_o dy[r, o] * w[o, i]
// (const float* dy, LinearParams p, float* dx, int rows, int ldy, int accumulate)
int linear_backward_input(const nzsim_launch* l) {
  auto dy = arg<const float*>(l, 0);
  auto p = arg<LinearParams>(l, 1);
  auto dx = arg<float*>(l, 2);
  auto rows = arg<int32_t>(l, 3);
  auto ldy = arg<int32_t>(l, 4);
  auto accumulate = arg<int32_t>(l, 5);
  const int in = p.in_features;
  if (!accumulate) std::memset(dx, 0, sizeof(float) * static_cast<size_t>(rows) * in);
  for (int r = 0; r < rows; ++r) {
    float* dxr = dx + static_cast<size_t>(r) * in;
    for (int o = 0; o < p.out_features; ++o) {
      const float g = dy[static_cast<size_t>(r) * ldy + o];
      for (int i = 0; i < in; ++i) {
        dxr[i] += g * load_weight(p.weight, p.dtype, static_cast<size_t>(o) * in + i);
      }
    }
  }
  return 0;
}

// The weight's address inside a TMA descriptor (the simulator's CUtensorMap
// is opaque, as a real one is: only the simulator can read it back).
const void* tma_weight(const nzsim_launch* l) {
  static const auto decode =
      reinterpret_cast<nzsim_tensor_map_address_fn>(dlsym(RTLD_DEFAULT, "nzsim_tensor_map_address"));
  return decode == nullptr ? nullptr : decode(l->params[0]);
}

// Weights through a TMA descriptor passed by value, as cuBLAS's Hopper GEMMs
// see them; the descriptor covers exactly the [out x in] weight slice:
// (TensorMapBytes w, const float* x, const float* b, float* y, int rows, int out, int in, int ldy, int dtype)
int linear_forward_tma(const nzsim_launch* l) {
  const void* w = tma_weight(l);
  if (w == nullptr) return 1;
  linear_forward(arg<const float*>(l, 1), w, arg<int32_t>(l, 8), arg<const float*>(l, 2), arg<float*>(l, 3),
                 arg<int32_t>(l, 4), arg<int32_t>(l, 5), arg<int32_t>(l, 6), arg<int32_t>(l, 7));
  return 0;
}

// dx[r, i] (+)= sum_o dy[r, o] * w[o, i], the weight through a descriptor:
// (TensorMapBytes w, const float* dy, float* dx, int rows, int ldy, int accumulate, int out, int in, int dtype)
int linear_backward_input_tma(const nzsim_launch* l) {
  const void* w = tma_weight(l);
  if (w == nullptr) return 1;
  auto dy = arg<const float*>(l, 1);
  auto dx = arg<float*>(l, 2);
  auto rows = arg<int32_t>(l, 3);
  auto ldy = arg<int32_t>(l, 4);
  auto accumulate = arg<int32_t>(l, 5);
  auto out = arg<int32_t>(l, 6);
  auto in = arg<int32_t>(l, 7);
  auto dtype = arg<int32_t>(l, 8);
  if (!accumulate) std::memset(dx, 0, sizeof(float) * static_cast<size_t>(rows) * in);
  for (int r = 0; r < rows; ++r) {
    float* dxr = dx + static_cast<size_t>(r) * in;
    for (int o = 0; o < out; ++o) {
      const float g = dy[static_cast<size_t>(r) * ldy + o];
      for (int i = 0; i < in; ++i) dxr[i] += g * load_weight(w, dtype, static_cast<size_t>(o) * in + i);
    }
  }
  return 0;
}

// dw[o, i] += sum_r dy[r, o] * x[r, i];  db[o] += sum_r dy[r, o]
// (const float* dy, const float* x, float* dw, float* db, int rows, int out, int in, int ldy)
int linear_backward_weight(const nzsim_launch* l) {
  auto dy = arg<const float*>(l, 0);
  auto x = arg<const float*>(l, 1);
  auto dw = arg<float*>(l, 2);
  auto db = arg<float*>(l, 3);
  auto rows = arg<int32_t>(l, 4);
  auto out = arg<int32_t>(l, 5);
  auto in = arg<int32_t>(l, 6);
  auto ldy = arg<int32_t>(l, 7);
  for (int o = 0; o < out; ++o) {
    float* dwo = dw + static_cast<size_t>(o) * in;
    for (int r = 0; r < rows; ++r) {
      const float g = dy[static_cast<size_t>(r) * ldy + o];
      const float* xr = x + static_cast<size_t>(r) * in;
      for (int i = 0; i < in; ++i) dwo[i] += g * xr[i];
      if (db != nullptr) db[o] += g;
    }
  }
  return 0;
}

// Causal single-head attention over the rows (tokens) of qkv = [q | k | v],
// each `dim` wide (row stride 3*dim). Saves the probabilities for backward.
// (const float* qkv, float* probs, float* out, int rows, int dim)
int attention_forward(const nzsim_launch* l) {
  auto qkv = arg<const float*>(l, 0);
  auto probs = arg<float*>(l, 1);
  auto out = arg<float*>(l, 2);
  auto rows = arg<int32_t>(l, 3);
  auto dim = arg<int32_t>(l, 4);
  const size_t ld = 3 * static_cast<size_t>(dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  for (int t = 0; t < rows; ++t) {
    float* p = probs + static_cast<size_t>(t) * rows;
    float max_score = -INFINITY;
    for (int s = 0; s < rows; ++s) {
      if (s > t) {
        p[s] = 0.0f;
        continue;
      }
      float dot = 0.0f;
      for (int d = 0; d < dim; ++d) dot += qkv[t * ld + d] * qkv[s * ld + dim + d];
      p[s] = dot * scale;
      max_score = std::fmax(max_score, p[s]);
    }
    float sum = 0.0f;
    for (int s = 0; s <= t; ++s) {
      p[s] = std::exp(p[s] - max_score);
      sum += p[s];
    }
    for (int s = 0; s <= t; ++s) p[s] /= sum;
    for (int d = 0; d < dim; ++d) {
      float acc = 0.0f;
      for (int s = 0; s <= t; ++s) acc += p[s] * qkv[s * ld + 2 * dim + d];
      out[static_cast<size_t>(t) * dim + d] = acc;
    }
  }
  return 0;
}

// (const float* qkv, const float* probs, const float* dout, float* dqkv, int rows, int dim)
int attention_backward(const nzsim_launch* l) {
  auto qkv = arg<const float*>(l, 0);
  auto probs = arg<const float*>(l, 1);
  auto dout = arg<const float*>(l, 2);
  auto dqkv = arg<float*>(l, 3);
  auto rows = arg<int32_t>(l, 4);
  auto dim = arg<int32_t>(l, 5);
  const size_t ld = 3 * static_cast<size_t>(dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  std::memset(dqkv, 0, sizeof(float) * ld * rows);
  std::vector<float> dp(static_cast<size_t>(rows));
  for (int t = 0; t < rows; ++t) {
    const float* p = probs + static_cast<size_t>(t) * rows;
    const float* go = dout + static_cast<size_t>(t) * dim;
    // dV[s] += p[t,s] * dout[t];  dp[s] = dout[t] . v[s]
    float weighted = 0.0f;
    for (int s = 0; s <= t; ++s) {
      float dot = 0.0f;
      for (int d = 0; d < dim; ++d) {
        dqkv[s * ld + 2 * dim + d] += p[s] * go[d];
        dot += go[d] * qkv[s * ld + 2 * dim + d];
      }
      dp[s] = dot;
      weighted += p[s] * dot;
    }
    // softmax backward, then the scaled dot products
    for (int s = 0; s <= t; ++s) {
      const float ds = p[s] * (dp[s] - weighted) * scale;
      for (int d = 0; d < dim; ++d) {
        dqkv[t * ld + d] += ds * qkv[s * ld + dim + d];
        dqkv[s * ld + dim + d] += ds * qkv[t * ld + d];
      }
    }
  }
  return 0;
}

constexpr float kRmsEps = 1e-6f;

// y = x / rms(x) per row (a pre-norm without gain, which keeps real-weight
// activations bounded). (const float* x, float* y, float* inv_rms, int rows, int dim)
int rmsnorm_forward(const nzsim_launch* l) {
  auto x = arg<const float*>(l, 0);
  auto y = arg<float*>(l, 1);
  auto inv_rms = arg<float*>(l, 2);
  auto rows = arg<int32_t>(l, 3);
  auto dim = arg<int32_t>(l, 4);
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + static_cast<size_t>(r) * dim;
    float sum = 0.0f;
    for (int d = 0; d < dim; ++d) sum += xr[d] * xr[d];
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(dim) + kRmsEps);
    inv_rms[r] = inv;
    for (int d = 0; d < dim; ++d) y[static_cast<size_t>(r) * dim + d] = xr[d] * inv;
  }
  return 0;
}

// dx (+)= inv * (dy - xhat * mean(dy * xhat)), xhat = x * inv.
// (const float* x, const float* inv_rms, const float* dy, float* dx, int rows, int dim, int accumulate)
int rmsnorm_backward(const nzsim_launch* l) {
  auto x = arg<const float*>(l, 0);
  auto inv_rms = arg<const float*>(l, 1);
  auto dy = arg<const float*>(l, 2);
  auto dx = arg<float*>(l, 3);
  auto rows = arg<int32_t>(l, 4);
  auto dim = arg<int32_t>(l, 5);
  auto accumulate = arg<int32_t>(l, 6);
  for (int r = 0; r < rows; ++r) {
    const size_t base = static_cast<size_t>(r) * dim;
    const float inv = inv_rms[r];
    float dot = 0.0f;
    for (int d = 0; d < dim; ++d) dot += dy[base + d] * (x[base + d] * inv);
    const float mean = dot / static_cast<float>(dim);
    for (int d = 0; d < dim; ++d) {
      const float g = inv * (dy[base + d] - x[base + d] * inv * mean);
      dx[base + d] = accumulate ? dx[base + d] + g : g;
    }
  }
  return 0;
}

// (const float* x, float* y, uint64_t n)
int relu_forward(const nzsim_launch* l) {
  auto x = arg<const float*>(l, 0);
  auto y = arg<float*>(l, 1);
  auto n = arg<uint64_t>(l, 2);
  for (uint64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
  return 0;
}

// (const float* x, const float* dy, float* dx, uint64_t n)
int relu_backward(const nzsim_launch* l) {
  auto x = arg<const float*>(l, 0);
  auto dy = arg<const float*>(l, 1);
  auto dx = arg<float*>(l, 2);
  auto n = arg<uint64_t>(l, 3);
  for (uint64_t i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
  return 0;
}

// out = a + b  (the residual connection)  (const float* a, const float* b, float* out, uint64_t n)
int add(const nzsim_launch* l) {
  auto a = arg<const float*>(l, 0);
  auto b = arg<const float*>(l, 1);
  auto out = arg<float*>(l, 2);
  auto n = arg<uint64_t>(l, 3);
  for (uint64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  return 0;
}

// loss[0] = mean((pred - target)^2), reduced in index order;
// dpred = 2 (pred - target) / n when dpred is not null.
// (const float* pred, const float* target, float* loss, float* dpred, uint64_t n)
int mse_loss(const nzsim_launch* l) {
  auto pred = arg<const float*>(l, 0);
  auto target = arg<const float*>(l, 1);
  auto loss = arg<float*>(l, 2);
  auto dpred = arg<float*>(l, 3);
  auto n = arg<uint64_t>(l, 4);
  double sum = 0.0;
  const float inv_n = 1.0f / static_cast<float>(n);
  for (uint64_t i = 0; i < n; ++i) {
    const float diff = pred[i] - target[i];
    sum += static_cast<double>(diff) * diff;
    if (dpred != nullptr) dpred[i] = 2.0f * diff * inv_n;
  }
  loss[0] = static_cast<float>(sum / static_cast<double>(n));
  return 0;
}

// SGD with momentum (PyTorch's formulation). Writes the fp32 weight `param`
// and, when `bf16_out` is set, its bf16 copy (param is then the master).
// (float* param, const float* grad, float* momentum_buf, uint16_t* bf16_out, uint64_t n, SgdHyper h)
int sgd_step(const nzsim_launch* l) {
  auto param = arg<float*>(l, 0);
  auto grad = arg<const float*>(l, 1);
  auto buf = arg<float*>(l, 2);
  auto bf16_out = arg<uint16_t*>(l, 3);
  auto n = arg<uint64_t>(l, 4);
  auto h = arg<SgdHyper>(l, 5);
  for (uint64_t i = 0; i < n; ++i) {
    float g = grad[i] + h.weight_decay * param[i];
    if (h.momentum != 0.0f) {
      buf[i] = h.first_step ? g : h.momentum * buf[i] + g;
      g = buf[i];
    }
    param[i] -= h.lr * g;
    if (bf16_out != nullptr) bf16_out[i] = float_to_bf16(param[i]);
  }
  return 0;
}

// Adam (PyTorch's formulation, no weight decay).
// (float* param, const float* grad, float* m, float* v, uint16_t* bf16_out, uint64_t n, AdamHyper h)
int adam_step(const nzsim_launch* l) {
  auto param = arg<float*>(l, 0);
  auto grad = arg<const float*>(l, 1);
  auto m = arg<float*>(l, 2);
  auto v = arg<float*>(l, 3);
  auto bf16_out = arg<uint16_t*>(l, 4);
  auto n = arg<uint64_t>(l, 5);
  auto h = arg<AdamHyper>(l, 6);
  const float step_size = h.lr / h.bias_correction1;
  const float sqrt_bc2 = std::sqrt(h.bias_correction2);
  for (uint64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    m[i] = h.beta1 * m[i] + (1.0f - h.beta1) * g;
    v[i] = h.beta2 * v[i] + (1.0f - h.beta2) * g * g;
    const float denom = std::sqrt(v[i]) / sqrt_bc2 + h.eps;
    param[i] -= step_size * (m[i] / denom);
    if (bf16_out != nullptr) bf16_out[i] = float_to_bf16(param[i]);
  }
  return 0;
}

// LOMO's fused update: w -= lr * grad, in place, as soon as the layer's
// gradient is complete (no optimizer state, no kept gradient). bf16 weights
// are widened, updated in fp32 and rounded to nearest even.
// (void* w, const float* grad, uint64_t n, float lr, int dtype)
int fused_sgd(const nzsim_launch* l) {
  auto w = arg<void*>(l, 0);
  auto grad = arg<const float*>(l, 1);
  auto n = arg<uint64_t>(l, 2);
  auto lr = arg<float>(l, 3);
  auto dtype = arg<int32_t>(l, 4);
  for (uint64_t i = 0; i < n; ++i) {
    if (dtype == kDtypeBF16) {
      auto* wb = static_cast<uint16_t*>(w);
      wb[i] = float_to_bf16(bf16_to_float(wb[i]) - lr * grad[i]);
    } else {
      auto* wf = static_cast<float*>(w);
      wf[i] -= lr * grad[i];
    }
  }
  return 0;
}

// The embedding's fused update, without a gradient table: each distinct
// token's row gradient is summed over its rows in row order (as
// embedding_backward accumulates), then applied once to the bf16 row.
// (const int32_t* tokens, const float* dx, uint16_t* table, int rows, int dim, float lr)
int embedding_fused_sgd(const nzsim_launch* l) {
  auto tokens = arg<const int32_t*>(l, 0);
  auto dx = arg<const float*>(l, 1);
  auto table = arg<uint16_t*>(l, 2);
  auto rows = arg<int32_t>(l, 3);
  auto dim = arg<int32_t>(l, 4);
  auto lr = arg<float>(l, 5);
  std::vector<float> sum(static_cast<size_t>(dim));
  for (int r = 0; r < rows; ++r) {
    bool seen = false;
    for (int e = 0; e < r && !seen; ++e) seen = tokens[e] == tokens[r];
    if (seen) continue;
    std::fill(sum.begin(), sum.end(), 0.0f);
    for (int s = r; s < rows; ++s) {
      if (tokens[s] != tokens[r]) continue;
      for (int d = 0; d < dim; ++d) sum[d] += dx[static_cast<size_t>(s) * dim + d];
    }
    uint16_t* row = table + static_cast<size_t>(tokens[r]) * dim;
    for (int d = 0; d < dim; ++d) row[d] = float_to_bf16(bf16_to_float(row[d]) - lr * sum[d]);
  }
  return 0;
}

using P = const void*;
using I = int32_t;
using U = uint64_t;

constexpr auto kCastLayout = layout<P, P, U>();
constexpr auto kEmbedFwdLayout = layout<P, P, P, I, I, I>();
constexpr auto kEmbedBwdLayout = layout<P, P, P, I, I>();
constexpr auto kLinearPtrLayout = layout<P, P, P, P, I, I, I, I, I>();
constexpr auto kLinearStructLayout = layout<P, LinearParams, P, I, I>();
constexpr auto kLinearBwdInLayout = layout<P, LinearParams, P, I, I, I>();
constexpr auto kLinearBwdWLayout = layout<P, P, P, P, I, I, I, I>();
constexpr auto kLinearTmaLayout = layout<TensorMapBytes, P, P, P, I, I, I, I, I>();
constexpr auto kLinearBwdInTmaLayout = layout<TensorMapBytes, P, P, I, I, I, I, I, I>();
constexpr auto kAttnFwdLayout = layout<P, P, P, I, I>();
constexpr auto kAttnBwdLayout = layout<P, P, P, P, I, I>();
constexpr auto kRmsFwdLayout = layout<P, P, P, I, I>();
constexpr auto kRmsBwdLayout = layout<P, P, P, P, I, I, I>();
constexpr auto kReluFwdLayout = layout<P, P, U>();
constexpr auto kReluBwdLayout = layout<P, P, P, U>();
constexpr auto kAddLayout = layout<P, P, P, U>();
constexpr auto kMseLayout = layout<P, P, P, P, U>();
constexpr auto kSgdLayout = layout<P, P, P, P, U, SgdHyper>();
constexpr auto kAdamLayout = layout<P, P, P, P, P, U, AdamHyper>();
constexpr auto kFusedSgdLayout = layout<P, P, U, float, I>();
constexpr auto kEmbedFusedSgdLayout = layout<P, P, P, I, I, float>();

#define MINIFW_KERNEL(fn, lay) nzsim_kernel{#fn, static_cast<unsigned>(lay.size()), lay.data(), fn}

const nzsim_kernel kKernels[] = {
    MINIFW_KERNEL(cast_f32_to_bf16, kCastLayout),
    MINIFW_KERNEL(cast_bf16_to_f32, kCastLayout),
    MINIFW_KERNEL(embedding_forward, kEmbedFwdLayout),
    MINIFW_KERNEL(embedding_backward, kEmbedBwdLayout),
    MINIFW_KERNEL(linear_forward_ptr, kLinearPtrLayout),
    MINIFW_KERNEL(linear_forward_struct, kLinearStructLayout),
    MINIFW_KERNEL(linear_backward_input, kLinearBwdInLayout),
    MINIFW_KERNEL(linear_backward_weight, kLinearBwdWLayout),
    MINIFW_KERNEL(attention_forward, kAttnFwdLayout),
    MINIFW_KERNEL(attention_backward, kAttnBwdLayout),
    MINIFW_KERNEL(rmsnorm_forward, kRmsFwdLayout),
    MINIFW_KERNEL(rmsnorm_backward, kRmsBwdLayout),
    MINIFW_KERNEL(relu_forward, kReluFwdLayout),
    MINIFW_KERNEL(relu_backward, kReluBwdLayout),
    MINIFW_KERNEL(add, kAddLayout),
    MINIFW_KERNEL(mse_loss, kMseLayout),
    MINIFW_KERNEL(sgd_step, kSgdLayout),
    MINIFW_KERNEL(adam_step, kAdamLayout),
    MINIFW_KERNEL(fused_sgd, kFusedSgdLayout),
    MINIFW_KERNEL(embedding_fused_sgd, kEmbedFusedSgdLayout),
    MINIFW_KERNEL(linear_forward_tma, kLinearTmaLayout),
    MINIFW_KERNEL(linear_backward_input_tma, kLinearBwdInTmaLayout),
};

}  // namespace
}  // namespace minifw

extern "C" __attribute__((visibility("default"))) const nzsim_kernel* NZSIM_MODULE_ENTRY(
    unsigned* count, unsigned* abi_version) {
  *count = sizeof(minifw::kKernels) / sizeof(minifw::kKernels[0]);
  *abi_version = NZSIM_ABI_VERSION;
  return minifw::kKernels;
}
