// emu_kernels_module.cpp: a simulator module (tests/sim/nzsim.h) exporting the
// CUDA kernels under their real names, each running the kernels' own .cuh code
// on the CPU through cuda_emu.h with the launch's grid and block.
//
// With it the *CUDA backend* (src/gpu/cuda_codec.cpp: workspace planning,
// memsets, launch order, grids, argument passing) runs end to end on the
// simulated driver: the GPU test suite loads this module through
// create_cuda_codec_from_image instead of the fatbin. One liberty, for speed
// only: grids are clamped to the blocks that can have work (the decode and
// hash kernels stride over their work, so the result does not depend on it).
#include "emu/cuda_emu.h"
// The kernel building blocks, compiled for the host.
#include "decode_kernel.cuh"
#include "encode.cuh"
#include "guard.cuh"
#include "hash.cuh"
#include "kernel_abi.h"
#include "nzsim.h"

namespace {

using namespace nz::kernels;

template <class Args>
const Args& args_of(const nzsim_launch* l) {
  return *static_cast<const Args*>(l->params[0]);
}

template <class Body>
int run(const nzsim_launch* l, unsigned grid, Body body) {
  const unsigned before = trapped();
  nz::emu::launch(grid, l->block.x, body);
  return trapped() != before ? 1 : 0;  // a trap: CUDA_ERROR_LAUNCH_FAILED
}

int decode(const nzsim_launch* l) {
  const DecodeArgs& a = args_of<DecodeArgs>(l);
  unsigned grid = l->grid.x;
  if (a.src_len >= NZ_HEADER_BYTES && (a.src & 7u) == 0) {
    const uint32_t chunks = reinterpret_cast<const uint32_t*>(a.src)[6];
    grid = std::min<unsigned>(grid, std::max<unsigned>(1, (chunks + kDecodeWarpsPerBlock - 1) / kDecodeWarpsPerBlock));
  }
  return run(l, grid, [&] { decode_buffer(a); });
}

// The whole grid the CUDA backend chose: each job's share strides over its chunks.
int decode_batch_jobs(const nzsim_launch* l) {
  const DecodeBatchArgs& b = args_of<DecodeBatchArgs>(l);
  return run(l, l->grid.x, [&] { decode_batch(b); });
}

int hash(const nzsim_launch* l) {
  const HashArgs& a = args_of<HashArgs>(l);
  return run(l, std::min(l->grid.x, 3u), [&] {
    hash_range(reinterpret_cast<const uint8_t*>(a.data), a.len, reinterpret_cast<uint64_t*>(a.out));
  });
}

// The guard as the CUDA backend launches it: one block per job.
int guard(const nzsim_launch* l) {
  const GuardBatchArgs& b = args_of<GuardBatchArgs>(l);
  return run(l, l->grid.x, [&] { guard_batch(b); });
}

int analyse(const nzsim_launch* l) { return run(l, l->grid.x, [&] { encode_analyse(args_of<EncodeArgs>(l)); }); }
int table(const nzsim_launch* l) { return run(l, l->grid.x, [&] { encode_table(args_of<EncodeArgs>(l)); }); }
int rans(const nzsim_launch* l) { return run(l, l->grid.x, [&] { encode_rans(args_of<EncodeArgs>(l)); }); }
int layout(const nzsim_launch* l) { return run(l, l->grid.x, [&] { encode_layout(args_of<EncodeArgs>(l)); }); }
int emit(const nzsim_launch* l) { return run(l, l->grid.x, [&] { encode_emit(args_of<EncodeArgs>(l)); }); }

const nzsim_param kDecodeParams[] = {{0, sizeof(DecodeArgs)}};
const nzsim_param kDecodeBatchParams[] = {{0, sizeof(DecodeBatchArgs)}};
const nzsim_param kHashParams[] = {{0, sizeof(HashArgs)}};
const nzsim_param kEncodeParams[] = {{0, sizeof(EncodeArgs)}};
const nzsim_param kGuardParams[] = {{0, sizeof(GuardBatchArgs)}};

const nzsim_kernel kKernels[] = {
    {kDecodeKernel, 1, kDecodeParams, decode},
    {kDecodeBatchKernel, 1, kDecodeBatchParams, decode_batch_jobs},
    {kHashKernel, 1, kHashParams, hash},
    {kGuardBatchKernel, 1, kGuardParams, guard},
    {kEncodeAnalyseKernel, 1, kEncodeParams, analyse},
    {kEncodeTableKernel, 1, kEncodeParams, table},
    {kEncodeRansKernel, 1, kEncodeParams, rans},
    {kEncodeLayoutKernel, 1, kEncodeParams, layout},
    {kEncodeEmitKernel, 1, kEncodeParams, emit},
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const nzsim_kernel* NZSIM_MODULE_ENTRY(unsigned* count,
                                                                                       unsigned* abi_version) {
  *count = sizeof(kKernels) / sizeof(kKernels[0]);
  *abi_version = NZSIM_ABI_VERSION;
  return kKernels;
}
