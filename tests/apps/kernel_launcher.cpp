// kernel_launcher.cpp: see kernel_launcher.h. The simulator runs the whole
// grid in one host call, so grid and block sizes are nominal (what a GPU
// build of these kernels would use).
#include "kernel_launcher.h"

namespace minifw {
namespace {

constexpr const char* kNames[] = {
    "cast_f32_to_bf16",      "cast_bf16_to_f32",       "embedding_forward",
    "embedding_backward",    "linear_forward_ptr",     "linear_forward_struct",
    "linear_backward_input", "linear_backward_weight", "attention_forward",
    "attention_backward",    "rmsnorm_forward",        "rmsnorm_backward",       "relu_forward",           "relu_backward",
    "add",                   "mse_loss",               "sgd_step",
    "adam_step",             "fused_sgd",              "embedding_fused_sgd",
    "linear_forward_tma",    "linear_backward_input_tma",
};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(Kernel::count_));

constexpr unsigned kGrid = 64;
constexpr unsigned kBlock = 256;

}  // namespace

KernelLauncher::KernelLauncher(const Module& module) {
  for (size_t i = 0; i < functions_.size(); ++i) functions_[i] = module.function(kNames[i]);
}

void KernelLauncher::launch_raw(Kernel k, CUstream stream, LaunchVia via, void** params) const {
  CUfunction f = functions_[static_cast<size_t>(k)];
  if (via == LaunchVia::launch_kernel) {
    MINIFW_CHECK(cuLaunchKernel(f, kGrid, 1, 1, kBlock, 1, 1, 0, stream, params, nullptr));
    return;
  }
  CUlaunchConfig config{};
  config.gridDimX = kGrid;
  config.gridDimY = 1;
  config.gridDimZ = 1;
  config.blockDimX = kBlock;
  config.blockDimY = 1;
  config.blockDimZ = 1;
  config.sharedMemBytes = 0;
  config.hStream = stream;
  config.attrs = nullptr;
  config.numAttrs = 0;
  MINIFW_CHECK(cuLaunchKernelEx(&config, f, params, nullptr));
}

}  // namespace minifw
