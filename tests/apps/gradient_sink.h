// gradient_sink.h: where the backward pass puts parameter gradients. Three
// training styles differ only here: kept fp32 gradients for an optimizer
// step after backward (sgd, adam), LOMO's fused update that applies each
// layer's gradient as soon as it is complete and frees it (no gradient is
// kept, no optimizer state), and a frozen base (LoRA: no base gradient).
#pragma once

#include <cuda.h>

#include <map>
#include <vector>

#include "caching_allocator.h"
#include "device_buffer.h"
#include "kernel_launcher.h"
#include "model.h"

namespace minifw {

// Gradients, one fp32 buffer per parameter (same order as the parameter list).
struct Gradients {
  std::vector<DeviceBuffer> grads;
};

class GradientSink {
 public:
  virtual ~GradientSink() = default;
  // Called once at the start of every backward pass.
  virtual void prepare(CUstream) {}
  // Where p's gradient accumulates (zeroed on `s`), or 0 when p is frozen.
  virtual CUdeviceptr gradient(const Parameter& p, CUstream s) = 0;
  // p's gradient is complete and this backward pass reads p no more.
  virtual void complete(const Parameter&, CUstream) {}
  // The gradient of embedding `table`, from the gradient `dx` of its output rows.
  virtual void embedding(const Parameter& table, CUdeviceptr tokens, const DeviceBuffer& dx, int rows, int dim,
                         CUstream s) = 0;
};

// torch's .grad: one fp32 buffer per parameter, created at the first
// backward, zeroed at every backward, read by the optimizer afterwards.
class KeptGradients final : public GradientSink {
 public:
  KeptGradients(std::vector<Parameter>& params, CachingAllocator& allocator, const KernelLauncher& kernels,
                Gradients& grads)
      : params_(params), allocator_(allocator), kernels_(kernels), grads_(grads) {}
  void prepare(CUstream s) override;
  CUdeviceptr gradient(const Parameter& p, CUstream) override;
  void embedding(const Parameter& table, CUdeviceptr tokens, const DeviceBuffer& dx, int rows, int dim,
                 CUstream s) override;

 private:
  std::vector<Parameter>& params_;
  CachingAllocator& allocator_;
  const KernelLauncher& kernels_;
  Gradients& grads_;
};

// LOMO (Lv et al. 2023): plain SGD fused into backward. A parameter's
// gradient lives in a temporary block from gradient() to complete(), where
// the update is queued and the block freed (reused by the next layer's);
// the embedding is updated from its rows' gradient without a table.
class FusedSgd final : public GradientSink {
 public:
  FusedSgd(CachingAllocator& allocator, const KernelLauncher& kernels, float lr)
      : allocator_(allocator), kernels_(kernels), lr_(lr) {}
  CUdeviceptr gradient(const Parameter& p, CUstream s) override;
  void complete(const Parameter& p, CUstream s) override;
  void embedding(const Parameter& table, CUdeviceptr tokens, const DeviceBuffer& dx, int rows, int dim,
                 CUstream s) override;

 private:
  CachingAllocator& allocator_;
  const KernelLauncher& kernels_;
  float lr_;
  std::map<const Parameter*, DeviceBuffer> live_;  // at most one layer's weight and bias
};

// LoRA's frozen base: no base gradient at all (the input gradients still
// flow through the base weights to the adapters of earlier layers).
class FrozenBase final : public GradientSink {
 public:
  CUdeviceptr gradient(const Parameter&, CUstream) override { return 0; }
  void embedding(const Parameter&, CUdeviceptr, const DeviceBuffer&, int, int, CUstream) override {}
};

}  // namespace minifw
