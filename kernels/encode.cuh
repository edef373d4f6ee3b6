// encode.cuh: the GPU encoder, five launches on one stream (host: cuda_codec.cpp).
//
//  1. analyse  (warp per chunk): lossy quantisation and block scales into the
//     workspace, the chunk checksum of the bytes a decoder will produce, and
//     the exponent histogram (shared-memory counts, then one global atomic per
//     symbol per block).
//  2. table    (one block): counts -> frequencies summing to 2^P, the same
//     normalisation as the CPU encoder (src/codec/freq_table.cpp), with the
//     greedy rounding fix parallelised as a block-wide arg-min per step.
//  3. rans     (warp per chunk): rANS encode in reverse decode order. Each step
//     the pushing lanes are found with a ballot; lane l's word goes after the
//     words of the lanes above it (the encoder visits lanes 31..0). Words are
//     written backwards from the end of the chunk's scratch, so the finished
//     stream already sits in decode order at its tail. A stream that outgrows
//     the packed size stops early: the chunk is packed instead.
//  4. layout   (one block): chunk kinds and sizes -> offsets (block scan),
//     header, frequency table, chunk table, header checksum, out_len.
//  5. emit     (warp per chunk): payloads (states, scales, bit-packed raw bits
//     and exponents via warp OR-reductions, the word stream) and zero padding.
#pragma once

#include <stdint.h>

#include "bitpack.cuh"
#include "format.cuh"
#include "kernel_abi.h"
#include "lossy.cuh"
#include "nzhash.cuh"

namespace nz::kernels {

struct EncodeView {
  const EncodeArgs& a;
  DtypeShape shape{};
  __device__ explicit EncodeView(const EncodeArgs& args) : a(args) { shape_of(args.dtype, shape); }
  __device__ uint8_t* ws(uint64_t off) const { return reinterpret_cast<uint8_t*>(a.ws.base + off); }
  __device__ EncodeControl& control() const { return *reinterpret_cast<EncodeControl*>(ws(a.ws.control_off)); }
  __device__ EncodeChunkInfo& info(uint32_t c) const {
    return reinterpret_cast<EncodeChunkInfo*>(ws(a.ws.chunk_info_off))[c];
  }
  __device__ uint32_t chunk_n(uint32_t c) const {
    uint64_t first = uint64_t(c) * a.chunk_elems;
    return uint32_t(min(uint64_t(a.chunk_elems), a.element_count - first));
  }
  __device__ bool lossy() const { return a.mode == NZ_LOSSY; }
  // The element bits that get stored (quantised in lossy mode).
  __device__ uint32_t stored(uint64_t i) const {
    const uint8_t* src = lossy() ? ws(a.ws.values_off) : reinterpret_cast<const uint8_t*>(a.src);
    return shape.elem_bytes == 2 ? uint32_t(reinterpret_cast<const uint16_t*>(src)[i])
                                 : reinterpret_cast<const uint32_t*>(src)[i];
  }
  __device__ uint8_t* chunk_scales(uint32_t c) const {
    uint64_t per_chunk = a.block_log2 ? (a.chunk_elems >> a.block_log2) : 0;
    return ws(a.ws.scales_off) + per_chunk * c;
  }
  __device__ uint32_t symbol_of(uint32_t bits) const {
    return (bits >> shape.man_bits) & ((1u << shape.exp_bits) - 1u);
  }
  __device__ uint32_t raw_of(uint32_t bits) const {
    uint32_t M = shape.man_bits, K = a.kept_bits;
    uint32_t sign = (bits >> (shape.exp_bits + M)) & 1u;
    return (sign << K) | ((bits & ((1u << M) - 1u)) >> (M - K));
  }
};

__device__ inline uint32_t load_element(const uint8_t* p, uint64_t i, uint32_t bytes) {
  return bytes == 2 ? uint32_t(reinterpret_cast<const uint16_t*>(p)[i]) : reinterpret_cast<const uint32_t*>(p)[i];
}

__device__ inline void store_elem(uint8_t* p, uint64_t i, uint32_t bytes, uint32_t v) {
  if (bytes == 2) reinterpret_cast<uint16_t*>(p)[i] = uint16_t(v);
  else reinterpret_cast<uint32_t*>(p)[i] = v;
}

// ---- 1. analyse -------------------------------------------------------------

// The quantised element t of chunk c (written by this warp just before).
__device__ inline uint32_t decoded_source(const EncodeView& v, uint64_t first, uint32_t t, uint32_t n) {
  return t < n ? load_element(v.ws(v.a.ws.values_off), first + t, v.shape.elem_bytes) : 0u;
}

// Block scale codes of one chunk (lossy with blocks): magnitudes as u32 bits
// order like the floats, so a max over bits is the max over values.
__device__ inline void compute_block_scales(const EncodeView& v, uint32_t c, uint32_t n) {
  const uint32_t lane = threadIdx.x & 31u;
  const uint32_t bl = v.a.block_log2, B = 1u << bl;
  const uint8_t* src = reinterpret_cast<const uint8_t*>(v.a.src);
  const uint64_t first = uint64_t(c) * v.a.chunk_elems;
  uint8_t* scales = v.chunk_scales(c);
  uint32_t running = 0;
  for (uint32_t base = 0; base < n; base += 32) {
    uint32_t t = base + lane;
    uint32_t mag = 0;
    if (t < n) {
      float f = element_to_f32(load_element(src, first + t, v.shape.elem_bytes), v.a.dtype);
      if (isfinite(f)) mag = __float_as_uint(f) & 0x7FFFFFFFu;
    }
    if (B <= 32) {
      for (uint32_t d = 1; d < B; d <<= 1) mag = max(mag, __shfl_xor_sync(0xFFFFFFFFu, mag, d));
      if ((lane & (B - 1)) == 0 && t < n) scales[t >> bl] = uint8_t(scale_code(__uint_as_float(mag)));
    } else {
      running = max(running, __reduce_max_sync(0xFFFFFFFFu, mag));
      bool block_ends = ((base + 32) & (B - 1)) == 0 || base + 32 >= n;
      if (block_ends) {
        if (lane == 0) scales[base >> bl] = uint8_t(scale_code(__uint_as_float(running)));
        running = 0;
      }
    }
  }
  __syncwarp();
}

__device__ inline void encode_analyse(const EncodeArgs& a) {
  __shared__ uint32_t hist[256];
  EncodeView v(a);
  for (uint32_t i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
  __syncthreads();
  const uint32_t lane = threadIdx.x & 31u;
  const uint32_t c = blockIdx.x * kEncodeWarpsPerBlock + threadIdx.x / 32;
  if (c < a.chunk_count) {
    const uint32_t n = v.chunk_n(c);
    const uint64_t first = uint64_t(c) * a.chunk_elems;
    const uint32_t bytes = v.shape.elem_bytes;
    const uint8_t* src = reinterpret_cast<const uint8_t*>(a.src);
    if (v.lossy() && a.block_log2) compute_block_scales(v, c, n);
    const uint8_t* scales = v.chunk_scales(c);
    bool unrepresentable = false;
    uint32_t block_running = 0;
    uint64_t hash = 0;
    for (uint32_t base = 0; base < n; base += 32) {
      uint32_t t = base + lane;
      uint32_t decoded = 0, symbol = 0;
      if (t < n) {
        uint32_t bits = load_element(src, first + t, bytes);
        decoded = bits;
        if (v.lossy()) {
          float x = element_to_f32(bits, a.dtype);
          float s = 1.0f;
          if (a.block_log2) {
            s = scale_value(scales[t >> a.block_log2]);
            // Non-finite elements are not divided (a NaN keeps its sign).
            if (isfinite(x)) x = __fdiv_rn(x, s);
          }
          uint32_t q;
          unrepresentable |= !round_k(x, a.dtype, a.kept_bits, q);
          store_elem(v.ws(a.ws.values_off), first + t, bytes, q);
          bits = q;
          decoded = q;
          if (a.block_log2) {
            float d = element_to_f32(q, a.dtype);
            if (isfinite(d)) decoded = f32_to_element(__fmul_rn(d, s), a.dtype);
          }
        }
        symbol = v.symbol_of(bits);
      }
      // Exponents concentrate on a few values: one shared atomic per distinct
      // symbol in the warp instead of up to 32 colliding ones.
      const uint32_t same = __match_any_sync(0xFFFFFFFFu, t < n ? symbol : 0xFFFFFFFFu);
      if (t < n && lane == uint32_t(__ffs(same) - 1)) atomicAdd(&hist[symbol], uint32_t(__popc(same)));
      if (v.lossy() && a.block_log2) {
        // A block whose quantised elements are all zero or non-finite decodes
        // the same with any scale: the format stores 0 for it (as the CPU does,
        // and decoders insist on it).
        BlockReport r = block_any(t < n && finite_nonzero(decoded_source(v, first, t, n), v.shape), base, n,
                                  a.block_log2, block_running);
        if (r.report && !r.any) v.chunk_scales(c)[r.block] = 0;
      }
      if (bytes == 2) {
        uint32_t upper = __shfl_down_sync(0xFFFFFFFFu, decoded, 1);
        if ((lane & 1u) == 0 && t < n) hash += hash_term(t / 2, decoded | (upper << 16));
      } else if (t < n) {
        hash += hash_term(t, decoded);
      }
    }
    hash = warp_sum(hash);
    if (lane == 0) v.info(c).checksum = hash + hash_init(uint64_t(n) * bytes);
    if (__any_sync(0xFFFFFFFFu, unrepresentable) && lane == 0) atomicExch(&v.control().failed, 1u);
  }
  __syncthreads();
  unsigned long long* global_hist = reinterpret_cast<unsigned long long*>(v.ws(a.ws.hist_off));
  for (uint32_t i = threadIdx.x; i < (1u << v.shape.exp_bits); i += blockDim.x) {
    if (hist[i]) atomicAdd(global_hist + i, (unsigned long long)hist[i]);
  }
}

// ---- 2. table ---------------------------------------------------------------

__device__ inline void encode_table(const EncodeArgs& a) {
  __shared__ uint32_t freq[256];
  __shared__ double best_cost[256];
  __shared__ int best_sym[256];
  __shared__ long long sum_sh;
  EncodeView v(a);
  EncodeControl& ctl = v.control();
  const uint32_t alphabet = 1u << v.shape.exp_bits;
  const unsigned long long* hist = reinterpret_cast<const unsigned long long*>(v.ws(a.ws.hist_off));
  uint32_t* fc_out = reinterpret_cast<uint32_t*>(v.ws(a.ws.table_off));
  const uint32_t s = threadIdx.x;  // blockDim == 256: one thread per symbol
  const uint64_t target = 1ull << a.prob_bits;
  const uint64_t count = s < alphabet ? hist[s] : 0;
  // Total of all counts = element_count (every element has a symbol).
  const uint64_t total = a.element_count;
  if (ctl.failed || total == 0) {
    if (s < 256) fc_out[s] = 0;
    if (s == 0) ctl.present = 0;
    return;
  }
  uint32_t f = 0;
  if (count) {
    double scaled = double(count) * double(target) / double(total);
    uint64_t r = uint64_t(scaled + 0.5);
    if (r < 1) r = 1;
    if (r > target) r = target;
    f = uint32_t(r);
  }
  freq[s] = f;
  if (s == 0) sum_sh = 0;
  __syncthreads();
  atomicAdd(reinterpret_cast<unsigned long long*>(&sum_sh), (unsigned long long)f);
  __syncthreads();
  // Greedy rounding fix: each step changes the symbol whose change costs the
  // fewest bits; ties go to the lowest symbol (the CPU loop keeps the first).
  while (sum_sh != (long long)target) {
    const bool too_big = sum_sh > (long long)target;
    double cost = 0;
    bool eligible = count != 0 && !(too_big && freq[s] <= 1);
    if (eligible) {
      double fd = freq[s], cd = double(count);
      cost = too_big ? cd * log2(fd / (fd - 1)) : -cd * log2((fd + 1) / fd);
    }
    best_cost[s] = cost;
    best_sym[s] = eligible ? int(s) : -1;
    __syncthreads();
    for (uint32_t stride = 128; stride > 0; stride >>= 1) {
      if (s < stride) {
        int o = best_sym[s + stride];
        if (o >= 0 && (best_sym[s] < 0 || best_cost[s + stride] < best_cost[s] ||
                       (best_cost[s + stride] == best_cost[s] && o < best_sym[s]))) {
          best_sym[s] = o;
          best_cost[s] = best_cost[s + stride];
        }
      }
      __syncthreads();
    }
    if (s == 0) {
      int b = best_sym[0];
      if (too_big) { --freq[b]; --sum_sh; } else { ++freq[b]; ++sum_sh; }
    }
    __syncthreads();
  }
  // Exclusive prefix of the frequencies (256 entries, one warp is plenty).
  if (s == 0) {
    uint32_t cum = 0, present = 0;
    for (uint32_t k = 0; k < alphabet; ++k) {
      fc_out[k] = freq[k] | (cum << 16);
      cum += freq[k];
      present += freq[k] != 0;
    }
    for (uint32_t k = alphabet; k < 256; ++k) fc_out[k] = 0;
    ctl.present = present;
  }
}

// ---- 3. rans ----------------------------------------------------------------

__device__ inline void encode_rans(const EncodeArgs& a) {
  __shared__ uint32_t fc[256];
  EncodeView v(a);
  const uint32_t* fc_global = reinterpret_cast<const uint32_t*>(v.ws(a.ws.table_off));
  for (uint32_t i = threadIdx.x; i < 256; i += blockDim.x) fc[i] = fc_global[i];
  __syncthreads();
  const uint32_t lane = threadIdx.x & 31u;
  const uint32_t c = blockIdx.x * kEncodeWarpsPerBlock + threadIdx.x / 32;
  if (c >= a.chunk_count || v.control().failed) return;
  EncodeChunkInfo& info = v.info(c);
  const uint32_t n = v.chunk_n(c);
  const uint64_t first = uint64_t(c) * a.chunk_elems;
  const uint32_t R = 1 + a.kept_bits, E = v.shape.exp_bits, P = a.prob_bits;
  const ChunkSections sec = sections_of(n, a.block_log2, R, E);
  const uint32_t packed_size = sec.scale_bytes + sec.exp_bytes + sec.raw_bytes;
  const uint32_t cap = uint32_t(a.ws.scratch_words);
  uint16_t* scratch = reinterpret_cast<uint16_t*>(v.ws(a.ws.words_off)) + uint64_t(c) * cap;
  bool coded = v.control().present != 0;
  uint32_t x = kRansL, pushed = 0;
  if (coded) {
    const uint32_t steps = (n + 31) / 32;
    for (uint32_t step = steps; step-- > 0;) {
      uint32_t t = step * 32 + lane;
      bool active = t < n;
      uint32_t f = 1, cum = 0;
      if (active) {
        uint32_t e = fc[v.symbol_of(v.stored(first + t))];
        f = e & 0xFFFFu;
        cum = e >> 16;
      }
      bool push = active && uint64_t(x) >= (uint64_t(f) << (32 - P));
      uint32_t mask = __ballot_sync(0xFFFFFFFFu, push);
      if (push) {
        uint32_t above = lane == 31 ? 0u : (mask & ~((2u << lane) - 1u));
        uint32_t k = pushed + __popc(above);
        if (k < cap) scratch[cap - 1 - k] = uint16_t(x & 0xFFFFu);
        x >>= 16;
      }
      pushed += __popc(mask);
      if (pushed > cap) { coded = false; break; }
      if (active) x = ((x / f) << P) + (x % f) + cum;
    }
  }
  uint32_t rans_size = 4 * kLanes + sec.scale_bytes + sec.raw_bytes + 2 * pushed;
  coded = coded && rans_size < packed_size;
  info.states[lane] = x;
  if (lane == 0) {
    info.kind = coded ? 0u : 1u;
    info.words = coded ? pushed : 0u;
    info.size = coded ? rans_size : packed_size;
  }
}

// ---- 4. layout --------------------------------------------------------------

__device__ inline void encode_layout(const EncodeArgs& a) {
  __shared__ uint32_t warp_totals[kLayoutThreads / 32];
  __shared__ unsigned long long carry, header_hash;
  __shared__ uint32_t any_rans;
  EncodeView v(a);
  EncodeControl& ctl = v.control();
  uint64_t* out_len = reinterpret_cast<uint64_t*>(a.out_len);
  if (ctl.failed) {
    if (threadIdx.x == 0) *out_len = 0;
    return;
  }
  const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid / 32;
  if (tid == 0) { carry = 0; any_rans = 0; header_hash = 0; }
  __syncthreads();
  // Payload offsets: exclusive scan of the 16-byte-padded sizes, 256 at a time.
  for (uint32_t base = 0; base < a.chunk_count; base += kLayoutThreads) {
    uint32_t c = base + tid;
    uint32_t padded = 0;
    if (c < a.chunk_count) {
      padded = uint32_t(round_up(v.info(c).size, 16));
      if (v.info(c).kind == 0) any_rans = 1;
    }
    uint32_t incl = padded;
    for (int d = 1; d < 32; d <<= 1) {
      uint32_t o = __shfl_up_sync(0xFFFFFFFFu, incl, d);
      if (lane >= uint32_t(d)) incl += o;
    }
    if (lane == 31) warp_totals[warp] = incl;
    __syncthreads();
    uint64_t before = carry;
    for (uint32_t w = 0; w < warp; ++w) before += warp_totals[w];
    if (c < a.chunk_count) v.info(c).offset = before + incl - padded;
    __syncthreads();
    if (tid == kLayoutThreads - 1) carry = before + incl;
    __syncthreads();
  }
  const uint64_t payload_bytes = carry;
  const uint32_t alphabet = 1u << v.shape.exp_bits;
  const uint32_t bitmap_bytes = alphabet / 8;
  const uint32_t table_bytes = any_rans ? uint32_t(round_up(bitmap_bytes + 2ull * ctl.present, 8)) : 0u;
  const uint64_t payload_offset = payload_offset_of(table_bytes, a.chunk_count);
  const uint64_t total = payload_offset + payload_bytes;
  if (total > a.dst_cap) {
    if (tid == 0) { *out_len = 0; ctl.failed = 2; }
    return;
  }
  uint8_t* dst = reinterpret_cast<uint8_t*>(a.dst);
  uint32_t* w32 = reinterpret_cast<uint32_t*>(dst);
  uint64_t* w64 = reinterpret_cast<uint64_t*>(dst);
  if (tid == 0) {
    ctl.table_bytes = table_bytes;
    w32[0] = kMagic;
    w32[1] = NZ_FORMAT_VERSION | (a.dtype << 16) | (a.mode << 24);
    w64[1] = a.element_count;
    w32[4] = a.chunk_elems;
    w32[5] = a.kept_bits | (a.block_log2 << 8) | (a.prob_bits << 16) | (kLanes << 24);
    w32[6] = a.chunk_count;
    w32[7] = table_bytes;
    w64[4] = payload_bytes;
    w64[5] = total;
    w64[6] = 0;
    w64[7] = 0;
  }
  if (table_bytes) {
    const uint32_t* fc = reinterpret_cast<const uint32_t*>(v.ws(a.ws.table_off));
    uint8_t* table = dst + NZ_HEADER_BYTES;
    if (tid < bitmap_bytes) {
      uint32_t byte = 0;
      for (uint32_t b = 0; b < 8; ++b) byte |= ((fc[tid * 8 + b] & 0xFFFFu) != 0 ? 1u : 0u) << b;
      table[tid] = uint8_t(byte);
    }
    if (tid < alphabet) {
      uint32_t f = fc[tid] & 0xFFFFu;
      if (f) {
        uint32_t index = 0;  // present symbols below this one
        for (uint32_t k = 0; k < tid; ++k) index += (fc[k] & 0xFFFFu) != 0;
        table[bitmap_bytes + 2 * index] = uint8_t(f);
        table[bitmap_bytes + 2 * index + 1] = uint8_t(f >> 8);
      }
    }
    for (uint32_t b = bitmap_bytes + 2 * ctl.present + tid; b < table_bytes; b += kLayoutThreads) table[b] = 0;
  }
  for (uint32_t c = tid; c < a.chunk_count; c += kLayoutThreads) {
    const EncodeChunkInfo& info = v.info(c);
    uint64_t* entry = reinterpret_cast<uint64_t*>(dst + NZ_HEADER_BYTES + table_bytes + uint64_t(kChunkEntryBytes) * c);
    entry[0] = info.offset;
    entry[1] = uint64_t(info.size) | (uint64_t(info.kind) << 32);
    entry[2] = info.checksum;
  }
  __threadfence_block();
  __syncthreads();
  uint64_t sum = 0;
  for (uint64_t j = tid; j < payload_offset / 4; j += kLayoutThreads) sum += hash_term(j, w32[j]);
  sum = warp_sum(sum);
  if (lane == 0) atomicAdd(&header_hash, (unsigned long long)sum);
  __syncthreads();
  if (tid == 0) {
    w64[6] = header_hash + hash_init(payload_offset);
    *out_len = total;
  }
}

// ---- 5. emit ----------------------------------------------------------------

// Bit-packs `width`-bit values produced by `value_of(t)` for t < n into words.
template <class ValueOf>
__device__ inline void emit_packed(uint32_t* out, uint32_t n, uint32_t width, ValueOf value_of) {
  const uint32_t lane = threadIdx.x & 31u;
  const uint64_t words = (uint64_t(n) * width + 31) / 32;
  for (uint32_t base = 0; base < n; base += 32) {
    uint32_t t = base + lane;
    uint32_t value = t < n ? value_of(t) : 0u;
    uint32_t word = pack_warp_group(value, width);
    uint64_t index = uint64_t(base / 32) * width + lane;
    if (lane < width && index < words) out[index] = word;
  }
}

__device__ inline void encode_emit(const EncodeArgs& a) {
  EncodeView v(a);
  EncodeControl& ctl = v.control();
  const uint32_t lane = threadIdx.x & 31u;
  const uint32_t c = blockIdx.x * kEncodeWarpsPerBlock + threadIdx.x / 32;
  if (c >= a.chunk_count || ctl.failed) return;
  const EncodeChunkInfo& info = v.info(c);
  const uint32_t n = v.chunk_n(c);
  const uint64_t first = uint64_t(c) * a.chunk_elems;
  const uint32_t R = 1 + a.kept_bits, E = v.shape.exp_bits;
  const ChunkSections sec = sections_of(n, a.block_log2, R, E);
  const uint64_t payload_offset = payload_offset_of(ctl.table_bytes, a.chunk_count);
  uint8_t* payload = reinterpret_cast<uint8_t*>(a.dst) + payload_offset + info.offset;
  const bool rans = info.kind == 0;
  uint8_t* p = payload;
  if (rans) {
    reinterpret_cast<uint32_t*>(p)[lane] = info.states[lane];
    p += 4 * kLanes;
  }
  if (sec.scale_bytes) {
    const uint8_t* scales = v.chunk_scales(c);
    for (uint32_t b = lane; b < sec.scale_bytes; b += 32) p[b] = b < sec.blocks ? scales[b] : 0;
    p += sec.scale_bytes;
  }
  // The last word of each packed section also carries its zero padding.
  if (!rans) {
    emit_packed(reinterpret_cast<uint32_t*>(p), n, E, [&](uint32_t t) { return v.symbol_of(v.stored(first + t)); });
    p += sec.exp_bytes;
  }
  emit_packed(reinterpret_cast<uint32_t*>(p), n, R, [&](uint32_t t) { return v.raw_of(v.stored(first + t)); });
  p += sec.raw_bytes;
  if (rans) {
    const uint32_t cap = uint32_t(a.ws.scratch_words);
    const uint16_t* stream = reinterpret_cast<const uint16_t*>(v.ws(a.ws.words_off)) + uint64_t(c) * cap + (cap - info.words);
    uint16_t* out = reinterpret_cast<uint16_t*>(p);
    for (uint32_t i = lane; i < info.words; i += 32) out[i] = stream[i];
  }
  // Zero padding up to the next 16-byte boundary.
  uint32_t padded = uint32_t(round_up(info.size, 16));
  if (info.size + lane < padded) payload[info.size + lane] = 0;
}

}  // namespace nz::kernels
