// rans.h: the 32-lane interleaved rANS of docs/FORMAT.md section 4.
#pragma once

#include <cstdint>

#include "codec/cpu_level.h"
#include "codec/format.h"
#include "codec/freq_table.h"

namespace nz::codec {

// Encodes `n` symbols. Words are written backwards from the end of
// `word_buf` (capacity `word_cap`); on success the stream is the last
// `*word_count` words of the buffer. Returns false when more than `word_cap`
// words would be needed (the caller then packs the chunk instead).
// rans_encode picks the fastest implementation `level` allows; all give
// identical output.
bool rans_encode(CpuLevel level, const uint8_t* symbols, uint64_t n, const FreqTable& table,
                 uint32_t states[kLanes], uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count);
bool rans_encode_scalar(const uint8_t* symbols, uint64_t n, const FreqTable& table, uint32_t states[kLanes],
                        uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count);
// AVX-512 (F, BW, VL, DQ, VBMI2) and AVX2; fall back to scalar where not built.
bool rans_encode_avx2(const uint8_t* symbols, uint64_t n, const FreqTable& table, uint32_t states[kLanes],
                      uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count);
bool rans_encode_avx512(const uint8_t* symbols, uint64_t n, const FreqTable& table, uint32_t states[kLanes],
                        uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count);

// Decoder position in one chunk's word stream.
struct RansDecoder {
  uint32_t x[kLanes];
  const uint8_t* words;  // u16 little-endian words, possibly unaligned
  uint64_t word_count;
  uint64_t pos;
};

// Decodes the next `count` symbols into `out` with the implementation of
// `level` (an unsupported level is not checked here: callers pass
// cpu_level() or a level they checked). The decoder must sit at a step
// boundary; `count` is a multiple of 32 except on the last call of a chunk.
// Returns false when the stream runs out (corrupt chunk).
bool rans_decode(CpuLevel level, RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count);

bool rans_decode_scalar(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count);
bool rans_decode_avx2(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count);
bool rans_decode_avx512(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count);

// Fused decoders. bf16 rANS chunks: decode whole steps straight into bf16
// output, merging the raw values (R = kept_bits + 1 bits each, kept_bits
// <= 7), and without block scaling also add up the output's nzhash terms,
// so the output is written once and hashed while in registers. The caller
// finishes the chunk (the rest of the stream, the scaling and hashing of
// [final_done, n), the end checks). The AVX2 one also scales blocks of 32
// elements or more (final_done then ends at a block boundary; the AVX-512
// one leaves all scaling to the caller, final_done = 0). Lossless fp16 and fp32 rANS chunks:
// the same contract with K = M and no blocks (so final_done == done).
// Each needs its instruction set (AVX-512: also VBMI/VBMI2,
// cpu_has_avx512_vbmi()) and a packed table; without a packed table a job
// does nothing (done = 0).
struct FusedParams {
  uint32_t kept_bits = 7;
  uint32_t block_log2 = 0;
};
struct FusedJob {
  RansDecoder* dec = nullptr;         // at the start of the chunk's stream
  const uint8_t* raw = nullptr;       // the raw value section
  const uint8_t* scales = nullptr;    // the block scale codes (lossy with blocks)
  const uint8_t* end = nullptr;       // the end of the chunk's payload: no load reaches past it
  uint8_t* dst = nullptr;
  uint64_t count = 0;                 // elements of the chunk
  // Results: dst[0, done) holds merged K-bit elements; dst[0, final_done)
  // is final output (scaled where blocks are; a multiple of the block
  // size), with its nzhash terms (word index from 0) in hash_sum. corrupt:
  // the decoder found the chunk corrupt (an invalid block scale code, or a
  // stream that ran out); the other results are then meaningless.
  uint64_t done = 0;
  uint64_t final_done = 0;
  uint64_t hash_sum = 0;
  bool corrupt = false;
};
void rans_decode_bf16_avx512(const DecodeTable& table, const FusedParams& params, FusedJob& job);
void rans_decode_wide_avx512(const DecodeTable& table, nz_dtype dtype, FusedJob& job);
// Two chunks at once, their streams interleaved for instruction-level
// parallelism; the same results as two single calls.
void rans_decode_bf16_avx512_pair(const DecodeTable& table, const FusedParams& params, FusedJob& a,
                                  FusedJob& b);
void rans_decode_wide_avx512_pair(const DecodeTable& table, nz_dtype dtype, FusedJob& a, FusedJob& b);
void rans_decode_bf16_avx2(const DecodeTable& table, const FusedParams& params, FusedJob& job);
// fp16 and fp32 with any K (lossy: merge only with blocks, final_done = 0).
void rans_decode_wide_avx2(const DecodeTable& table, nz_dtype dtype, const FusedParams& params, FusedJob& job);

}  // namespace nz::codec
