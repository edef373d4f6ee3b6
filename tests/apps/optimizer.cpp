// optimizer.cpp: see optimizer.h. Hyper-parameters are fixed so runs are
// comparable; bias corrections are computed on the host in double.
#include "optimizer.h"

#include <cmath>

namespace minifw {
namespace {

constexpr float kSgdLr = 0.05f;
constexpr float kSgdMomentum = 0.9f;
constexpr float kAdamLr = 1e-3f;
constexpr float kAdamBeta1 = 0.9f;
constexpr float kAdamBeta2 = 0.999f;
constexpr float kAdamEps = 1e-8f;

}  // namespace

bool parse_optimizer(const std::string& text, OptimizerKind& out) {
  if (text == "sgd") {
    out = OptimizerKind::sgd;
    return true;
  }
  if (text == "adam") {
    out = OptimizerKind::adam;
    return true;
  }
  if (text == "lomo") {
    out = OptimizerKind::lomo;
    return true;
  }
  return false;
}

Optimizer::Optimizer(OptimizerKind kind, std::vector<Parameter>& params, CachingAllocator& allocator,
                     const KernelLauncher& kernels)
    : kind_(kind), params_(params), allocator_(allocator), kernels_(kernels) {}

void Optimizer::create_masters(CUstream stream) {
  for (const auto& p : params_) {
    if (p.dtype != kDtypeBF16) {
      masters_.emplace_back();
      continue;
    }
    masters_.emplace_back(allocator_, p.elements * sizeof(float), "fp32 master weight");
    kernels_.launch(Kernel::cast_bf16_to_f32, stream, LaunchVia::launch_kernel, p.data.as<const uint16_t>(),
                    masters_.back().as<float>(), static_cast<uint64_t>(p.elements));
  }
}

void Optimizer::step(const Gradients& grads, CUstream stream) {
  auto& params = params_;
  if (state1_.empty()) {
    for (const auto& p : params) {
      const size_t bytes = p.elements * sizeof(float);
      state1_.emplace_back(allocator_, bytes, kind_ == OptimizerKind::adam ? "adam exp_avg" : "sgd momentum");
      if (kind_ == OptimizerKind::adam) {
        state2_.emplace_back(allocator_, bytes, "adam exp_avg_sq");
        MINIFW_CHECK(cuMemsetD32Async(state1_.back().get(), 0, p.elements, stream));
        MINIFW_CHECK(cuMemsetD32Async(state2_.back().get(), 0, p.elements, stream));
      }
    }
  }
  ++steps_done_;
  for (size_t i = 0; i < params.size(); ++i) {
    Parameter& p = params[i];
    const bool bf16 = p.dtype == kDtypeBF16;
    float* weight = bf16 ? masters_[i].as<float>() : p.data.as<float>();
    uint16_t* bf16_out = bf16 ? p.data.as<uint16_t>() : nullptr;
    const auto n = static_cast<uint64_t>(p.elements);
    if (kind_ == OptimizerKind::sgd) {
      const SgdHyper h{kSgdLr, kSgdMomentum, 0.0f, steps_done_ == 1 ? 1 : 0};
      kernels_.launch(Kernel::sgd_step, stream, LaunchVia::launch_kernel_ex, weight, grads.grads[i].as<const float>(),
                      state1_[i].as<float>(), bf16_out, n, h);
    } else {
      AdamHyper h{};
      h.lr = kAdamLr;
      h.beta1 = kAdamBeta1;
      h.beta2 = kAdamBeta2;
      h.eps = kAdamEps;
      h.bias_correction1 = static_cast<float>(1.0 - std::pow(static_cast<double>(kAdamBeta1), steps_done_));
      h.bias_correction2 = static_cast<float>(1.0 - std::pow(static_cast<double>(kAdamBeta2), steps_done_));
      kernels_.launch(Kernel::adam_step, stream, LaunchVia::launch_kernel_ex, weight, grads.grads[i].as<const float>(),
                      state1_[i].as<float>(), state2_[i].as<float>(), bf16_out, n, h);
    }
  }
}

}  // namespace minifw
