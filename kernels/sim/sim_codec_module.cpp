// sim_codec_module.cpp: the codec kernels for the simulated driver (tests/sim).
//
// Same kernel names and argument structs as the CUDA kernels (kernel_abi.h),
// so src/gpu launches both the same way. Each host kernel runs the CPU codec
// on the "device" memory (host addresses under the simulator) of one launch.
// Like the CUDA decoder, a failed decode writes its nz_status to the status
// word and traps (returns non-zero); a failed encode writes 0 to out_len.
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernel_abi.h"
#include "neuzip/neuzip.h"
#include "nzsim.h"

namespace {

using nz::kernels::DecodeArgs;
using nz::kernels::DecodeBatchArgs;
using nz::kernels::EncodeArgs;
using nz::kernels::GuardBatchArgs;
using nz::kernels::HashArgs;

template <class T>
T* at(uint64_t address) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(address));
}

template <class Args>
const Args& args_of(const nzsim_launch* launch) {
  return *static_cast<const Args*>(launch->params[0]);
}

// Whether a GPU kernel could reach [address, address + bytes): the
// simulator runs these kernels on the host, where pageable host memory reads
// as well as any; on a GPU it is an illegal address. Every buffer a kernel
// takes is checked (a store in host memory must be page-locked). Asked of the
// simulator's handle (some programs load it RTLD_LOCAL); true without one.
bool reachable(uint64_t address, uint64_t bytes) {
  static const auto accessible = [] {
    void* sim = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    void* f = dlsym(sim != nullptr ? sim : RTLD_DEFAULT, "nzsim_device_accessible");
    return reinterpret_cast<nzsim_device_accessible_fn>(f);
  }();
  if (accessible == nullptr || accessible(at<const void>(address), bytes) != 0) return true;
  std::fprintf(stderr, "nzsim codec module: a kernel would reach pageable host memory at %#llx (%llu bytes)\n",
               static_cast<unsigned long long>(address), static_cast<unsigned long long>(bytes));
  return false;
}

// Decodes one buffer; on failure records the status and returns non-zero
// (a trap: the context reports CUDA_ERROR_LAUNCH_FAILED).
int decode_one(uint64_t src, uint64_t src_len, uint64_t dst, uint64_t dst_cap, uint64_t status) {
  if (!reachable(src, src_len) || !reachable(dst, dst_cap) || (status != 0 && !reachable(status, 4)))
    return NZSIM_KERNEL_ILLEGAL_ADDRESS;
  nz_status st = nz_decompress(at<const void>(src), src_len, at<void>(dst), dst_cap, 1);
  if (st == NZ_OK) return 0;
  if (status != 0) {
    uint32_t* word = at<uint32_t>(status);
    uint32_t expected = 0;
    __atomic_compare_exchange_n(word, &expected, static_cast<uint32_t>(st), false, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
  }
  return 1;
}

int decode_kernel(const nzsim_launch* launch) {
  const DecodeArgs& a = args_of<DecodeArgs>(launch);
  return decode_one(a.src, a.src_len, a.dst, a.dst_cap, a.status);
}

// Like the CUDA batch kernel: every job is decoded (a bad one does not stop
// the others from being attempted; the first failure's status is kept).
int decode_batch_kernel(const nzsim_launch* launch) {
  const DecodeBatchArgs& b = args_of<DecodeBatchArgs>(launch);
  int trapped = 0;
  for (uint32_t i = 0; i < b.count && i < nz::kernels::kMaxDecodeBatch; ++i) {
    const auto& j = b.jobs[i];
    const int rc = decode_one(j.src, j.src_len, j.dst, j.dst_cap, b.status);
    if (rc == NZSIM_KERNEL_ILLEGAL_ADDRESS) return rc;  // the whole kernel faults
    trapped |= rc;
  }
  return trapped;
}

int hash_kernel(const nzsim_launch* launch) {
  const HashArgs& a = args_of<HashArgs>(launch);
  if (!reachable(a.data, a.len) || !reachable(a.out, 8)) return NZSIM_KERNEL_ILLEGAL_ADDRESS;
  *at<uint64_t>(a.out) = nz_hash(at<const void>(a.data), a.len);
  return 0;
}

// The change test before handed-over pages are decoded into (guard.cuh).
int guard_batch_kernel(const nzsim_launch* launch) {
  const GuardBatchArgs& b = args_of<GuardBatchArgs>(launch);
  if (!reachable(b.flags, 4ull * std::min<uint32_t>(b.count, nz::kernels::kMaxGuardBatch)))
    return NZSIM_KERNEL_ILLEGAL_ADDRESS;
  for (uint32_t i = 0; i < b.count && i < nz::kernels::kMaxGuardBatch; ++i) {
    const auto& j = b.jobs[i];
    // Checked where the CUDA kernel touches them (the rescue copy only when changed).
    if (!reachable(j.data, j.len)) return NZSIM_KERNEL_ILLEGAL_ADDRESS;
    if (j.mode != nz::kernels::kGuardCompare && !reachable(j.result, 16)) return NZSIM_KERNEL_ILLEGAL_ADDRESS;
    const uint64_t hash = nz_hash(at<const void>(j.data), j.len);
    bool changed = false;
    uint64_t header = 0;
    if (j.mode == nz::kernels::kGuardCompare) {
      changed = hash != j.expected;
    } else {
      uint64_t* result = at<uint64_t>(j.result);
      result[1] = hash;
      if (j.mode != nz::kernels::kGuardEncodedOrSame || hash != j.expected) {
        if (!reachable(j.result, nz::kernels::kGuardResultHeader + j.header_cap) ||
            !reachable(j.store, std::min<uint64_t>(result[0], j.store_cap)))
          return NZSIM_KERNEL_ILLEGAL_ADDRESS;
        uint8_t* copy = at<uint8_t>(j.result) + nz::kernels::kGuardResultHeader;
        header = nz::kernels::guard_header_bytes(at<const uint8_t>(j.store), result[0], j.store_cap, j.header_cap,
                                                 j.len);
        if (header > 0) {
          // The header checksum (guard.cuh), its own field read as 0; the
          // copy is written only for an encoding adopted.
          constexpr unsigned kAt = nz::kernels::kHeaderChecksumAt;
          std::vector<uint8_t> head(at<const uint8_t>(j.store), at<const uint8_t>(j.store) + header);
          uint64_t expected = 0;
          std::memcpy(&expected, head.data() + kAt, 8);
          std::memset(head.data() + kAt, 0, 8);
          if (nz_hash(head.data(), header) == expected) {
            std::memcpy(head.data() + kAt, &expected, 8);
            std::memcpy(copy, head.data(), header);
          } else {
            header = 0;
          }
        }
        changed = header == 0;
      }
    }
    if (changed) {
      if (!reachable(j.rescue, j.len)) return NZSIM_KERNEL_ILLEGAL_ADDRESS;
      std::memcpy(at<void>(j.rescue), at<const void>(j.data), j.len);
    }
    const uint32_t flag = changed      ? nz::kernels::kGuardRescued
                          : header > 0 ? nz::kernels::kGuardStored
                                       : nz::kernels::kGuardUnchanged;
    __atomic_store_n(at<uint32_t>(b.flags) + i, flag, __ATOMIC_RELEASE);
  }
  return 0;
}

int encode_kernel(const nzsim_launch* launch) {
  const EncodeArgs& a = args_of<EncodeArgs>(launch);
  nz_options opts;
  nz_options_default(&opts, static_cast<nz_dtype>(a.dtype));
  opts.mode = static_cast<nz_mode>(a.mode);
  opts.kept_bits = a.kept_bits;
  opts.block_size = a.block_log2 ? (1u << a.block_log2) : 0u;
  opts.chunk_elems = a.chunk_elems;
  opts.prob_bits = a.prob_bits;
  opts.threads = a.threads;
  if (!reachable(a.src, a.element_count * nz_dtype_size(static_cast<nz_dtype>(a.dtype))) ||
      !reachable(a.dst, a.dst_cap) || !reachable(a.out_len, 8))
    return NZSIM_KERNEL_ILLEGAL_ADDRESS;
  size_t len = 0;
  nz_status st = nz_compress(at<const void>(a.src), a.element_count, &opts, at<void>(a.dst), a.dst_cap, &len);
  *at<uint64_t>(a.out_len) = st == NZ_OK ? len : 0;
  return 0;  // an encode that cannot be honoured is not a device fault
}

const nzsim_param kDecodeParams[] = {{0, sizeof(DecodeArgs)}};
const nzsim_param kDecodeBatchParams[] = {{0, sizeof(DecodeBatchArgs)}};
const nzsim_param kHashParams[] = {{0, sizeof(HashArgs)}};
const nzsim_param kEncodeParams[] = {{0, sizeof(EncodeArgs)}};
const nzsim_param kGuardBatchParams[] = {{0, sizeof(GuardBatchArgs)}};

const nzsim_kernel kKernels[] = {
    {nz::kernels::kDecodeKernel, 1, kDecodeParams, decode_kernel},
    {nz::kernels::kDecodeBatchKernel, 1, kDecodeBatchParams, decode_batch_kernel},
    {nz::kernels::kHashKernel, 1, kHashParams, hash_kernel},
    {nz::kernels::kSimEncodeKernel, 1, kEncodeParams, encode_kernel},
    {nz::kernels::kGuardBatchKernel, 1, kGuardBatchParams, guard_batch_kernel},
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const nzsim_kernel* NZSIM_MODULE_ENTRY(unsigned* count,
                                                                                       unsigned* abi_version) {
  *count = sizeof(kKernels) / sizeof(kKernels[0]);
  *abi_version = NZSIM_ABI_VERSION;
  return kKernels;
}
