// optimizer.h: SGD (with momentum) and Adam steps that write the weights
// on the device. bf16 parameters train through fp32 master copies (created
// on the device from the loaded weights); the step writes the master and
// rounds it back into the bf16 weight. fp32 parameters are updated in place.
// State (momentum, Adam moments) is allocated at the first step, as
// torch.optim does.
#pragma once

#include <cuda.h>

#include <string>
#include <vector>

#include "caching_allocator.h"
#include "device_buffer.h"
#include "kernel_launcher.h"
#include "model.h"
#include "network.h"

namespace minifw {

// lomo: no optimizer step; SGD is fused into backward (gradient_sink.h).
enum class OptimizerKind { sgd, adam, lomo };

bool parse_optimizer(const std::string& text, OptimizerKind& out);

class Optimizer {
 public:
  // `params`: the trainable tensors (the model's, or LoRA's adapters).
  Optimizer(OptimizerKind kind, std::vector<Parameter>& params, CachingAllocator& allocator,
            const KernelLauncher& kernels);

  // Queues the fp32 master copies of bf16 parameters on `stream`.
  void create_masters(CUstream stream);
  // Queues one update of every parameter on `stream`.
  void step(const Gradients& grads, CUstream stream);

 private:
  OptimizerKind kind_;
  std::vector<Parameter>& params_;
  CachingAllocator& allocator_;
  const KernelLauncher& kernels_;
  std::vector<DeviceBuffer> masters_;  // empty buffer for fp32 parameters
  std::vector<DeviceBuffer> state1_;   // momentum or Adam m
  std::vector<DeviceBuffer> state2_;   // Adam v
  int steps_done_ = 0;
};

}  // namespace minifw
