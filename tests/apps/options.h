// options.h: minifw's command line.
#pragma once

#include <string>

#include "driver.h"
#include "optimizer.h"

namespace minifw {

// --dist: data-parallel training through NCCL (data_parallel.h).
enum class DistMode { none, ddp, fsdp };
// PyTorch's allocator back ends: cuMemAlloc segments, expandable segments
// (the program's own cuMemCreate/cuMemMap), cudaMallocAsync (cuMemAllocAsync).
enum class SegmentKind { native, expandable, stream_ordered };

struct Options {
  enum class Workload { infer, train } workload = Workload::infer;
  OptimizerKind optimizer = OptimizerKind::adam;
  int size_mb = 24;
  int weight_mb = 0;  // --weight-mb: the large weight matrices about this many MiB each (0: dim 512)
  int steps = 3;
  int batch = 8;
  int threads = 1;
  std::string weights_dir;   // default: MINIFW_WEIGHTS_DIR (set by meson)
  std::string kernels_path;  // default: libminifw_kernels.so beside the executable
  Module::LoadBy module_load = Module::LoadBy::path;
  std::string save_path;     // optional: write the final checkpoint (safetensors)
  bool nz_tag = false;       // --nz-tag: declare the weights to a loaded neuzip runtime
  bool mixed_dtypes = false; // --mixed-dtypes: infer with the training model's fp32 MLP up weights
  DistMode dist = DistMode::none;  // --dist ddp|fsdp (train only)
  int lora_rank = 0;         // --lora R: train rank-R adapters (Adam) on a frozen bf16 base
  bool tied_head = false;  // --tied-head: infer ends with logits through the embedding (tied weights)
  SegmentKind segments = SegmentKind::native;  // --alloc: where the caching allocator's segments come from
  bool tma = false;          // --tma: linear layers read weights through TMA descriptors (Hopper cuBLAS)
};

// Parses argv; on error returns false with a message in `error`.
bool parse_options(int argc, char** argv, Options& out, std::string& error);
const char* usage();

}  // namespace minifw
