// gradient_sink.cpp: see gradient_sink.h.
#include "gradient_sink.h"

namespace minifw {

void KeptGradients::prepare(CUstream s) {
  if (grads_.grads.empty()) {  // like .grad, created at the first backward
    for (const auto& p : params_) grads_.grads.emplace_back(allocator_, p.elements * sizeof(float), "gradient");
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    MINIFW_CHECK(cuMemsetD32Async(grads_.grads[i].get(), 0, params_[i].elements, s));
  }
}

CUdeviceptr KeptGradients::gradient(const Parameter& p, CUstream) {
  return grads_.grads[static_cast<size_t>(&p - params_.data())].get();
}

void KeptGradients::embedding(const Parameter& table, CUdeviceptr tokens, const DeviceBuffer& dx, int rows, int dim,
                              CUstream s) {
  kernels_.launch(Kernel::embedding_backward, s, LaunchVia::launch_kernel, reinterpret_cast<const int32_t*>(tokens),
                  dx.as<const float>(), reinterpret_cast<float*>(gradient(table, s)),
                  static_cast<int32_t>(rows), static_cast<int32_t>(dim));
}

CUdeviceptr FusedSgd::gradient(const Parameter& p, CUstream s) {
  DeviceBuffer grad(allocator_, p.elements * sizeof(float), "lomo layer gradient");
  MINIFW_CHECK(cuMemsetD32Async(grad.get(), 0, p.elements, s));
  const CUdeviceptr ptr = grad.get();
  live_[&p] = std::move(grad);
  return ptr;
}

void FusedSgd::complete(const Parameter& p, CUstream s) {
  auto it = live_.find(&p);
  if (it == live_.end()) return;
  kernels_.launch(Kernel::fused_sgd, s, LaunchVia::launch_kernel_ex, p.data.as<void>(), it->second.as<const float>(),
                  static_cast<uint64_t>(p.elements), lr_, static_cast<int32_t>(p.dtype));
  // Freed while the update may be queued: the block's next user is on the
  // same stream (PyTorch's allocator semantics).
  live_.erase(it);
}

void FusedSgd::embedding(const Parameter& table, CUdeviceptr tokens, const DeviceBuffer& dx, int rows, int dim,
                         CUstream s) {
  kernels_.launch(Kernel::embedding_fused_sgd, s, LaunchVia::launch_kernel_ex, reinterpret_cast<const int32_t*>(tokens),
                  dx.as<const float>(), table.data.as<uint16_t>(), static_cast<int32_t>(rows),
                  static_cast<int32_t>(dim), lr_);
}

}  // namespace minifw
