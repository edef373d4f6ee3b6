#include "codec/encoder.h"

#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <vector>

#include "codec/chunk_codec.h"
#include "codec/format.h"
#include "codec/freq_table.h"
#include "codec/hash.h"
#include "codec/lossy.h"
#include "codec/threading.h"

namespace nz::codec {

namespace {

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

template <typename Enum>
uint32_t enum_bits(const Enum& e) {
  std::underlying_type_t<Enum> v;
  std::memcpy(&v, &e, sizeof v);
  return static_cast<uint32_t>(v);
}

uint32_t log2_of(uint64_t v) {
  uint32_t r = 0;
  while ((uint64_t{1} << r) < v) ++r;
  return r;
}

// Largest frequency table: full bitmap plus a u16 per symbol, padded to 8.
uint64_t max_table_bytes(const DtypeLayout& l) {
  uint32_t alphabet = 1u << l.exponent_bits;
  return round_up(alphabet / 8 + 2ull * alphabet, 8);
}

}  // namespace

nz_status resolve_options(const nz_options* opts, EncodeOptions& out) {
  if (opts == nullptr) return NZ_ERR_INVALID_ARGUMENT;
  // A caller may put any number into the enum fields: read them as integers
  // (loading an out-of-range enum value is undefined behaviour in C++).
  const uint32_t dtype = enum_bits(opts->dtype);
  const uint32_t mode = enum_bits(opts->mode);
  const DtypeLayout l = dtype_layout(dtype);
  if (!l.valid) return NZ_ERR_INVALID_ARGUMENT;
  if (mode != NZ_LOSSLESS && mode != NZ_LOSSY) return NZ_ERR_INVALID_ARGUMENT;
  out = EncodeOptions{};
  out.dtype = static_cast<nz_dtype>(dtype);
  out.mode = static_cast<nz_mode>(mode);
  out.threads = opts->threads;
  if (opts->chunk_elems != 0) {
    if (!is_power_of_two(opts->chunk_elems) || opts->chunk_elems < (1u << kMinChunkLog2) ||
        opts->chunk_elems > (1u << kMaxChunkLog2)) {
      return NZ_ERR_INVALID_ARGUMENT;
    }
    out.chunk_elems = opts->chunk_elems;
  }
  if (opts->prob_bits != 0) {
    if (opts->prob_bits < kMinProbBits || opts->prob_bits > kMaxProbBits) return NZ_ERR_INVALID_ARGUMENT;
    out.prob_bits = opts->prob_bits;
  }
  if (mode == NZ_LOSSLESS) {
    out.kept_bits = l.mantissa_bits;
  } else {
    if (opts->kept_bits >= l.mantissa_bits) return NZ_ERR_INVALID_ARGUMENT;
    out.kept_bits = opts->kept_bits;
    if (opts->block_size != 0) {
      if (!is_power_of_two(opts->block_size) || opts->block_size < 2 || opts->block_size > out.chunk_elems) {
        return NZ_ERR_INVALID_ARGUMENT;
      }
      out.block_log2 = log2_of(opts->block_size);
    }
  }
  return NZ_OK;
}

size_t compress_bound(uint64_t element_count, const EncodeOptions& opts) {
  const DtypeLayout l = dtype_layout(opts.dtype);
  const uint64_t chunks = (element_count + opts.chunk_elems - 1) / opts.chunk_elems;
  uint64_t bound = NZ_HEADER_BYTES + max_table_bytes(l) + uint64_t{kChunkEntryBytes} * chunks;
  if (chunks > 0) {
    const uint64_t full = round_up(make_chunk_layout(l, opts.chunk_elems, opts.kept_bits, opts.block_log2).packed_size(), kPayloadAlign);
    const uint64_t last_n = element_count - (chunks - 1) * opts.chunk_elems;
    const uint64_t last = round_up(make_chunk_layout(l, last_n, opts.kept_bits, opts.block_log2).packed_size(), kPayloadAlign);
    bound += (chunks - 1) * full + last;
  }
  return static_cast<size_t>(bound);
}

nz_status compress(const void* src, uint64_t element_count, const EncodeOptions& opts, void* dst,
                   size_t dst_cap, size_t* dst_len) {
  if (dst_len == nullptr || (element_count > 0 && src == nullptr)) return NZ_ERR_INVALID_ARGUMENT;
  const DtypeLayout l = dtype_layout(opts.dtype);
  const uint64_t chunks64 = (element_count + opts.chunk_elems - 1) / opts.chunk_elems;
  if (chunks64 > UINT32_MAX || element_count > (uint64_t{1} << 54)) return NZ_ERR_INVALID_ARGUMENT;
  const uint32_t chunks = static_cast<uint32_t>(chunks64);
  const auto* in = static_cast<const uint8_t*>(src);
  const uint64_t chunk_bytes = uint64_t{opts.chunk_elems} * l.bytes;
  auto chunk_n = [&](uint64_t c) {
    uint64_t rest = element_count - c * opts.chunk_elems;
    return rest < opts.chunk_elems ? rest : uint64_t{opts.chunk_elems};
  };
  const uint32_t workers = effective_threads(opts.threads, chunks);
  const CpuLevel level = cpu_level();  // one level for the whole call

  try {
    // 1. Lossy: round every element to K bits (and pick block scales) first;
    //    everything after codes those elements exactly as lossless would.
    std::vector<uint8_t> quantized;
    std::vector<uint8_t> scales;
    const uint8_t* elements = in;
    const uint64_t block_elems = opts.block_log2 > 0 ? (uint64_t{1} << opts.block_log2) : 0;
    const uint64_t blocks_per_chunk = block_elems ? opts.chunk_elems / block_elems : 0;
    if (opts.mode == NZ_LOSSY) {
      quantized.resize(element_count * l.bytes);
      scales.resize(blocks_per_chunk * chunks);
      elements = quantized.data();
    }

    // 2. Per chunk: quantise (lossy), count symbols, checksum the decoded bytes.
    std::vector<std::array<uint64_t, 256>> counts(chunks);
    std::vector<uint64_t> checksums(chunks);
    std::mutex status_mutex;
    nz_status status = NZ_OK;
    auto fail = [&](nz_status st) {
      std::lock_guard<std::mutex> lock(status_mutex);
      if (status == NZ_OK) status = st;
      return false;
    };
    parallel_for(workers, chunks, [&](uint64_t c) {
      try {
        const uint64_t n = chunk_n(c);
        const uint8_t* x = in + c * chunk_bytes;
        counts[c].fill(0);
        if (opts.mode == NZ_LOSSY) {
          uint8_t* q = quantized.data() + c * chunk_bytes;
          uint8_t* sc = scales.data() + c * blocks_per_chunk;
          if (nz_status st = quantize_chunk(x, n, l, opts.kept_bits, opts.block_log2, q, sc, level); st != NZ_OK) {
            return fail(st);
          }
          count_symbols(q, n, l, counts[c].data(), level);
          if (opts.block_log2 > 0) {
            // One buffer per thread: a fresh chunk-sized vector per chunk
            // costs an mmap and page faults each time.
            thread_local std::vector<uint8_t> decoded;
            decoded.assign(q, q + n * l.bytes);
            dequantize_chunk(decoded.data(), n, l, opts.block_log2, sc, level);
            checksums[c] = nzhash(decoded.data(), n * l.bytes, level);
          } else {
            checksums[c] = nzhash(q, n * l.bytes, level);
          }
        } else {
          count_symbols(x, n, l, counts[c].data(), level);
          checksums[c] = nzhash(x, n * l.bytes, level);
        }
        return true;
      } catch (const std::bad_alloc&) {
        return fail(NZ_ERR_NO_MEMORY);
      }
    });
    if (status != NZ_OK) return status;

    // 3. One frequency table for the buffer.
    std::array<uint64_t, 256> total{};
    for (const auto& cc : counts) {
      for (int s = 0; s < 256; ++s) total[s] += cc[s];
    }
    const uint32_t alphabet = 1u << l.exponent_bits;
    FreqTable table;
    const bool can_code = element_count > 0;
    if (can_code) table = normalize_frequencies(total, alphabet, opts.prob_bits);

    // 4. Per chunk payloads, each encoded straight into a slot of its
    //    largest size after room for the largest table: the layout of
    //    compress_bound. In `dst` when it has that room (no per-chunk
    //    buffers to allocate, fill and copy), else in one scratch buffer.
    ChunkEncodeParams params;
    params.layout = l;
    params.kept_bits = opts.kept_bits;
    params.block_log2 = opts.block_log2;
    params.table = can_code ? &table : nullptr;
    params.level = level;
    std::vector<uint64_t> slot(chunks + 1, 0);
    for (uint32_t c = 0; c < chunks; ++c) {
      slot[c + 1] = slot[c] + round_up(chunk_payload_capacity(l, chunk_n(c), opts.kept_bits, opts.block_log2), kPayloadAlign);
    }
    const uint64_t slot_base = NZ_HEADER_BYTES + max_table_bytes(l) + uint64_t{kChunkEntryBytes} * chunks;
    std::unique_ptr<uint8_t[]> spill;
    uint8_t* work = static_cast<uint8_t*>(dst);
    if (dst == nullptr || dst_cap < slot_base + slot[chunks]) {
      spill.reset(new uint8_t[slot_base + slot[chunks]]);
      work = spill.get();
    }
    std::vector<ChunkEntry> entries(chunks);
    parallel_for(workers, chunks, [&](uint64_t c) {
      try {
        ChunkSource cs;
        cs.elements = elements + c * chunk_bytes;
        cs.scales = opts.block_log2 > 0 ? scales.data() + c * blocks_per_chunk : nullptr;
        cs.n = chunk_n(c);
        cs.checksum = checksums[c];
        thread_local ChunkEncodeScratch scratch;  // keeps its capacity from chunk to chunk
        encode_chunk(params, cs, scratch, work + slot_base + slot[c], entries[c]);
        return true;
      } catch (const std::bad_alloc&) {
        return fail(NZ_ERR_NO_MEMORY);
      }
    });
    if (status != NZ_OK) return status;

    // 5. Layout and assembly.
    uint32_t coded = 0;
    uint64_t offset = 0;
    for (uint32_t c = 0; c < chunks; ++c) {
      entries[c].offset = offset;
      offset = round_up(offset + entries[c].size, kPayloadAlign);
      coded += entries[c].kind == static_cast<uint32_t>(ChunkKind::kRans);
    }
    Header h;
    h.dtype = static_cast<uint8_t>(opts.dtype);
    h.mode = static_cast<uint8_t>(opts.mode);
    h.element_count = element_count;
    h.chunk_elems = opts.chunk_elems;
    h.kept_bits = static_cast<uint8_t>(opts.kept_bits);
    h.block_log2 = static_cast<uint8_t>(opts.block_log2);
    h.prob_bits = static_cast<uint8_t>(opts.prob_bits);
    h.chunk_count = chunks;
    h.table_bytes = coded > 0 ? static_cast<uint32_t>(table.serialized_bytes()) : 0;
    h.payload_bytes = offset;
    h.total_bytes = h.payload_offset() + h.payload_bytes;
    if (dst == nullptr || h.total_bytes > dst_cap) return NZ_ERR_DST_TOO_SMALL;

    // Payloads move down to their final offsets in chunk order. A final
    // offset is never above the slot (the table and payloads are at most
    // their largest sizes), so no move overwrites a payload still to be moved.
    auto* out = static_cast<uint8_t*>(dst);
    uint8_t* payload_base = out + h.payload_offset();
    for (uint32_t c = 0; c < chunks; ++c) {
      uint8_t* p = payload_base + entries[c].offset;
      std::memmove(p, work + slot_base + slot[c], entries[c].size);
      const uint64_t end = c + 1 < chunks ? entries[c + 1].offset : h.payload_bytes;
      std::memset(p + entries[c].size, 0, end - entries[c].offset - entries[c].size);
    }
    if (h.table_bytes > 0) write_freq_table(table, out + NZ_HEADER_BYTES);
    for (uint32_t c = 0; c < chunks; ++c) {
      write_chunk_entry(entries[c], out + NZ_HEADER_BYTES + h.table_bytes + uint64_t{kChunkEntryBytes} * c);
    }
    write_header(h, out);
    h.header_checksum = header_checksum_of(out, h.payload_offset());
    write_header(h, out);
    *dst_len = h.total_bytes;
    return NZ_OK;
  } catch (const std::bad_alloc&) {
    return NZ_ERR_NO_MEMORY;
  }
}

}  // namespace nz::codec
