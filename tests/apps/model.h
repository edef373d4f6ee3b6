// model.h: minifw's model: a bf16 token embedding followed by transformer-
// like blocks (fused QKV projection, causal single-head attention, output
// projection, ReLU MLP, residuals). Parameters are a mix of bf16 and fp32
// and live in caching-allocator blocks, as a framework's parameters do.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "caching_allocator.h"
#include "device_buffer.h"
#include "driver.h"
#include "kernel_abi.h"
#include "kernel_launcher.h"
#include "weight_source.h"

namespace minifw {

struct ModelConfig {
  int32_t dim = 512;
  int32_t hidden = 1024;
  int32_t vocab = 0;
  int32_t blocks = 0;
  int32_t batch = 8;  // tokens per step (the attention's sequence)
  // Inference checkpoints are usually bf16 throughout: then the MLP up
  // projection is bf16 too. Training keeps it fp32 (mixed dtypes, fp32
  // weights written by the optimizer).
  bool all_bf16 = false;

  // Chooses vocab and blocks so that the parameters total about `size_mb`;
  // with `weight_mb` > 0 the width too, so that the largest matrix (qkv, 6
  // dim^2 bytes) is about that many MiB (a 7B model's are 32-90 MiB).
  static ModelConfig for_size(int size_mb, int batch, bool all_bf16 = false, int weight_mb = 0);
};

// How a parameter goes from the checkpoint to the device (all real patterns).
enum class LoadPath {
  pinned_async,        // cuMemcpyHtoDAsync from pinned memory on the data stream
  pageable_sync,       // cuMemcpyHtoD from ordinary host memory
  f32_then_cast_bf16,  // fp32 copy into a temporary block, cast kernel, free the temporary
};

struct Parameter {
  std::string name;
  WeightDtype dtype = kDtypeF32;
  std::vector<int64_t> shape;
  size_t elements = 0;
  LoadPath load = LoadPath::pinned_async;
  DeviceBuffer data;
  size_t bytes() const { return elements * (dtype == kDtypeBF16 ? 2 : 4); }
};

struct BlockParams {
  Parameter* qkv_w;  // [3*dim x dim] bf16; Q, K, V parts are interior pointers
  Parameter* qkv_b;  // [3*dim] f32
  Parameter* proj_w; // [dim x dim] bf16
  Parameter* proj_b; // [dim] f32
  Parameter* up_w;   // [hidden x dim] f32 (bf16 when all_bf16)
  Parameter* up_b;   // [hidden] f32
  Parameter* down_w; // [dim x hidden] bf16
  Parameter* down_b; // [dim] f32
};

class Model {
 public:
  explicit Model(const ModelConfig& config);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Allocates every parameter and copies the checkpoint in (tiles of real
  // weights), the way model.to('cuda') does: one tensor at a time on
  // `data_stream`. Returns once the copies are queued; `done` is recorded
  // after the last one.
  // `on_loaded`, when set, is called for each parameter once its data is on
  // the device (the data stream is synchronised first, which serialises the
  // load): `--nz-tag` declares each weight there, as a framework hook would.
  void load(CachingAllocator& allocator, const KernelLauncher& kernels, const WeightSource& source,
            CUstream data_stream, const Event& done,
            const std::function<void(const Parameter&)>& on_loaded = {});

  // Copies every parameter back (cuMemcpyDtoHAsync into pinned memory on
  // `stream`, then waits) and hands each to `sink(param, host_bytes)`.
  template <typename Sink>
  void save(CUstream stream, Sink&& sink) const;

  const ModelConfig& config() const { return config_; }
  std::vector<Parameter>& parameters() { return params_; }
  const std::vector<Parameter>& parameters() const { return params_; }
  Parameter& embedding() { return params_[0]; }
  const BlockParams& block(int i) const { return blocks_[i]; }
  size_t total_bytes() const;

 private:
  ModelConfig config_;
  std::vector<Parameter> params_;  // checkpoint order; never resized after construction
  std::vector<BlockParams> blocks_;
};

// Reads one parameter back to the host (helper of Model::save).
void copy_parameter_to_host(const Parameter& param, CUstream stream, std::vector<unsigned char>& out);

template <typename Sink>
void Model::save(CUstream stream, Sink&& sink) const {
  std::vector<unsigned char> host;
  for (const auto& p : params_) {
    copy_parameter_to_host(p, stream, host);
    sink(p, host);
  }
}

}  // namespace minifw
