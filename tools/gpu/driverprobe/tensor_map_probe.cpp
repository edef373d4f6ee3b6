// tensor_map_probe.cpp: where a Hopper TMA descriptor keeps its global
// address. The runtime must find compressed ranges that kernels reach through
// tensor maps passed by value; if the address sits verbatim in an 8-byte word
// of the descriptor, a parameter-word scan sees it, otherwise only the
// cuTensorMapEncode* hooks can.
#include <fmt/format.h>

#include <cstdint>
#include <cstring>

#include "probes.h"

namespace driverprobe {
namespace {

// A 2-D bf16 tensor of 512 rows x 1024 columns, 64 x 64 boxes, 128-byte swizzle:
// the shape of a GEMM operand tile load.
CUresult encode(const Driver& drv, CUtensorMap& map, CUdeviceptr address) {
  const cuuint64_t dims[2] = {1024, 512};
  const cuuint64_t strides[1] = {1024 * 2};
  const cuuint32_t box[2] = {64, 64};
  const cuuint32_t element_strides[2] = {1, 1};
  std::memset(&map, 0, sizeof map);
  return drv.cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, reinterpret_cast<void*>(address), dims,
                                    strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                    CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

std::string words_equal_to(const CUtensorMap& map, uint64_t value) {
  std::string s = "[";
  for (size_t i = 0; i < sizeof map / 8; ++i) {
    uint64_t w = 0;
    std::memcpy(&w, reinterpret_cast<const unsigned char*>(&map) + 8 * i, 8);
    if (w == value) s += fmt::format("{}{}", s.size() > 1 ? ", " : "", i);
  }
  return s + "]";
}

std::string hex_dump(const CUtensorMap& map) {
  std::string s;
  const auto* b = reinterpret_cast<const unsigned char*>(&map);
  for (size_t i = 0; i < sizeof map; ++i) s += fmt::format("{:02x}", b[i]);
  return s;
}

}  // namespace

std::string probe_tensor_map(const Driver& drv, const Device& dev) {
  (void)dev;
  if (!drv.cuTensorMapEncodeTiled) return "{\"error\": \"the driver lacks cuTensorMapEncodeTiled\"}";
  const size_t bytes = 4u << 20;
  CUdeviceptr buffer = 0;
  if (CUresult r = drv.cuMemAlloc(&buffer, bytes); r != CUDA_SUCCESS)
    return fmt::format("{{\"error\": \"cuMemAlloc: {}\"}}", drv.name(r));
  // Two maps that differ only in the address (both 128-byte aligned, inside
  // the buffer): the bytes that differ are where the address is encoded.
  const CUdeviceptr a = buffer + 0x10000, b = buffer + 0x10000 + 0x1080;
  CUtensorMap map_a{}, map_b{};
  const CUresult ra = encode(drv, map_a, a);
  const CUresult rb = encode(drv, map_b, b);
  drv.cuMemFree(buffer);
  std::string s = fmt::format("{{\"size\": {}, \"address\": \"{}\", \"result\": \"{}\"", sizeof(CUtensorMap), hex(a),
                              drv.name(ra));
  if (ra != CUDA_SUCCESS) return s + "}";
  s += fmt::format(", \"bytes\": \"{}\", \"address_verbatim_words\": {}", hex_dump(map_a), words_equal_to(map_a, a));
  s += fmt::format(", \"second_address\": \"{}\", \"second_result\": \"{}\"", hex(b), drv.name(rb));
  if (rb == CUDA_SUCCESS) {
    std::string differ = "[";
    const auto* pa = reinterpret_cast<const unsigned char*>(&map_a);
    const auto* pb = reinterpret_cast<const unsigned char*>(&map_b);
    for (size_t i = 0; i < sizeof map_a; ++i)
      if (pa[i] != pb[i]) differ += fmt::format("{}{}", differ.size() > 1 ? ", " : "", i);
    s += fmt::format(", \"second_bytes\": \"{}\", \"second_verbatim_words\": {}, \"bytes_that_differ\": {}]",
                     hex_dump(map_b), words_equal_to(map_b, b), differ);
  }
  const bool verbatim = words_equal_to(map_a, a) != "[]";
  return s + fmt::format(", \"address_appears_verbatim\": {}}}", verbatim ? "true" : "false");
}

}  // namespace driverprobe
