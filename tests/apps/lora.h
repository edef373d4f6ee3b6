// lora.h: LoRA adapters (Hu et al. 2021) on every linear layer of minifw's
// model: y = W x + b + B (A x), A [rank x in], B [out x rank], with W and b
// frozen (only read) and A, B trained by Adam. B starts at zero, so step 0
// computes the base model's loss.
//
// The adapters are fp32: they are a fraction of a percent of the model
// (rank 8: 0.6 MiB at --size-mb 64), so fp32 costs nothing measurable and
// spares master copies (bf16 trainable tensors would need fp32 masters for
// Adam, as minifw's bf16 weights do) — the memory that matters is the
// frozen bf16 base, which neuzip keeps compressed.
#pragma once

#include <cuda.h>

#include <vector>

#include "caching_allocator.h"
#include "device_buffer.h"
#include "gradient_sink.h"
#include "kernel_launcher.h"
#include "model.h"

namespace minifw {

enum class LoraLayer { qkv = 0, proj = 1, up = 2, down = 3 };

class LoraAdapters {
 public:
  // Allocates and initialises the adapters of every block (A from a fixed
  // pseudo-random sequence, copied from the host; B zeroed) on `stream`.
  LoraAdapters(const ModelConfig& config, int rank, CachingAllocator& allocator, const KernelLauncher& kernels,
               CUstream stream);

  // y [batch x out] += B (A x); x is [batch x in]. Keeps A x for backward.
  void forward(CUstream s, int block, LoraLayer layer, const DeviceBuffer& x, const DeviceBuffer& y);
  // Zeroes the adapters' gradients (allocated on first use).
  void prepare_backward(CUstream s);
  // dy [batch x out] is the gradient of y; accumulates dA, dB and adds the
  // adapter's share of the input gradient to dx [batch x in].
  void backward(CUstream s, int block, LoraLayer layer, const DeviceBuffer& x, CUdeviceptr dy,
                const DeviceBuffer& dx);

  std::vector<Parameter>& parameters() { return params_; }
  Gradients& gradients() { return grads_; }

 private:
  struct Shape {
    int out, in;
  };
  Shape shape(LoraLayer layer) const;
  size_t index(int block, LoraLayer layer) const { return static_cast<size_t>(block) * 4 + static_cast<size_t>(layer); }

  ModelConfig config_;
  int rank_;
  CachingAllocator& allocator_;
  const KernelLauncher& kernels_;
  std::vector<Parameter> params_;       // A then B of each (block, layer), in index order
  std::vector<DeviceBuffer> low_rank_;  // A x of each (block, layer), kept from forward to backward
  Gradients grads_;
};

}  // namespace minifw
