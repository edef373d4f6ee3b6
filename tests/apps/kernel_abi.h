// kernel_abi.h: the parameter types shared by minifw (host side, which packs
// kernel parameters) and minifw_kernels (the simulator module, which reads
// them). Everything here is plain data with a fixed layout, because it
// crosses the cuLaunchKernel parameter buffer byte for byte.
#pragma once

#include <cstdint>

namespace minifw {

enum WeightDtype : int32_t { kDtypeF32 = 0, kDtypeBF16 = 1 };

// One linear layer's parameters, passed BY VALUE as a single kernel
// parameter, the way frameworks pass small structs of pointers. A runtime's
// parameter scan has to find the two device pointers inside it.
struct LinearParams {
  const void* weight;  // [out_features x in_features], row-major, `dtype`
  const float* bias;   // [out_features] or null
  int32_t out_features;
  int32_t in_features;
  int32_t dtype;       // WeightDtype
  int32_t reserved;    // keeps the size a multiple of 8 on every ABI
};

// A CUtensorMap's bytes, by value (the kernels module does not include
// cuda.h; the host passes a CUtensorMap, same size and alignment).
struct alignas(64) TensorMapBytes {
  unsigned char bytes[128];
};

// Optimizer hyper-parameters, by value (no pointers: a scan must skip them).
struct SgdHyper {
  float lr;
  float momentum;
  float weight_decay;
  int32_t first_step;  // 1: momentum buffer is uninitialised (PyTorch semantics)
};

struct AdamHyper {
  float lr;
  float beta1;
  float beta2;
  float eps;
  float bias_correction1;  // 1 - beta1^t, computed on the host in double then rounded
  float bias_correction2;  // 1 - beta2^t
};

}  // namespace minifw
