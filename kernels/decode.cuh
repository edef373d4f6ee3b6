// decode.cuh: one warp decodes one chunk (docs/FORMAT.md §3-4).
//
// Lane l owns rANS state l; a step decodes elements [32 step, 32 step + 32).
// Renormalisation reads come from the chunk's u16 word stream in lane order:
// a ballot of the lanes that need a word and a popc prefix give each lane its
// word. The stream is staged through a per-warp shared-memory ring filled in
// large coalesced u32 loads, so the serial state chain waits on shared memory
// rather than on global memory. The exponent, the raw sign/mantissa bits and
// the block scale are merged into the final dtype and written in the same
// pass, and the chunk checksum of the written bytes is accumulated on the fly
// and reduced with shuffles at the end.
#pragma once

#include <stdint.h>

#include "bitpack.cuh"
#include "device_status.cuh"
#include "format.cuh"
#include "freq_table.cuh"
#include "lossy.cuh"
#include "nzhash.cuh"

namespace nz::kernels {

inline constexpr uint32_t kRingWords = 1024;  // u16 words per warp (2 KiB; static shared memory stays < 48 KiB)

struct DecodeContext {
  const uint8_t* base;
  uint8_t* dst;
  uint32_t* status;
  Header h;
  DtypeShape shape;
  uint64_t payload_offset;
  bool dst_word_aligned;  // dst % 4 == 0: 2-byte dtypes store whole u32 words
  uint32_t block;         // this block's number among the `blocks` decoding this buffer
  uint32_t blocks;
};

// Copies words [from, min(from + kRingWords / 2, count)) of the stream into the ring.
__device__ inline void refill_ring(uint16_t* ring, const uint16_t* words, uint32_t from, uint32_t count) {
  const uint32_t lane = threadIdx.x & 31u;
  // The slots refilled now were read by other lanes some steps ago: order
  // those reads before these writes (write-after-read across lanes).
  __syncwarp();
  uint32_t end = min(from + kRingWords / 2, count);
  // `from` is even and the stream is 4-byte aligned, so pairs load as u32.
  const uint32_t* pairs = reinterpret_cast<const uint32_t*>(words + from);
  uint32_t full_pairs = (end - from) / 2;
  for (uint32_t i = lane; i < full_pairs; i += 32) {
    uint32_t v = __ldg(pairs + i);
    uint32_t pos = (from + 2 * i) & (kRingWords - 1);
    *reinterpret_cast<uint32_t*>(ring + pos) = v;
  }
  if (((end - from) & 1u) && lane == 0) ring[(end - 1) & (kRingWords - 1)] = __ldg(words + end - 1);
  __syncwarp();
}

// Writes this step's elements and accumulates the nzhash terms of the written
// words into `hash`.
//
// fp32: one word per lane, lane t hashes word t.
// 2-byte dtypes: word j holds elements 2j and 2j+1. Two shuffles give lane
// l (mod 16) the word of elements 2l, 2l+1 of this step; lanes 0-15 keep the
// words of even steps and lanes 16-31 those of odd steps in `pending`, and
// every second step all 32 lanes hash one word each (word index
// (step & ~1) * 16 + lane): the 64-bit mix runs once per two steps instead of
// on half the lanes every step. Stores: with a word-aligned dst the owning
// half-warp stores whole u32 words (a lone last element as a u16, the output
// ends there); with dst % 4 == 2 every lane stores its own u16.
template <uint32_t kElemBytes>
__device__ inline void store_and_hash(uint8_t* out, bool word_aligned, uint32_t step, uint32_t steps, uint32_t n,
                                      uint32_t value, uint32_t& pending, uint64_t& hash) {
  const uint32_t lane = threadIdx.x & 31u;
  const uint32_t t = step * 32 + lane;
  if constexpr (kElemBytes == 2) {
    const uint32_t lo = __shfl_sync(0xFFFFFFFFu, value, (2 * lane) & 31u);
    const uint32_t hi = __shfl_sync(0xFFFFFFFFu, value, (2 * lane + 1) & 31u);
    const uint32_t word = lo | (hi << 16);
    const bool mine = (lane >> 4) == (step & 1u);
    if (mine) pending = word;
    if (word_aligned) {
      const uint32_t first = step * 32 + 2 * (lane & 15u);  // first element of the word
      if (mine && first < n) {
        if (first + 1 < n) reinterpret_cast<uint32_t*>(out)[first / 2] = word;
        else reinterpret_cast<uint16_t*>(out)[first] = uint16_t(lo);
      }
    } else if (t < n) {
      reinterpret_cast<uint16_t*>(out)[t] = uint16_t(value);
    }
    if ((step & 1u) || step + 1 == steps) {
      // After an even last step lanes 16-31 hold a word already hashed; its
      // index puts it past the end, so the bound below skips it.
      const uint32_t j = (step & ~1u) * 16 + lane;
      if (2 * j < n) hash += hash_term(j, pending);
    }
  } else {
    if (t >= n) return;
    reinterpret_cast<uint32_t*>(out)[t] = value;
    hash += hash_term(t, value);
  }
}

// Checks that the bits of the last word of a packed section past `bits` are 0.
__device__ inline bool packed_tail_clear(const uint32_t* section, uint64_t bits) {
  if ((bits & 31) == 0) return true;
  return (section[bits >> 5] >> (bits & 31)) == 0;
}

// kBlocks: lossy with block scales (block_log2 > 0); the lossless loop then
// carries no block code at all.
template <uint32_t kElemBytes, bool kPackedTable, bool kBlocks>
__device__ void decode_chunk(const DecodeContext& ctx, const SharedFreqTable& table, uint16_t* ring, uint32_t c) {
  const uint32_t lane = threadIdx.x & 31u;
  const Header& h = ctx.h;
  const uint64_t first = uint64_t(c) * h.chunk_elems;
  const uint32_t n = uint32_t(min(uint64_t(h.chunk_elems), h.element_count - first));
  const uint32_t E = ctx.shape.exp_bits, M = ctx.shape.man_bits, K = h.kept_bits, R = 1 + K;
  const ChunkSections sec = sections_of(n, h.block_log2, R, E);
  const ChunkEntry e = load_chunk_entry(ctx.base, h.table_bytes, c);

  // Chunk table rules: offsets follow from the previous entry, payload in bounds.
  uint64_t expected = 0;
  if (c > 0) {
    ChunkEntry prev = load_chunk_entry(ctx.base, h.table_bytes, c - 1);
    expected = round_up(prev.offset + prev.size, 16);
  }
  // As the CPU: padded payloads stay inside payload_bytes and the last one ends it.
  // Offset and size are bounded before any sum is formed: the previous entry
  // is checked by another warp, concurrently, so `expected` may come from
  // garbage and a wrapped offset + size must not pass for a small one.
  if (e.offset != expected || e.kind > 1 || e.offset > h.payload_bytes || e.size > h.payload_bytes - e.offset) {
    fail_and_trap(ctx.status, NZ_ERR_CORRUPT_HEADER);
  }
  const uint64_t padded_end = round_up(e.offset + e.size, 16);
  if (padded_end > h.payload_bytes || (c + 1 == h.chunk_count && padded_end != h.payload_bytes)) {
    fail_and_trap(ctx.status, NZ_ERR_CORRUPT_HEADER);
  }
  const uint8_t* payload = ctx.base + ctx.payload_offset + e.offset;
  // Padding up to the next payload (or the end) must be zero.
  if (e.offset + e.size + lane < padded_end && payload[e.size + lane] != 0) fail_and_trap(ctx.status, NZ_ERR_CORRUPT_CHUNK);

  const bool rans = e.kind == 0;
  uint32_t prefix = rans ? 4u * kLanes : 0u;
  const uint8_t* scales = payload + prefix;
  const uint32_t* exps = reinterpret_cast<const uint32_t*>(scales + sec.scale_bytes);
  const uint32_t* raws = reinterpret_cast<const uint32_t*>(scales + sec.scale_bytes + (rans ? 0 : sec.exp_bytes));
  const uint16_t* words = reinterpret_cast<const uint16_t*>(reinterpret_cast<const uint8_t*>(raws) + sec.raw_bytes);
  uint32_t word_count = 0;
  if (rans) {
    uint64_t fixed = uint64_t(prefix) + sec.scale_bytes + sec.raw_bytes;
    if (h.table_bytes == 0 || e.size < fixed || ((e.size - fixed) & 1u)) fail_and_trap(ctx.status, NZ_ERR_CORRUPT_HEADER);
    word_count = uint32_t((e.size - fixed) / 2);
  } else if (uint64_t(e.size) != uint64_t(sec.scale_bytes) + sec.exp_bytes + sec.raw_bytes) {
    fail_and_trap(ctx.status, NZ_ERR_CORRUPT_HEADER);
  }
  // Zero padding inside the bit-packed sections and after the scale bytes.
  if (lane == 0) {
    bool ok = packed_tail_clear(raws, uint64_t(n) * R) && (rans || packed_tail_clear(exps, uint64_t(n) * E));
    for (uint32_t b = sec.blocks; b < sec.scale_bytes; ++b) ok &= scales[b] == 0;
    if (!ok) fail_and_trap(ctx.status, NZ_ERR_CORRUPT_CHUNK);
  }

  uint32_t x = 0;
  if (rans) {
    x = reinterpret_cast<const uint32_t*>(payload)[lane];
    if (x < kRansL) fail_and_trap(ctx.status, NZ_ERR_CORRUPT_CHUNK);
  }
  const uint32_t prob_bits = h.prob_bits;
  const uint32_t slot_mask = (1u << prob_bits) - 1u;
  const uint32_t raw_mask = (1u << K) - 1u;
  uint32_t w = 0, loaded = 0, block_running = 0, pending = 0;
  uint64_t hash = 0;
  uint8_t* out = ctx.dst + first * kElemBytes;
  const uint32_t steps = (n + 31) / 32;
  for (uint32_t step = 0; step < steps; ++step) {
    const uint32_t t = step * 32 + lane;
    const bool active = t < n;
    uint32_t symbol = 0;
    if (rans) {
      if (w + 32 > loaded && loaded < word_count) {
        refill_ring(ring, words, loaded, word_count);
        loaded = min(loaded + kRingWords / 2, word_count);
      }
      bool need = false;
      if (active) {
        uint32_t slot = x & slot_mask;
        uint32_t freq, bias;
        if constexpr (kPackedTable) {
          uint32_t s = table.slots.packed[slot];
          symbol = s & 0xFFu;
          bias = (s >> 8) & 0xFFFu;
          freq = (s >> 20) + 1u;
        } else {
          symbol = table.slots.symbol[slot];
          uint32_t fc = table.fc[symbol];
          freq = fc & 0xFFFFu;
          bias = slot - (fc >> 16);
        }
        x = freq * (x >> prob_bits) + bias;
        need = x < kRansL;
      }
      uint32_t mask = __ballot_sync(0xFFFFFFFFu, need);
      if (need) {
        uint32_t pos = w + __popc(mask & ((1u << lane) - 1u));
        if (pos >= word_count) fail_and_trap(ctx.status, NZ_ERR_CORRUPT_CHUNK);
        x = (x << 16) | ring[pos & (kRingWords - 1)];
      }
      w += __popc(mask);
    } else if (active) {
      symbol = unpack_value(exps, t, E);
    }
    uint32_t value = 0;
    bool stored_nonzero = false;
    if (active) {
      uint32_t raw = unpack_value(raws, t, R);
      uint32_t sign = raw >> K;
      value = (sign << (E + M)) | (symbol << M) | ((raw & raw_mask) << (M - K));
      if constexpr (kBlocks) {
        uint32_t q = scales[t >> h.block_log2];
        // bf16 block maxima have 7 fraction bits: their scale codes are even.
        if (h.dtype == NZ_BF16 && (q & 1u)) fail_and_trap(ctx.status, NZ_ERR_CORRUPT_CHUNK);
        stored_nonzero = finite_nonzero(value, ctx.shape);
        float d = element_to_f32(value, h.dtype);
        if (isfinite(d)) value = f32_to_element(__fmul_rn(d, scale_value(q)), h.dtype);
      }
    }
    if constexpr (kBlocks) {
      // A non-zero scale needs a finite non-zero element in its block.
      BlockReport r = block_any(stored_nonzero, step * 32, n, h.block_log2, block_running);
      if (r.report && !r.any && scales[r.block] != 0) fail_and_trap(ctx.status, NZ_ERR_CORRUPT_CHUNK);
    }
    store_and_hash<kElemBytes>(out, ctx.dst_word_aligned, step, steps, n, value, pending, hash);
  }
  if (rans) {
    bool bad = x != kRansL || w != word_count;
    if (__any_sync(0xFFFFFFFFu, bad)) {
      if (lane == 0) fail_and_trap(ctx.status, NZ_ERR_CORRUPT_CHUNK);
      return;
    }
  }
  hash = warp_sum(hash);
  if (lane == 0 && hash + hash_init(uint64_t(n) * kElemBytes) != e.checksum) fail_and_trap(ctx.status, NZ_ERR_CHECKSUM);
}

}  // namespace nz::kernels
