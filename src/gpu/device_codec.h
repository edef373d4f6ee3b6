// device_codec.h: the neuzip codec on a device, behind one interface.
//
// On a GPU this launches the CUDA kernels of kernels/ (a fatbin embedded in the
// library, loaded with cuModuleLoadData). On the simulated driver (tests/sim)
// it loads the host-kernel module that runs the CPU codec (src/codec) as host
// kernels through the same driver calls. Callers do not care which.
//
// Every call only enqueues work on the caller's stream: no host
// synchronisation, no allocation (caller-given workspace), no libcudart.
// Errors of the enqueue itself are returned; errors found by the device
// (corrupt data, checksum mismatch) trap the kernel: the stream's context then
// reports CUDA_ERROR_LAUNCH_FAILED (a GPU __trap(), or a host kernel returning
// non-zero on the simulator), so no later work computes on garbage. The decode
// kernels also write an nz_status to `status_word` (a device u32) before
// trapping, for diagnostics.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "gpu/driver_api.h"
#include "neuzip/neuzip.h"

namespace nz::gpu {

enum class Backend { kCuda, kSimulator };

class DeviceCodec {
 public:
  virtual ~DeviceCodec() = default;

  // Loads the right module into the current context of `api`. Returns null and
  // sets `error` when neither backend can be loaded (an old driver, no kernels
  // for this architecture): the runtime then passes everything through.
  static std::unique_ptr<DeviceCodec> create(const DriverApi& api, std::string& error);

  virtual Backend backend() const = 0;

  // Decode the buffer at `src` (device memory, `src_len` bytes, a complete
  // neuzip buffer whose header the caller has validated with nz_inspect on a
  // host copy) into `dst` (device, `dst_cap` bytes). Verifies every chunk
  // checksum on the device.
  virtual CUresult decode(CUstream stream, CUdeviceptr src, size_t src_len, CUdeviceptr dst,
                          size_t dst_cap, CUdeviceptr status_word) = 0;

  // One buffer of a batched decode (see decode_batch).
  struct DecodeJob {
    CUdeviceptr src;
    size_t src_len;
    CUdeviceptr dst;
    size_t dst_cap;
  };
  // The jobs a single decode_batch launch takes (kernels::kMaxDecodeBatch).
  static constexpr size_t kMaxBatch = 64;
  // Decodes every job in ONE launch (at most kMaxBatch jobs; more is
  // CUDA_ERROR_INVALID_VALUE: the caller splits), as decode() would each:
  // staging a run of ranges costs one launch, not one per range.
  virtual CUresult decode_batch(CUstream stream, std::span<const DecodeJob> jobs, CUdeviceptr status_word) = 0;

  // Workspace the encoder needs for `element_count` elements with `opts`.
  virtual size_t encode_workspace_bytes(uint64_t element_count, const nz_options& opts) const = 0;

  // Encode `element_count` elements at `src` (device) into `dst` (device,
  // capacity `dst_cap` >= nz_compress_bound). Writes the compressed size as a
  // u64 to `out_len` (device). A buffer that does not fit (or a lossy
  // request that cannot be honoured) writes 0 to out_len and does not trap.
  virtual CUresult encode(CUstream stream, CUdeviceptr src, uint64_t element_count,
                          const nz_options& opts, CUdeviceptr dst, size_t dst_cap,
                          CUdeviceptr out_len, CUdeviceptr workspace, size_t workspace_bytes) = 0;

  // nz_hash of `len` bytes at `data` (device), written as a u64 to `out_hash` (device).
  virtual CUresult hash(CUstream stream, CUdeviceptr data, size_t len, CUdeviceptr out_hash) = 0;

  // The change test of ranges whose staging pages are handed over on the
  // device (kernel_abi.h, GuardBatchArgs): per job, hash the bytes; if they
  // differ from `expected` (kGuardCompare), or if the encode handover's
  // encoding is not whole (kGuardEncoded*), copy them to `rescue`; write the
  // job's flag. One launch for up to kMaxGuardBatch jobs. `flags`, each
  // `rescue` and `result` are device addresses of host memory
  // (cuMemHostGetDevicePointer).
  struct GuardJob {
    CUdeviceptr data;
    size_t len;
    uint64_t expected;
    CUdeviceptr rescue;
    // Encode handovers only (mode != kGuardCompare).
    CUdeviceptr store = 0;
    size_t store_cap = 0;
    CUdeviceptr result = 0;
    size_t header_cap = 0;
    uint32_t mode = 0;
  };
  static constexpr size_t kMaxGuardBatch = 32;
  static constexpr uint32_t kGuardCompare = 0, kGuardEncoded = 1, kGuardEncodedOrSame = 2;
  // A job's flag once the guard ran (kernel_abi.h kGuardUnchanged / kGuardRescued / kGuardStored).
  static constexpr uint32_t kGuardUnchanged = 2;
  static constexpr uint32_t kGuardRescued = 1;
  static constexpr uint32_t kGuardStored = 3;
  // Where an encode handover's header copy starts in its result words.
  static constexpr size_t kGuardResultHeader = 16;
  // Whether the loaded module has the guard kernel (an older module has not:
  // then pages are never handed over, the runtime waits on the host instead).
  virtual bool has_guard() const { return false; }
  virtual CUresult guard_batch(CUstream, std::span<const GuardJob>, CUdeviceptr /*flags*/) {
    return CUDA_ERROR_NOT_SUPPORTED;
  }
};

}  // namespace nz::gpu
