// decoder.h: whole-buffer inspection and decompression (nz_inspect and
// nz_decompress), with the instruction-set level selectable for tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "codec/rans.h"
#include "neuzip/neuzip.h"

namespace nz::codec {

nz_status inspect(const void* src, size_t src_len, nz_info* info);

nz_status decompress(const void* src, size_t src_len, void* dst, size_t dst_cap, uint32_t threads,
                     CpuLevel level);

}  // namespace nz::codec
