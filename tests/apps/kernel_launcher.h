// kernel_launcher.h: looks up minifw's kernels once and launches them with
// typed arguments. Most launches go through cuLaunchKernel; the ones marked
// `ex` use cuLaunchKernelEx (as cuBLAS does on H100), so a runtime must
// handle both entry points.
#pragma once

#include <cuda.h>

#include <array>

#include "driver.h"

namespace minifw {

enum class Kernel {
  cast_f32_to_bf16,
  cast_bf16_to_f32,
  embedding_forward,
  embedding_backward,
  linear_forward_ptr,
  linear_forward_struct,
  linear_backward_input,
  linear_backward_weight,
  attention_forward,
  attention_backward,
  rmsnorm_forward,
  rmsnorm_backward,
  relu_forward,
  relu_backward,
  add,
  mse_loss,
  sgd_step,
  adam_step,
  fused_sgd,
  embedding_fused_sgd,
  linear_forward_tma,
  linear_backward_input_tma,
  count_
};

enum class LaunchVia { launch_kernel, launch_kernel_ex };

class KernelLauncher {
 public:
  explicit KernelLauncher(const Module& module);

  template <typename... Args>
  void launch(Kernel k, CUstream stream, LaunchVia via, const Args&... args) const {
    void* params[] = {const_cast<void*>(static_cast<const void*>(&args))...};
    launch_raw(k, stream, via, params);
  }

 private:
  void launch_raw(Kernel k, CUstream stream, LaunchVia via, void** params) const;
  std::array<CUfunction, static_cast<size_t>(Kernel::count_)> functions_{};
};

}  // namespace minifw
