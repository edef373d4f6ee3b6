// lora.cpp: see lora.h. Every product reuses minifw's linear kernels with
// fp32 weights; the adapter's output is added to the base layer's with the
// residual `add` kernel (in place).
#include "lora.h"

#include <fmt/core.h>

namespace minifw {
namespace {

const float* cf(CUdeviceptr p) { return reinterpret_cast<const float*>(p); }
float* mf(CUdeviceptr p) { return reinterpret_cast<float*>(p); }

LinearParams fp32_linear(const Parameter& w, int out, int in) {
  LinearParams p{};
  p.weight = reinterpret_cast<const void*>(w.data.get());
  p.out_features = out;
  p.in_features = in;
  p.dtype = kDtypeF32;
  return p;
}

}  // namespace

LoraAdapters::LoraAdapters(const ModelConfig& config, int rank, CachingAllocator& allocator,
                           const KernelLauncher& kernels, CUstream stream)
    : config_(config), rank_(rank), allocator_(allocator), kernels_(kernels) {
  static constexpr const char* kNames[] = {"qkv", "proj", "up", "down"};
  params_.reserve(static_cast<size_t>(config.blocks) * 8);
  uint64_t state = 0x243f6a8885a308d3ull;
  std::vector<float> host;
  for (int b = 0; b < config.blocks; ++b) {
    for (int l = 0; l < 4; ++l) {
      const Shape sh = shape(static_cast<LoraLayer>(l));
      for (int which = 0; which < 2; ++which) {  // A [rank x in], then B [out x rank]
        Parameter p;
        p.name = fmt::format("blocks.{}.{}.lora_{}", b, kNames[l], which == 0 ? 'A' : 'B');
        p.dtype = kDtypeF32;
        p.shape = which == 0 ? std::vector<int64_t>{rank, sh.in} : std::vector<int64_t>{sh.out, rank};
        p.elements = static_cast<size_t>(rank) * static_cast<size_t>(which == 0 ? sh.in : sh.out);
        p.data = DeviceBuffer(allocator, p.bytes(), "lora adapter");
        if (which == 0) {
          host.resize(p.elements);
          for (float& v : host) {  // uniform in [-0.02, 0.02)
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            v = (static_cast<float>(static_cast<uint32_t>(state >> 40)) / 16777216.0f - 0.5f) * 0.04f;
          }
          MINIFW_CHECK(cuMemcpyHtoD(p.data.get(), host.data(), p.bytes()));
        } else {
          MINIFW_CHECK(cuMemsetD32Async(p.data.get(), 0, p.elements, stream));
        }
        params_.push_back(std::move(p));
      }
    }
  }
  low_rank_.resize(static_cast<size_t>(config.blocks) * 4);
}

LoraAdapters::Shape LoraAdapters::shape(LoraLayer layer) const {
  const int d = config_.dim, h = config_.hidden;
  switch (layer) {
    case LoraLayer::qkv: return {3 * d, d};
    case LoraLayer::proj: return {d, d};
    case LoraLayer::up: return {h, d};
    case LoraLayer::down: return {d, h};
  }
  return {0, 0};
}

void LoraAdapters::forward(CUstream s, int block, LoraLayer layer, const DeviceBuffer& x, const DeviceBuffer& y) {
  const Shape sh = shape(layer);
  const size_t i = index(block, layer);
  const Parameter& a = params_[2 * i];
  const Parameter& b = params_[2 * i + 1];
  const int32_t rows = config_.batch, r = rank_;
  DeviceBuffer& t = low_rank_[i];
  t = DeviceBuffer(allocator_, static_cast<size_t>(rows) * r * sizeof(float), "lora A x");
  DeviceBuffer u(allocator_, static_cast<size_t>(rows) * sh.out * sizeof(float), "lora B A x");
  kernels_.launch(Kernel::linear_forward_ptr, s, LaunchVia::launch_kernel, x.as<const float>(),
                  reinterpret_cast<const void*>(a.data.get()), static_cast<const float*>(nullptr), t.as<float>(),
                  rows, r, static_cast<int32_t>(sh.in), r, static_cast<int32_t>(kDtypeF32));
  kernels_.launch(Kernel::linear_forward_ptr, s, LaunchVia::launch_kernel, t.as<const float>(),
                  reinterpret_cast<const void*>(b.data.get()), static_cast<const float*>(nullptr), u.as<float>(),
                  rows, static_cast<int32_t>(sh.out), r, static_cast<int32_t>(sh.out),
                  static_cast<int32_t>(kDtypeF32));
  kernels_.launch(Kernel::add, s, LaunchVia::launch_kernel, y.as<const float>(), u.as<const float>(), y.as<float>(),
                  static_cast<uint64_t>(rows) * static_cast<uint64_t>(sh.out));
}

void LoraAdapters::prepare_backward(CUstream s) {
  if (grads_.grads.empty()) {
    for (const auto& p : params_) grads_.grads.emplace_back(allocator_, p.bytes(), "lora gradient");
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    MINIFW_CHECK(cuMemsetD32Async(grads_.grads[i].get(), 0, params_[i].elements, s));
  }
}

void LoraAdapters::backward(CUstream s, int block, LoraLayer layer, const DeviceBuffer& x, CUdeviceptr dy,
                            const DeviceBuffer& dx) {
  const Shape sh = shape(layer);
  const size_t i = index(block, layer);
  const int32_t rows = config_.batch, r = rank_;
  const DeviceBuffer& t = low_rank_[i];
  DeviceBuffer dt(allocator_, static_cast<size_t>(rows) * r * sizeof(float), "lora grad A x");
  // dB += dy^T t;  dt = B^T dy;  dA += dt^T x;  dx += A^T dt
  kernels_.launch(Kernel::linear_backward_weight, s, LaunchVia::launch_kernel_ex, cf(dy), t.as<const float>(),
                  grads_.grads[2 * i + 1].as<float>(), static_cast<float*>(nullptr), rows,
                  static_cast<int32_t>(sh.out), r, static_cast<int32_t>(sh.out));
  kernels_.launch(Kernel::linear_backward_input, s, LaunchVia::launch_kernel, cf(dy),
                  fp32_linear(params_[2 * i + 1], sh.out, r), dt.as<float>(), rows, static_cast<int32_t>(sh.out),
                  int32_t{0});
  kernels_.launch(Kernel::linear_backward_weight, s, LaunchVia::launch_kernel_ex, dt.as<const float>(),
                  x.as<const float>(), grads_.grads[2 * i].as<float>(), static_cast<float*>(nullptr), rows, r,
                  static_cast<int32_t>(sh.in), r);
  kernels_.launch(Kernel::linear_backward_input, s, LaunchVia::launch_kernel, dt.as<const float>(),
                  fp32_linear(params_[2 * i], r, sh.in), mf(dx.get()), rows, r, int32_t{1});
}

}  // namespace minifw
