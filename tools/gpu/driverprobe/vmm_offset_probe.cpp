// vmm_offset_probe.cpp: can staging pages be carved out of one large
// physical handle (one cuMemCreate up front, cuMemMap of pieces at offsets
// into separate reservations), and what each call costs. The brief's design
// depends on it: per-use cuMemCreate costs up to 190 us on an A100.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "probes.h"

namespace driverprobe {
namespace {

constexpr size_t kHandleBytes = 64u << 20;
constexpr size_t kPieceBytes = 2u << 20;

double since_us(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

std::string stats(std::vector<double> v) {
  if (v.empty()) return "null";
  std::sort(v.begin(), v.end());
  return fmt::format("{{\"calls\": {}, \"min_us\": {:.2f}, \"median_us\": {:.2f}, \"max_us\": {:.2f}}}", v.size(),
                     v.front(), v[v.size() / 2], v.back());
}

}  // namespace

std::string probe_vmm_offsets(const Driver& drv, const Device& dev) {
  if (!drv.cuMemCreate || !drv.cuMemMap || !drv.cuMemsetD32 || !drv.cuMemcpyDtoH)
    return "{\"error\": \"the driver lacks cuMemCreate, cuMemMap, cuMemsetD32 or cuMemcpyDtoH\"}";
  const size_t piece = std::max(kPieceBytes, dev.granularity);
  const size_t handle_bytes = (kHandleBytes + piece - 1) / piece * piece;
  const size_t pieces = handle_bytes / piece;
  const CUmemAllocationProp prop = device_allocation_prop(dev);
  const CUmemAccessDesc access = read_write_access(dev);

  CUmemGenericAllocationHandle h = 0;
  auto t0 = std::chrono::steady_clock::now();
  if (CUresult r = drv.cuMemCreate(&h, handle_bytes, &prop, 0); r != CUDA_SUCCESS)
    return fmt::format("{{\"error\": \"cuMemCreate of {} bytes: {}\"}}", handle_bytes, drv.name(r));
  const double create_us = since_us(t0);

  // Piece i goes to reservation i from offset (i * 7 mod n) * piece: scattered,
  // not in address order (n is a power of two, 7 is odd: a permutation).
  std::vector<CUdeviceptr> vas(pieces, 0);
  std::vector<size_t> offsets(pieces);
  std::vector<double> map_us, access_us, unmap_us;
  std::string error, refused;
  size_t mapped = 0;
  for (size_t i = 0; i < pieces && error.empty(); ++i) {
    offsets[i] = (i * 7 % pieces) * piece;
    if (CUresult r = drv.cuMemAddressReserve(&vas[i], piece, piece, 0, 0); r != CUDA_SUCCESS) {
      error = "cuMemAddressReserve: " + drv.name(r);
      break;
    }
    t0 = std::chrono::steady_clock::now();
    if (CUresult r = drv.cuMemMap(vas[i], piece, offsets[i], h, 0); r != CUDA_SUCCESS) {
      // The H200's driver (580) maps whole handles only: an answer, not a failure.
      if (i == 0 && (r == CUDA_ERROR_NOT_SUPPORTED || r == CUDA_ERROR_INVALID_VALUE)) refused = drv.name(r);
      else error = fmt::format("cuMemMap at offset {}: {}", offsets[i], drv.name(r));
      break;
    }
    map_us.push_back(since_us(t0));
    ++mapped;
    t0 = std::chrono::steady_clock::now();
    if (CUresult r = drv.cuMemSetAccess(vas[i], piece, &access, 1); r != CUDA_SUCCESS) {
      error = "cuMemSetAccess: " + drv.name(r);
      break;
    }
    access_us.push_back(since_us(t0));
    // Through the piece's own mapping: a value naming the piece.
    if (CUresult r = drv.cuMemsetD32(vas[i], 0xA5000000u + static_cast<unsigned>(i), piece / 4); r != CUDA_SUCCESS)
      error = "cuMemsetD32: " + drv.name(r);
  }

  // Read back through one mapping of the whole handle: piece i's value must be
  // at its offset, first and last word.
  size_t verified = 0;
  CUdeviceptr whole = 0;
  if (error.empty() && refused.empty()) {
    if (CUresult r = drv.cuMemAddressReserve(&whole, handle_bytes, piece, 0, 0); r != CUDA_SUCCESS) {
      error = "cuMemAddressReserve (whole): " + drv.name(r);
      whole = 0;
    } else if (CUresult r2 = drv.cuMemMap(whole, handle_bytes, 0, h, 0); r2 != CUDA_SUCCESS) {
      error = "cuMemMap (whole): " + drv.name(r2);
    } else if (CUresult r3 = drv.cuMemSetAccess(whole, handle_bytes, &access, 1); r3 != CUDA_SUCCESS) {
      error = "cuMemSetAccess (whole): " + drv.name(r3);
    } else {
      for (size_t i = 0; i < pieces; ++i) {
        uint32_t first = 0, last = 0;
        const CUdeviceptr at = whole + offsets[i];
        if (drv.cuMemcpyDtoH(&first, at, 4) != CUDA_SUCCESS ||
            drv.cuMemcpyDtoH(&last, at + piece - 4, 4) != CUDA_SUCCESS)
          break;
        verified += first == 0xA5000000u + i && last == first;
      }
    }
  }
  if (whole) {
    drv.cuMemUnmap(whole, handle_bytes);
    drv.cuMemAddressFree(whole, handle_bytes);
  }
  for (size_t i = 0; i < pieces; ++i) {
    if (i < mapped) {
      t0 = std::chrono::steady_clock::now();
      if (drv.cuMemUnmap(vas[i], piece) == CUDA_SUCCESS) unmap_us.push_back(since_us(t0));
    }
    if (vas[i]) drv.cuMemAddressFree(vas[i], piece);
  }
  drv.cuMemRelease(h);

  std::string s = fmt::format(
      "{{\"handle_bytes\": {}, \"piece_bytes\": {}, \"pieces\": {}, \"create_us\": {:.2f}, \"pieces_mapped\": {}, "
      "\"pieces_verified\": {}, \"map\": {}, \"set_access\": {}, \"unmap\": {}",
      handle_bytes, piece, pieces, create_us, mapped, verified, stats(map_us), stats(access_us), stats(unmap_us));
  s += fmt::format(", \"slices_mapped\": {}", refused.empty() ? "true" : "false");
  if (!refused.empty()) s += fmt::format(", \"slice_refused_with\": \"{}\"", refused);
  if (!error.empty()) s += fmt::format(", \"error\": \"{}\"", error);
  return s + "}";
}

}  // namespace driverprobe
