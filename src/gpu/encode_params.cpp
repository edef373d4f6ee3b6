#include "gpu/encode_params.h"

#include <fmt/format.h>

#include <bit>

namespace nz::gpu {
namespace {

constexpr uint64_t kAlign = 256;

uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

bool is_pow2(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace

bool resolve_encode_params(uint64_t element_count, const nz_options& opts, kernels::EncodeArgs& args,
                           std::string& error) {
  args = kernels::EncodeArgs{};
  uint32_t man_bits = 0;
  switch (opts.dtype) {
    case NZ_BF16: man_bits = 7; break;
    case NZ_FP16: man_bits = 10; break;
    case NZ_FP32: man_bits = 23; break;
    default: error = fmt::format("unknown dtype {}", static_cast<int>(opts.dtype)); return false;
  }
  if (opts.mode != NZ_LOSSLESS && opts.mode != NZ_LOSSY) {
    error = fmt::format("unknown mode {}", static_cast<int>(opts.mode));
    return false;
  }
  const uint32_t chunk = opts.chunk_elems ? opts.chunk_elems : NZ_DEFAULT_CHUNK_ELEMS;
  if (!is_pow2(chunk) || chunk < (1u << 10) || chunk > (1u << 22)) {
    error = fmt::format("chunk_elems {} is not a power of two in [2^10, 2^22]", chunk);
    return false;
  }
  const uint32_t prob = opts.prob_bits ? opts.prob_bits : NZ_DEFAULT_PROB_BITS;
  if (prob < 8 || prob > 15) {
    error = fmt::format("prob_bits {} outside [8, 15]", prob);
    return false;
  }
  uint32_t kept = man_bits, block_log2 = 0;
  if (opts.mode == NZ_LOSSY) {
    if (opts.kept_bits >= man_bits) {
      error = fmt::format("lossy kept_bits {} must be below {}", opts.kept_bits, man_bits);
      return false;
    }
    kept = opts.kept_bits;
    if (opts.block_size != 0) {
      if (!is_pow2(opts.block_size) || opts.block_size < 2 || opts.block_size > chunk) {
        error = fmt::format("block_size {} is not a power of two in [2, chunk_elems]", opts.block_size);
        return false;
      }
      block_log2 = static_cast<uint32_t>(std::countr_zero(opts.block_size));
    }
  }
  const uint64_t chunks = (element_count + chunk - 1) / chunk;
  if (chunks > UINT32_MAX) {
    error = "too many chunks";
    return false;
  }
  args.element_count = element_count;
  args.dtype = opts.dtype;
  args.mode = opts.mode;
  args.kept_bits = kept;
  args.block_log2 = block_log2;
  args.chunk_elems = chunk;
  args.prob_bits = prob;
  args.chunk_count = static_cast<uint32_t>(chunks);
  args.threads = opts.threads;
  return true;
}

size_t plan_encode_workspace(kernels::EncodeArgs& args) {
  const uint32_t exp_bits = args.dtype == NZ_FP16 ? 5 : 8;
  const uint32_t elem_bytes = args.dtype == NZ_FP32 ? 4 : 2;
  const uint64_t chunks = args.chunk_count;
  kernels::EncodeWorkspace& ws = args.ws;
  uint64_t at = 0;
  ws.hist_off = at;
  at = align_up(at + 256 * sizeof(uint64_t));
  ws.table_off = at;
  at = align_up(at + 256 * sizeof(uint32_t));
  ws.control_off = at;
  at = align_up(at + sizeof(kernels::EncodeControl));
  ws.chunk_info_off = at;
  at = align_up(at + chunks * sizeof(kernels::EncodeChunkInfo));
  ws.values_off = at;
  if (args.mode == NZ_LOSSY) at = align_up(at + args.element_count * elem_bytes);
  ws.scales_off = at;
  if (args.block_log2) at = align_up(at + chunks * (args.chunk_elems >> args.block_log2));
  // A stream of more than packed-exponent-bytes / 2 words can never beat packing.
  ws.scratch_words = (uint64_t{args.chunk_elems} * exp_bits + 7) / 8 / 2 + 32;
  ws.words_off = at;
  at = align_up(at + chunks * ws.scratch_words * sizeof(uint16_t));
  return at;
}

size_t encode_workspace_zero_prefix(const kernels::EncodeArgs& args) { return args.ws.chunk_info_off; }

}  // namespace nz::gpu
