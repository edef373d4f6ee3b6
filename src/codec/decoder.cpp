#include "codec/decoder.h"

#include <mutex>

#include "codec/chunk_codec.h"
#include "codec/format.h"
#include "codec/threading.h"

namespace nz::codec {

nz_status inspect(const void* src, size_t src_len, nz_info* info) {
  if (info == nullptr) return NZ_ERR_INVALID_ARGUMENT;
  ParsedBuffer buf;
  if (nz_status st = parse_buffer(src, src_len, buf); st != NZ_OK) return st;
  const Header& h = buf.header;
  *info = nz_info{};
  info->dtype = static_cast<nz_dtype>(h.dtype);
  info->mode = static_cast<nz_mode>(h.mode);
  info->element_count = h.element_count;
  info->original_bytes = buf.original_bytes();
  info->compressed_bytes = h.total_bytes;
  info->chunk_elems = h.chunk_elems;
  info->chunk_count = h.chunk_count;
  info->kept_bits = h.kept_bits;
  info->block_size = h.block_log2 == 0 ? 0 : (1u << h.block_log2);
  info->prob_bits = h.prob_bits;
  info->coded_chunks = buf.coded_chunks;
  info->packed_chunks = buf.packed_chunks;
  return NZ_OK;
}

nz_status decompress(const void* src, size_t src_len, void* dst, size_t dst_cap, uint32_t threads,
                     CpuLevel level) {
  ParsedBuffer buf;
  if (nz_status st = parse_buffer(src, src_len, buf); st != NZ_OK) return st;
  if (buf.original_bytes() > dst_cap) return NZ_ERR_DST_TOO_SMALL;
  if (buf.header.chunk_count == 0) return NZ_OK;
  if (dst == nullptr) return NZ_ERR_INVALID_ARGUMENT;
  if (!cpu_level_supported(level)) level = CpuLevel::kScalar;

  DecodeTable table;
  if (buf.has_table) build_decode_table(buf.table, table);

  auto* out = static_cast<uint8_t*>(dst);
  const uint64_t chunk_bytes = uint64_t{buf.header.chunk_elems} * buf.layout.bytes;
  // Report the error of the lowest failing chunk, whatever the thread timing.
  std::mutex error_mutex;
  uint64_t first_bad = UINT64_MAX;
  nz_status first_status = NZ_OK;
  auto record = [&](uint64_t c, nz_status st) {
    if (st == NZ_OK) return true;
    std::lock_guard<std::mutex> lock(error_mutex);
    if (c < first_bad) {
      first_bad = c;
      first_status = st;
    }
    return false;
  };
  const uint32_t chunks = buf.header.chunk_count;
  // Jobs of two chunks let the fused decoder interleave two streams; use
  // them unless that would leave threads idle.
  const uint32_t workers = effective_threads(threads, chunks);
  const bool pairs = workers == 1 || chunks >= 4ull * workers;
  const uint64_t per_job = pairs ? 2 : 1;
  auto job = [&](uint64_t j) {
    const uint64_t c = j * per_job;
    if (per_job == 2 && c + 1 < chunks) {
      nz_status st[2];
      decode_chunk_pair(buf, table, static_cast<uint32_t>(c), out + c * chunk_bytes, out + (c + 1) * chunk_bytes,
                        level, st);
      const bool ok0 = record(c, st[0]);
      const bool ok1 = record(c + 1, st[1]);
      return ok0 && ok1;
    }
    return record(c, decode_chunk(buf, table, static_cast<uint32_t>(c), out + c * chunk_bytes, level));
  };
  const uint64_t jobs = (chunks + per_job - 1) / per_job;
  if (workers == 1) {
    for (uint64_t j = 0; j < jobs; ++j) {
      if (!job(j)) break;
    }
  } else {
    parallel_for(workers, jobs, job);
  }
  return first_status;
}

}  // namespace nz::codec
