// decode_kernel.cuh: the decode entry point. A persistent grid (sized by the
// host from the SM count): each block validates the header, builds the
// frequency table in shared memory once, and its warps stride over chunks.
#pragma once

#include "decode.cuh"
#include "kernel_abi.h"

namespace nz::kernels {

struct DecodeShared {
  SharedFreqTable table;
  alignas(16) uint16_t rings[kDecodeWarpsPerBlock][kRingWords];
  unsigned long long header_hash;
  uint32_t any_rans;
};

// Block 0 checks what needs the whole chunk table: the header checksum
// (nzhash of [0, payload_offset) with the checksum field, words 12 and 13,
// read as zero), that the frequency table is present exactly when some chunk
// is rANS coded, and that an empty buffer has no payload.
__device__ inline void verify_buffer_tables(DecodeShared& sh, const DecodeContext& ctx) {
  if (threadIdx.x == 0) {
    sh.header_hash = 0;
    sh.any_rans = 0;
  }
  __syncthreads();
  for (uint32_t c = threadIdx.x; c < ctx.h.chunk_count; c += blockDim.x) {
    if (load_chunk_entry(ctx.base, ctx.h.table_bytes, c).kind == 0) atomicExch(&sh.any_rans, 1u);
  }
  const uint32_t* words = reinterpret_cast<const uint32_t*>(ctx.base);
  const uint64_t count = ctx.payload_offset / 4;  // a multiple of 8 bytes
  uint64_t sum = 0;
  for (uint64_t j = threadIdx.x; j < count; j += blockDim.x) {
    uint32_t w = (j == 12 || j == 13) ? 0u : words[j];
    sum += hash_term(j, w);
  }
  sum = warp_sum(sum);
  if ((threadIdx.x & 31u) == 0) atomicAdd(&sh.header_hash, sum);
  __syncthreads();
  if (threadIdx.x == 0) {
    bool bad = sh.header_hash + hash_init(ctx.payload_offset) != ctx.h.header_checksum ||
               (ctx.h.table_bytes != 0) != (sh.any_rans != 0) ||
               (ctx.h.chunk_count == 0 && ctx.h.payload_bytes != 0);
    if (bad) fail_and_trap(ctx.status, NZ_ERR_CORRUPT_HEADER);
  }
}

template <uint32_t kElemBytes, bool kPackedTable, bool kBlocks>
__device__ void decode_chunks(const DecodeContext& ctx, DecodeShared& sh) {
  const uint32_t warp = threadIdx.x / 32;
  uint16_t* ring = sh.rings[warp];
  const uint64_t stride = uint64_t(ctx.blocks) * kDecodeWarpsPerBlock;
  // 64-bit: c + stride must not wrap for chunk counts near 2^32.
  for (uint64_t c = uint64_t(ctx.block) * kDecodeWarpsPerBlock + warp; c < ctx.h.chunk_count; c += stride) {
    decode_chunk<kElemBytes, kPackedTable, kBlocks>(ctx, sh.table, ring, uint32_t(c));
  }
}

template <uint32_t kElemBytes, bool kPackedTable>
__device__ void decode_chunks_for_mode(const DecodeContext& ctx, DecodeShared& sh) {
  if (ctx.h.block_log2) decode_chunks<kElemBytes, kPackedTable, true>(ctx, sh);
  else decode_chunks<kElemBytes, kPackedTable, false>(ctx, sh);
}

// Decodes one buffer with `blocks` blocks, of which the calling one is
// number `block` (a single decode: the grid; a batch: the job's share of it).
__device__ inline void decode_buffer(const DecodeArgs& a, uint32_t block, uint32_t blocks) {
  __shared__ DecodeShared sh;
  DecodeContext ctx{};
  ctx.block = block;
  ctx.blocks = blocks;
  ctx.base = reinterpret_cast<const uint8_t*>(a.src);
  ctx.dst = reinterpret_cast<uint8_t*>(a.dst);
  ctx.status = reinterpret_cast<uint32_t*>(a.status);
  // Alignment contract (the host should check it before launching, see
  // docs/KERNELS.md): src 8-byte aligned (u64 header and chunk-table loads;
  // every section is then 4-byte aligned), dst aligned to the element size.
  if ((a.src & 7u) != 0 || (a.dst & 1u) != 0) fail_and_trap(ctx.status, NZ_ERR_INVALID_ARGUMENT);
  if (a.src_len < NZ_HEADER_BYTES) fail_and_trap(ctx.status, NZ_ERR_TRUNCATED);
  ctx.h = load_header(ctx.base);
  nz_status st = check_header(ctx.h, a.src_len, a.dst_cap);
  if (st != NZ_OK) fail_and_trap(ctx.status, st);
  shape_of(ctx.h.dtype, ctx.shape);
  if ((a.dst & (ctx.shape.elem_bytes - 1u)) != 0) fail_and_trap(ctx.status, NZ_ERR_INVALID_ARGUMENT);
  ctx.dst_word_aligned = (a.dst & 3u) == 0;
  ctx.payload_offset = payload_offset_of(ctx.h.table_bytes, ctx.h.chunk_count);
  if (block == 0) verify_buffer_tables(sh, ctx);
  if (uint64_t(block) * kDecodeWarpsPerBlock >= ctx.h.chunk_count) return;  // nothing for this block
  if (ctx.h.table_bytes != 0) {
    load_freq_table(sh.table, ctx.base + NZ_HEADER_BYTES, ctx.h.table_bytes, ctx.shape.exp_bits, ctx.h.prob_bits,
                    ctx.status);
  }
  const bool packed = ctx.h.prob_bits <= kPackedTableMaxProbBits;
  if (ctx.shape.elem_bytes == 2) {
    if (packed) decode_chunks_for_mode<2, true>(ctx, sh); else decode_chunks_for_mode<2, false>(ctx, sh);
  } else {
    if (packed) decode_chunks_for_mode<4, true>(ctx, sh); else decode_chunks_for_mode<4, false>(ctx, sh);
  }
}

__device__ inline void decode_buffer(const DecodeArgs& a) { decode_buffer(a, blockIdx.x, gridDim.x); }

// One launch for a run of buffers (see DecodeBatchArgs).
__device__ inline void decode_batch(const DecodeBatchArgs& b) {
  if (b.blocks_per_job == 0) return;
  const uint32_t job = blockIdx.x / b.blocks_per_job;
  if (job >= b.count || job >= kMaxDecodeBatch) return;
  const DecodeJob& j = b.jobs[job];
  const DecodeArgs a{j.src, j.src_len, j.dst, j.dst_cap, b.status};
  decode_buffer(a, blockIdx.x % b.blocks_per_job, b.blocks_per_job);
}

}  // namespace nz::kernels
