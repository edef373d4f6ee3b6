// cuda_codec.cpp: the DeviceCodec that runs the CUDA kernels of kernels/.
//
// The fatbin (sm_80, sm_90 and compute_90 PTX) is embedded in the library by
// kernels/embed_fatbin.py and loaded with cuModuleLoadData into the current
// context: no libcudart, no <<<>>>, every launch through the DriverApi.
#include <fmt/format.h>

#include <algorithm>

#include "gpu/backends.h"
#include "gpu/encode_params.h"
#include "gpu/loaded_module.h"
#include "kernel_abi.h"

#if NZ_HAVE_GPU_KERNELS
extern "C" const unsigned char nz_kernels_fatbin[];
#endif

namespace nz::gpu {

bool built_with_gpu_kernels() { return NZ_HAVE_GPU_KERNELS != 0; }

namespace {

// Enough resident blocks per SM to hide latency: the decode block uses about
// 41 KiB of shared memory, so an H100 SM holds five; four leaves room for
// the user's kernels that run beside ours.
constexpr unsigned kDecodeBlocksPerSm = 4;
constexpr unsigned kHashBlocksPerSm = 8;

unsigned ceil_div(uint64_t a, uint64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

class CudaCodec final : public DeviceCodec {
 public:
  CudaCodec(const DriverApi& api, CUmodule module, int sm_count)
      : api_(api), module_(api_, module), sm_count_(std::max(sm_count, 1)) {}

  CUresult init(std::string& error) {
    const CUresult r = module_.get_functions({{&decode_, kernels::kDecodeKernel},
                                  {&decode_batch_, kernels::kDecodeBatchKernel},
                                  {&hash_, kernels::kHashKernel},
                                  {&analyse_, kernels::kEncodeAnalyseKernel},
                                  {&table_, kernels::kEncodeTableKernel},
                                  {&rans_, kernels::kEncodeRansKernel},
                                  {&layout_, kernels::kEncodeLayoutKernel},
                                  {&emit_, kernels::kEncodeEmitKernel}},
                                 "GPU kernels", error);
    // Optional: without it the runtime never hands staging pages over.
    if (api_.cuModuleGetFunction(&guard_, module_.get(), kernels::kGuardBatchKernel) != CUDA_SUCCESS) guard_ = nullptr;
    else if (api_.cuFuncLoad != nullptr) api_.cuFuncLoad(guard_);
    return r;
  }

  Backend backend() const override { return Backend::kCuda; }

  CUresult decode(CUstream stream, CUdeviceptr src, size_t src_len, CUdeviceptr dst, size_t dst_cap,
                  CUdeviceptr status_word) override {
    // The kernel's contract (docs/KERNELS.md): src 8-byte aligned, dst aligned
    // to the element size. Refuse here rather than let the kernel trap, which
    // would poison the user's context. (fp32's 4-byte dst rule needs the
    // header, so the kernel still checks that one.)
    if (src % 8 != 0 || dst % 2 != 0) return CUDA_ERROR_INVALID_VALUE;
    kernels::DecodeArgs args{src, src_len, dst, dst_cap, status_word};
    // The grid does not depend on the chunk count (unknown here without a
    // read-back): blocks past the last chunk return at once.
    unsigned grid = sm_count_ * kDecodeBlocksPerSm;
    // A chunk payload takes at least 16 bytes, which bounds the useful grid.
    grid = std::max(1u, std::min(grid, ceil_div(src_len / 16 + 1, kernels::kDecodeWarpsPerBlock)));
    return launch(decode_, grid, kernels::kDecodeWarpsPerBlock * 32, stream, &args);
  }

  CUresult decode_batch(CUstream stream, std::span<const DecodeJob> jobs, CUdeviceptr status_word) override {
    kernels::DecodeBatchArgs args{};
    if (!fill_batch_args(jobs, status_word, args)) return CUDA_ERROR_INVALID_VALUE;
    size_t largest = 0;
    for (const auto& j : jobs) {
      if (j.src % 8 != 0 || j.dst % 2 != 0) return CUDA_ERROR_INVALID_VALUE;  // as decode()
      largest = std::max(largest, j.src_len);
    }
    // The whole device shares the batch: each job gets an equal part of the
    // grid a single decode would use, bounded by what its chunks can use.
    const unsigned grid = sm_count_ * kDecodeBlocksPerSm;
    unsigned per_job = std::max(1u, grid / static_cast<unsigned>(jobs.size()));
    per_job = std::max(1u, std::min(per_job, ceil_div(largest / 16 + 1, kernels::kDecodeWarpsPerBlock)));
    args.blocks_per_job = per_job;
    return launch(decode_batch_, per_job * args.count, kernels::kDecodeWarpsPerBlock * 32, stream, &args);
  }

  size_t encode_workspace_bytes(uint64_t element_count, const nz_options& opts) const override {
    kernels::EncodeArgs args;
    std::string error;
    if (!resolve_encode_params(element_count, opts, args, error)) return 0;
    return plan_encode_workspace(args);
  }

  CUresult encode(CUstream stream, CUdeviceptr src, uint64_t element_count, const nz_options& opts,
                  CUdeviceptr dst, size_t dst_cap, CUdeviceptr out_len, CUdeviceptr workspace,
                  size_t workspace_bytes) override {
    kernels::EncodeArgs args;
    std::string error;
    if (!resolve_encode_params(element_count, opts, args, error)) return CUDA_ERROR_INVALID_VALUE;
    if (dst % 8 != 0 || src % nz_dtype_size(opts.dtype) != 0) return CUDA_ERROR_INVALID_VALUE;
    size_t needed = plan_encode_workspace(args);
    if (workspace_bytes < needed || (needed != 0 && workspace == 0)) return CUDA_ERROR_INVALID_VALUE;
    args.src = src;
    args.dst = dst;
    args.dst_cap = dst_cap;
    args.out_len = out_len;
    args.ws.base = workspace;
    args.ws.bytes = workspace_bytes;
    CUresult r = api_.cuMemsetD8Async(workspace, 0, encode_workspace_zero_prefix(args), stream);
    const unsigned chunk_blocks = ceil_div(args.chunk_count, kernels::kEncodeWarpsPerBlock);
    const unsigned warp_threads = kernels::kEncodeWarpsPerBlock * 32;
    if (r == CUDA_SUCCESS && chunk_blocks) r = launch(analyse_, chunk_blocks, warp_threads, stream, &args);
    if (r == CUDA_SUCCESS) r = launch(table_, 1, 256, stream, &args);
    if (r == CUDA_SUCCESS && chunk_blocks) r = launch(rans_, chunk_blocks, warp_threads, stream, &args);
    if (r == CUDA_SUCCESS) r = launch(layout_, 1, kernels::kLayoutThreads, stream, &args);
    if (r == CUDA_SUCCESS && chunk_blocks) r = launch(emit_, chunk_blocks, warp_threads, stream, &args);
    return r;
  }

  CUresult hash(CUstream stream, CUdeviceptr data, size_t len, CUdeviceptr out_hash) override {
    kernels::HashArgs args{data, len, out_hash};
    CUresult r = api_.cuMemsetD8Async(out_hash, 0, sizeof(uint64_t), stream);
    if (r != CUDA_SUCCESS) return r;
    uint64_t words = (uint64_t{len} + 3) / 4;
    unsigned grid = std::max(1u, std::min(ceil_div(words, kernels::kHashThreads), sm_count_ * kHashBlocksPerSm));
    return launch(hash_, grid, kernels::kHashThreads, stream, &args);
  }

  bool has_guard() const override { return guard_ != nullptr; }

  CUresult guard_batch(CUstream stream, std::span<const GuardJob> jobs, CUdeviceptr flags) override {
    kernels::GuardBatchArgs args{};
    if (guard_ == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
    if (!fill_guard_args(jobs, flags, args)) return CUDA_ERROR_INVALID_VALUE;
    return launch(guard_, args.count, kernels::kGuardThreads, stream, &args);
  }

 private:
  template <class Args>
  CUresult launch(CUfunction fn, unsigned grid, unsigned block, CUstream stream, Args* args) {
    void* params[] = {args};
    return api_.cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, 0, stream, params, nullptr);
  }

  DriverApi api_;  // a copy: the caller's table need not outlive us
  LoadedModule module_;
  unsigned sm_count_;
  CUfunction decode_ = nullptr, decode_batch_ = nullptr, hash_ = nullptr, analyse_ = nullptr, table_ = nullptr, rans_ = nullptr,
             layout_ = nullptr, emit_ = nullptr, guard_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceCodec> create_cuda_codec_from_image(const DriverApi& api, CUdevice device, const void* image,
                                                          std::string& error) {
  int sm_count = 0;
  CUresult r = api.cuDeviceGetAttribute(&sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device);
  if (r != CUDA_SUCCESS) {
    error = fmt::format("cannot query the SM count: {}", describe(api, r));
    return nullptr;
  }
  CUmodule module = nullptr;
  r = api.cuModuleLoadData(&module, image);
  if (r != CUDA_SUCCESS) {
    error = fmt::format("cannot load the neuzip GPU kernels (sm_80/sm_90 + compute_90 PTX): {}", describe(api, r));
    return nullptr;
  }
  auto codec = std::make_unique<CudaCodec>(api, module, sm_count);
  if (codec->init(error) != CUDA_SUCCESS) return nullptr;
  return codec;
}

std::unique_ptr<DeviceCodec> create_cuda_codec(const DriverApi& api, CUdevice device, std::string& error) {
#if NZ_HAVE_GPU_KERNELS
  return create_cuda_codec_from_image(api, device, nz_kernels_fatbin, error);
#else
  (void)api;
  (void)device;
  error = "neuzip was built without GPU kernels (nvcc not found at configure time)";
  return nullptr;
#endif
}

}  // namespace nz::gpu
