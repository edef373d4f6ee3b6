// model.cpp: parameter layout and checkpoint loading/saving.
#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <span>

#include <fmt/core.h>

#include "bf16.h"

namespace minifw {
namespace {

constexpr size_t kMiB = 1u << 20;
// The embedding stays above 10 MiB at the default size, so it gets a segment
// of its own (PyTorch's rule for large requests), rounded up to 2 MiB.
constexpr size_t kMaxEmbeddingBytes = 11 * kMiB;

size_t block_bytes(const ModelConfig& c) {
  const size_t d = c.dim, h = c.hidden, up = c.all_bf16 ? 2 : 4;
  return 3 * d * d * 2 + 3 * d * 4 + d * d * 2 + d * 4 + h * d * up + h * 4 + d * h * 2 + d * 4;
}

Parameter make_param(std::string name, WeightDtype dtype, std::vector<int64_t> shape, LoadPath load) {
  Parameter p;
  p.name = std::move(name);
  p.dtype = dtype;
  p.shape = std::move(shape);
  p.elements = 1;
  for (int64_t s : p.shape) p.elements *= static_cast<size_t>(s);
  p.load = load;
  return p;
}

// Double-buffered pinned staging, so the host fills one buffer while the
// data stream still copies from the other.
class Staging {
 public:
  explicit Staging(size_t bytes) : buffers_{PinnedBuffer(bytes), PinnedBuffer(bytes)} {}
  // The next buffer, once its previous copy has finished.
  void* acquire() {
    current_ ^= 1;
    if (used_[current_]) events_[current_].synchronize();
    return buffers_[current_].data();
  }
  // Marks the buffer just acquired as read by work queued on `stream`.
  void release(CUstream stream) {
    events_[current_].record(stream);
    used_[current_] = true;
  }

 private:
  PinnedBuffer buffers_[2];
  Event events_[2];
  bool used_[2] = {false, false};
  int current_ = 1;
};

}  // namespace

ModelConfig ModelConfig::for_size(int size_mb, int batch, bool all_bf16, int weight_mb) {
  ModelConfig c;
  c.batch = batch;
  c.all_bf16 = all_bf16;
  if (weight_mb > 0) {
    const double dim = std::sqrt(static_cast<double>(weight_mb) * static_cast<double>(kMiB) / 6.0);
    c.dim = std::max<int32_t>(64, static_cast<int32_t>(dim) / 64 * 64);
    c.hidden = 2 * c.dim;
  }
  const size_t budget = static_cast<size_t>(std::max(size_mb, 1)) * kMiB;
  const size_t embedding = std::min(kMaxEmbeddingBytes, budget / 2);
  const size_t row_bytes = static_cast<size_t>(c.dim) * 2;
  c.vocab = static_cast<int32_t>(std::max<size_t>(64, embedding / row_bytes / 64 * 64));
  const size_t rest = budget - std::min(budget, static_cast<size_t>(c.vocab) * row_bytes);
  const size_t per_block = block_bytes(c);
  c.blocks = static_cast<int32_t>(std::max<size_t>(1, (rest + per_block / 2) / per_block));
  return c;
}

Model::Model(const ModelConfig& config) : config_(config) {
  const int64_t d = config.dim, h = config.hidden;
  params_.reserve(1 + 8 * static_cast<size_t>(config.blocks));
  params_.push_back(make_param("embed.weight", kDtypeBF16, {config.vocab, d}, LoadPath::pinned_async));
  for (int b = 0; b < config.blocks; ++b) {
    const std::string prefix = fmt::format("blocks.{}.", b);
    params_.push_back(make_param(prefix + "attn.qkv.weight", kDtypeBF16, {3 * d, d}, LoadPath::pinned_async));
    params_.push_back(make_param(prefix + "attn.qkv.bias", kDtypeF32, {3 * d}, LoadPath::pageable_sync));
    // A bf16 inference checkpoint is copied as is; training's checkpoint
    // stores this weight in fp32 and casts it on the device.
    params_.push_back(make_param(prefix + "attn.proj.weight", kDtypeBF16, {d, d},
                                 config.all_bf16 ? LoadPath::pinned_async : LoadPath::f32_then_cast_bf16));
    params_.push_back(make_param(prefix + "attn.proj.bias", kDtypeF32, {d}, LoadPath::pageable_sync));
    params_.push_back(make_param(prefix + "mlp.up.weight", config.all_bf16 ? kDtypeBF16 : kDtypeF32, {h, d},
                                 LoadPath::pinned_async));
    params_.push_back(make_param(prefix + "mlp.up.bias", kDtypeF32, {h}, LoadPath::pageable_sync));
    params_.push_back(make_param(prefix + "mlp.down.weight", kDtypeBF16, {d, h}, LoadPath::pinned_async));
    params_.push_back(make_param(prefix + "mlp.down.bias", kDtypeF32, {d}, LoadPath::pinned_async));
  }
  for (int b = 0; b < config.blocks; ++b) {
    Parameter* p = &params_[1 + 8 * static_cast<size_t>(b)];
    blocks_.push_back(BlockParams{p, p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7});
  }
}

size_t Model::total_bytes() const {
  size_t total = 0;
  for (const auto& p : params_) total += p.bytes();
  return total;
}

void Model::load(CachingAllocator& allocator, const KernelLauncher& kernels, const WeightSource& source,
                 CUstream data_stream, const Event& done,
                 const std::function<void(const Parameter&)>& on_loaded) {
  size_t largest = 0;
  for (const auto& p : params_) largest = std::max(largest, p.elements * sizeof(float));
  Staging staging(largest);
  std::vector<float> pageable;
  uint32_t index = 0;
  for (auto& p : params_) {
    const uint32_t tensor_index = index++;
    p.data = DeviceBuffer(allocator, p.bytes(), p.name.c_str());
    switch (p.load) {
      case LoadPath::pinned_async: {
        void* host = staging.acquire();
        if (p.dtype == kDtypeBF16) {
          source.fill_bf16({static_cast<uint16_t*>(host), p.elements}, tensor_index);
        } else {
          source.fill_f32({static_cast<float*>(host), p.elements}, tensor_index);
        }
        MINIFW_CHECK(cuMemcpyHtoDAsync(p.data.get(), host, p.bytes(), data_stream));
        staging.release(data_stream);
        break;
      }
      case LoadPath::pageable_sync: {
        pageable.resize(p.elements);
        source.fill_f32(pageable, tensor_index);
        // A synchronous copy is not ordered with our non-blocking data
        // stream, and this block may be a load temporary the stream still
        // reads: let the stream drain first.
        MINIFW_CHECK(cuStreamSynchronize(data_stream));
        MINIFW_CHECK(cuMemcpyHtoD(p.data.get(), pageable.data(), p.bytes()));
        break;
      }
      case LoadPath::f32_then_cast_bf16: {
        // A checkpoint saved in fp32, cast on the device (model.to(bfloat16)).
        // The values are real bf16 weights widened, so the cast is exact.
        auto* host = static_cast<float*>(staging.acquire());
        std::vector<uint16_t> bf16(p.elements);
        source.fill_bf16(bf16, tensor_index);
        for (size_t i = 0; i < p.elements; ++i) host[i] = bf16_to_float(bf16[i]);
        DeviceBuffer temporary(allocator, p.elements * sizeof(float), "load temporary");
        MINIFW_CHECK(cuMemcpyHtoDAsync(temporary.get(), host, temporary.bytes(), data_stream));
        staging.release(data_stream);
        kernels.launch(Kernel::cast_f32_to_bf16, data_stream, LaunchVia::launch_kernel,
                       temporary.as<const float>(), p.data.as<uint16_t>(), static_cast<uint64_t>(p.elements));
        // Freed while the cast may still be queued: safe because the next
        // user of this block is a copy or kernel on the same data stream (or
        // compute work ordered after `done`), as with PyTorch's allocator.
        break;
      }
    }
    if (on_loaded) {
      MINIFW_CHECK(cuStreamSynchronize(data_stream));
      on_loaded(p);
    }
  }
  done.record(data_stream);
  // The staging buffers are freed on return: wait for their copies first.
  MINIFW_CHECK(cuStreamSynchronize(data_stream));
}

void copy_parameter_to_host(const Parameter& param, CUstream stream, std::vector<unsigned char>& out) {
  PinnedBuffer pinned(param.bytes());
  MINIFW_CHECK(cuMemcpyDtoHAsync(pinned.data(), param.data.get(), param.bytes(), stream));
  MINIFW_CHECK(cuStreamSynchronize(stream));
  const auto* bytes = static_cast<const unsigned char*>(pinned.data());
  out.assign(bytes, bytes + param.bytes());
}

}  // namespace minifw
