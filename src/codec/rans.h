// rans.h: the 32-lane interleaved rANS of docs/FORMAT.md section 4.
#pragma once

#include <cstdint>

#include "codec/format.h"
#include "codec/freq_table.h"

namespace nz::codec {

// Encodes `n` symbols. Words are written backwards from the end of
// `word_buf` (capacity `word_cap`); on success the stream is the last
// `*word_count` words of the buffer. Returns false when more than `word_cap`
// words would be needed (the caller then packs the chunk instead).
// rans_encode picks the fastest implementation; all give identical output.
bool rans_encode(const uint8_t* symbols, uint64_t n, const FreqTable& table, uint32_t states[kLanes],
                 uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count);
bool rans_encode_scalar(const uint8_t* symbols, uint64_t n, const FreqTable& table, uint32_t states[kLanes],
                        uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count);
// AVX-512 (F, BW, VL, DQ, VBMI2); falls back to scalar where not built.
bool rans_encode_avx512_supported();
bool rans_encode_avx512(const uint8_t* symbols, uint64_t n, const FreqTable& table, uint32_t states[kLanes],
                        uint16_t* word_buf, uint64_t word_cap, uint64_t* word_count);

// Decoder position in one chunk's word stream.
struct RansDecoder {
  uint32_t x[kLanes];
  const uint8_t* words;  // u16 little-endian words, possibly unaligned
  uint64_t word_count;
  uint64_t pos;
};

enum class RansImpl { kScalar, kAvx2, kAvx512 };

// Best implementation this CPU supports.
RansImpl best_rans_impl();
bool rans_impl_supported(RansImpl impl);

// Decodes the next `count` symbols into `out`. The decoder must sit at a step
// boundary; `count` is a multiple of 32 except on the last call of a chunk.
// Returns false when the stream runs out (corrupt chunk).
bool rans_decode(RansImpl impl, RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count);

bool rans_decode_scalar(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count);
bool rans_decode_avx2(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count);
bool rans_decode_avx512(RansDecoder& dec, const DecodeTable& table, uint8_t* out, uint64_t count);

// bf16 rANS chunks, AVX-512 with VBMI/VBMI2: decodes whole steps of up to
// `count` elements straight into bf16 output `dst`, merging the raw values
// (section at `raw`, R = kept_bits + 1 bits each; kept_bits <= 7), and when
// `hash_sum` is not null sets it to the sum of the output's nzhash terms
// (word index of dst[0] is `first_word`). Stops early, at a step boundary,
// when fewer than 32 stream words remain; returns the number of elements
// decoded, which the caller finishes with the generic path. Lossy outputs
// are the K-bit elements, before block scaling. Requires
// rans_bf16_fused_supported().
bool rans_bf16_fused_supported();
uint64_t rans_decode_bf16_avx512(RansDecoder& dec, const DecodeTable& table, const uint8_t* raw, uint32_t kept_bits,
                                 uint8_t* dst, uint64_t count, uint64_t first_word, uint64_t* hash_sum);

}  // namespace nz::codec
