// sim_codec.cpp: the DeviceCodec of the simulated driver. The kernels are host
// functions in kernels/sim (the CPU codec); this file only finds the module
// and launches them through the driver, exactly like the CUDA backend.
#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "gpu/backends.h"
#include "gpu/encode_params.h"
#include "gpu/loaded_module.h"
#include "kernel_abi.h"
#include "nzsim.h"

namespace nz::gpu {
namespace {

constexpr const char* kModuleFile = "libnzsim_codec.so";

class SimCodec final : public DeviceCodec {
 public:
  SimCodec(const DriverApi& api, CUmodule module) : api_(api), module_(api_, module) {}

  CUresult init(std::string& error) {
    const CUresult r = module_.get_functions({{&decode_, kernels::kDecodeKernel},
                                              {&decode_batch_, kernels::kDecodeBatchKernel},
                                              {&hash_, kernels::kHashKernel},
                                              {&encode_, kernels::kSimEncodeKernel}},
                                             "simulator module", error);
    // Optional (an older module lacks it): without it pages are never handed over.
    if (api_.cuModuleGetFunction(&guard_, module_.get(), kernels::kGuardBatchKernel) != CUDA_SUCCESS) guard_ = nullptr;
    return r;
  }

  Backend backend() const override { return Backend::kSimulator; }

  CUresult decode(CUstream stream, CUdeviceptr src, size_t src_len, CUdeviceptr dst, size_t dst_cap,
                  CUdeviceptr status_word) override {
    kernels::DecodeArgs args{src, src_len, dst, dst_cap, status_word};
    return launch(decode_, stream, &args);
  }

  CUresult decode_batch(CUstream stream, std::span<const DecodeJob> jobs, CUdeviceptr status_word) override {
    kernels::DecodeBatchArgs args{};
    if (!fill_batch_args(jobs, status_word, args)) return CUDA_ERROR_INVALID_VALUE;
    args.blocks_per_job = 1;
    return launch(decode_batch_, stream, &args);
  }

  size_t encode_workspace_bytes(uint64_t, const nz_options&) const override { return 0; }

  CUresult encode(CUstream stream, CUdeviceptr src, uint64_t element_count, const nz_options& opts,
                  CUdeviceptr dst, size_t dst_cap, CUdeviceptr out_len, CUdeviceptr, size_t) override {
    kernels::EncodeArgs args;
    std::string error;
    if (!resolve_encode_params(element_count, opts, args, error)) return CUDA_ERROR_INVALID_VALUE;
    args.src = src;
    args.dst = dst;
    args.dst_cap = dst_cap;
    args.out_len = out_len;
    return launch(encode_, stream, &args);
  }

  CUresult hash(CUstream stream, CUdeviceptr data, size_t len, CUdeviceptr out_hash) override {
    kernels::HashArgs args{data, len, out_hash};
    return launch(hash_, stream, &args);
  }

  bool has_guard() const override { return guard_ != nullptr; }

  CUresult guard_batch(CUstream stream, std::span<const GuardJob> jobs, CUdeviceptr flags) override {
    kernels::GuardBatchArgs args{};
    if (guard_ == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
    if (!fill_guard_args(jobs, flags, args)) return CUDA_ERROR_INVALID_VALUE;
    return launch(guard_, stream, &args);
  }

 private:
  template <class Args>
  CUresult launch(CUfunction fn, CUstream stream, Args* args) {
    void* params[] = {args};
    return api_.cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, stream, params, nullptr);
  }

  DriverApi api_;  // a copy: the caller's table need not outlive us
  LoadedModule module_;
  CUfunction decode_ = nullptr, decode_batch_ = nullptr, hash_ = nullptr, encode_ = nullptr, guard_ = nullptr;
};

}  // namespace

std::string find_sim_module_path() {
  if (const char* env = std::getenv("NEUZIP_SIM_MODULE"); env != nullptr && *env != '\0') return env;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&find_sim_module_path), &info) == 0 || info.dli_fname == nullptr) return {};
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path here = fs::weakly_canonical(fs::path(info.dli_fname), ec).parent_path();
  for (const fs::path& dir : {here, here / ".." / "kernels" / "sim", here / ".." / ".." / "kernels" / "sim"}) {
    fs::path candidate = dir / kModuleFile;
    if (fs::exists(candidate, ec)) return fs::weakly_canonical(candidate, ec).string();
  }
  return {};
}

std::unique_ptr<DeviceCodec> create_sim_codec(const DriverApi& api, std::string& error) {
  std::string path = find_sim_module_path();
  if (path.empty()) {
    error = fmt::format("simulator codec module {} not found (set NEUZIP_SIM_MODULE)", kModuleFile);
    return nullptr;
  }
  nzsim_module_ref ref{};
  std::memcpy(ref.magic, NZSIM_MODULE_REF_MAGIC, sizeof(ref.magic));
  if (path.size() >= sizeof(ref.path)) {
    error = fmt::format("simulator module path too long: {}", path);
    return nullptr;
  }
  std::memcpy(ref.path, path.c_str(), path.size() + 1);
  CUmodule module = nullptr;
  CUresult r = api.cuModuleLoadData(&module, &ref);
  if (r != CUDA_SUCCESS) {
    error = fmt::format("cannot load simulator module {}: {}", path, describe(api, r));
    return nullptr;
  }
  auto codec = std::make_unique<SimCodec>(api, module);
  if (codec->init(error) != CUDA_SUCCESS) return nullptr;
  return codec;
}

}  // namespace nz::gpu
