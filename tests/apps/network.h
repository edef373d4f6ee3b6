// network.h: the forward pass, the loss and the backward pass of minifw's
// model, as kernel launches on the compute stream. Activations are
// allocated from the caching allocator during the step and freed by the
// caller at the (synchronised) end of the step, so their blocks are reused
// by the next step and share segments with weights and temporaries.
#pragma once

#include <cuda.h>

#include <vector>

#include "caching_allocator.h"
#include "device_buffer.h"
#include "gradient_sink.h"
#include "kernel_launcher.h"
#include "lora.h"
#include "model.h"
#include "sliced_launch.h"

namespace minifw {

struct BlockActivations {
  DeviceBuffer input;    // [batch x dim]
  DeviceBuffer norm1;    // [batch x dim] rmsnorm(input)
  DeviceBuffer inv1;     // [batch] its 1/rms
  DeviceBuffer qkv;      // [batch x 3*dim]
  DeviceBuffer probs;    // [batch x batch]
  DeviceBuffer attn;     // [batch x dim]
  DeviceBuffer mid;      // [batch x dim] after the attention residual
  DeviceBuffer norm2;    // [batch x dim] rmsnorm(mid)
  DeviceBuffer inv2;     // [batch]
  DeviceBuffer up;       // [batch x hidden] before ReLU
  DeviceBuffer relu;     // [batch x hidden]
};

struct StepActivations {
  std::vector<BlockActivations> blocks;
  DeviceBuffer last;    // [batch x dim] output of the last block
  DeviceBuffer inv_last;  // [batch]
  DeviceBuffer output;  // [batch x dim] rmsnorm(last)
  DeviceBuffer loss;    // one float
  DeviceBuffer dpred;   // [batch x dim] (training only)
  DeviceBuffer logits;  // [batch x vocab] (--tied-head only)
};


class Network {
 public:
  Network(Model& model, CachingAllocator& allocator, const KernelLauncher& kernels,
          SlicedLauncher& sliced);

  // tokens: device int32[batch]; target: device float[batch x dim].
  // Queues forward + loss on `compute`; act.loss holds the loss afterwards.
  void forward(CUdeviceptr tokens, CUdeviceptr target, bool training, CUstream compute,
               StepActivations& act);
  // Queues the backward pass; each parameter's gradient goes to `sink`
  // (kept, fused into an update, or dropped for a frozen base). A layer's
  // input gradient is always queued before sink.complete() of its weight,
  // so a fused update never changes a weight backward still reads.
  void backward(CUdeviceptr tokens, StepActivations& act, GradientSink& sink, CUstream compute);
  // LoRA: adapters added to every linear layer (forward and backward), or null.
  void set_adapters(LoraAdapters* adapters) { adapters_ = adapters; }
  // --tma: every linear layer's kernels see the weight only through a TMA
  // descriptor passed by value (cuBLAS's GEMMs on Hopper), never a pointer.
  void set_tma(bool on) { tma_ = on; }
  // --tied-head: forward ends with logits = output x embedding^T, the
  // embedding read a second time, a whole step after its first use.
  void set_tied_head(bool on) { tied_head_ = on; }

 private:
  void linear(CUstream compute, CUdeviceptr x, const Parameter& w, const Parameter* b, size_t w_offset_elems,
              size_t b_offset_elems, int out, int in, CUdeviceptr y, int ldy, bool by_struct);
  DeviceBuffer activation(size_t floats, const char* what);
  void rmsnorm(CUstream compute, const DeviceBuffer& x, DeviceBuffer& y, DeviceBuffer& inv);
  // Queues dx = residual + rmsnorm_backward(x, inv, dy); returns dx.
  DeviceBuffer rmsnorm_backward_plus(CUstream compute, const DeviceBuffer& x, const DeviceBuffer& inv,
                                     const DeviceBuffer& dy, const DeviceBuffer& residual, const char* what);

  Model& model_;
  CachingAllocator& allocator_;
  const KernelLauncher& kernels_;
  SlicedLauncher& sliced_;
  LoraAdapters* adapters_ = nullptr;
  bool tma_ = false;
  bool tied_head_ = false;
};

}  // namespace minifw
