// libFuzzer target: arbitrary bytes through nz_inspect and nz_decompress
// (every rANS implementation) into a bounded buffer. Any crash, sanitizer
// report, hang, or disagreement between implementations is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "codec/decoder.h"
#include "codec/format.h"
#include "neuzip/neuzip.h"

namespace {
constexpr uint64_t kMaxOutput = 1u << 22;  // keep each run cheap
}

namespace {

void decode_everywhere(const uint8_t* data, size_t size) {
  nz_info info{};
  nz_status st = nz_inspect(data, size, &info);
  if (st != NZ_OK || info.original_bytes > kMaxOutput) return;
  std::vector<uint8_t> out(info.original_bytes + 1);
  nz_status first = NZ_OK;
  bool have = false;
  for (auto impl : {nz::codec::CpuLevel::kScalar, nz::codec::CpuLevel::kAvx2, nz::codec::CpuLevel::kAvx512}) {
    if (!nz::codec::cpu_level_supported(impl)) continue;
    nz_status s = nz::codec::decompress(data, size, out.data(), info.original_bytes, 1, impl);
    if (have && (s == NZ_OK) != (first == NZ_OK)) std::abort();
    first = s;
    have = true;
  }
  // Too small a destination must be refused, never overrun.
  if (info.original_bytes > 0) {
    (void)nz_decompress(data, size, out.data(), info.original_bytes - 1, 2);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  decode_everywhere(data, size);
  // Mutations rarely keep the header checksum right; a resealed copy lets
  // the fuzzer reach the field, table and chunk checks behind it.
  if (size >= NZ_HEADER_BYTES) {
    std::vector<uint8_t> copy(data, data + size);
    nz::codec::Header h = nz::codec::read_header(copy.data());
    const uint64_t payload_offset = h.payload_offset();
    if (payload_offset <= size) {
      h.header_checksum = nz::codec::header_checksum_of(copy.data(), payload_offset);
      nz::codec::write_header(h, copy.data());
      decode_everywhere(copy.data(), copy.size());
    }
  }
  return 0;
}
