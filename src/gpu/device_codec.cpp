// device_codec.cpp: picks the backend for the current context's device. The
// simulated driver names its devices "nzsim..."; everything else is a GPU.
#include <fmt/format.h>

#include <cstring>

#include "gpu/backends.h"
#include "gpu/device_codec.h"

namespace nz::gpu {

std::unique_ptr<DeviceCodec> DeviceCodec::create(const DriverApi& api, std::string& error) {
  CUdevice device = 0;
  CUresult r = api.cuCtxGetDevice(&device);
  if (r != CUDA_SUCCESS) {
    error = fmt::format("no current context: {}", describe(api, r));
    return nullptr;
  }
  char name[256] = {};
  r = api.cuDeviceGetName(name, sizeof(name) - 1, device);
  if (r != CUDA_SUCCESS) {
    error = fmt::format("cuDeviceGetName failed: {}", describe(api, r));
    return nullptr;
  }
  if (std::strncmp(name, "nzsim", 5) == 0) return create_sim_codec(api, error);
  return create_cuda_codec(api, device, error);
}

static_assert(DeviceCodec::kMaxBatch == kernels::kMaxDecodeBatch);
static_assert(sizeof(kernels::DecodeBatchArgs) <= 4096, "kernel parameters are limited to 4 KiB");
static_assert(DeviceCodec::kGuardUnchanged == kernels::kGuardUnchanged &&
              DeviceCodec::kGuardRescued == kernels::kGuardRescued && DeviceCodec::kGuardStored == kernels::kGuardStored);
static_assert(DeviceCodec::kGuardCompare == kernels::kGuardCompare &&
              DeviceCodec::kGuardEncoded == kernels::kGuardEncoded &&
              DeviceCodec::kGuardEncodedOrSame == kernels::kGuardEncodedOrSame);
static_assert(DeviceCodec::kMaxGuardBatch == kernels::kMaxGuardBatch &&
              DeviceCodec::kGuardResultHeader == kernels::kGuardResultHeader);
static_assert(sizeof(kernels::GuardBatchArgs) <= 4096, "kernel parameters are limited to 4 KiB");

bool fill_batch_args(std::span<const DeviceCodec::DecodeJob> jobs, CUdeviceptr status_word,
                     kernels::DecodeBatchArgs& out) {
  if (jobs.empty() || jobs.size() > DeviceCodec::kMaxBatch) return false;
  out.count = static_cast<uint32_t>(jobs.size());
  out.status = status_word;
  for (size_t i = 0; i < jobs.size(); ++i) out.jobs[i] = {jobs[i].src, jobs[i].src_len, jobs[i].dst, jobs[i].dst_cap};
  return true;
}

bool fill_guard_args(std::span<const DeviceCodec::GuardJob> jobs, CUdeviceptr flags, kernels::GuardBatchArgs& out) {
  if (jobs.empty() || jobs.size() > DeviceCodec::kMaxGuardBatch || flags == 0) return false;
  out.count = static_cast<uint32_t>(jobs.size());
  out.reserved = 0;
  out.flags = flags;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const auto& j = jobs[i];
    if (j.mode > DeviceCodec::kGuardEncodedOrSame || j.store_cap > UINT32_MAX || j.header_cap > UINT32_MAX) return false;
    if (j.mode != DeviceCodec::kGuardCompare && (j.store == 0 || j.result == 0)) return false;
    out.jobs[i] = {j.data,
                   j.len,
                   j.expected,
                   j.rescue,
                   j.store,
                   j.result,
                   static_cast<uint32_t>(j.store_cap),
                   static_cast<uint32_t>(j.header_cap),
                   j.mode,
                   0};
  }
  return true;
}

}  // namespace nz::gpu
