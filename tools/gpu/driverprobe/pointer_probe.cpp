// pointer_probe.cpp: what cuPointerGetAttribute and cuMemGetAddressRange say
// about ordinary and VMM memory. The runtime (and frameworks) use these to
// learn which allocation a pointer is in; on a VMM range with holes the
// answer is not documented, so it is measured here.
#include <fmt/format.h>

#include <cstdint>
#include <vector>

#include "probes.h"

namespace driverprobe {
namespace {

struct Attribute {
  CUpointer_attribute id;
  const char* name;
};

constexpr Attribute kAttributes[] = {
    {CU_POINTER_ATTRIBUTE_CONTEXT, "CONTEXT"},
    {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, "MEMORY_TYPE"},
    {CU_POINTER_ATTRIBUTE_DEVICE_POINTER, "DEVICE_POINTER"},
    {CU_POINTER_ATTRIBUTE_BUFFER_ID, "BUFFER_ID"},
    {CU_POINTER_ATTRIBUTE_IS_MANAGED, "IS_MANAGED"},
    {CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, "DEVICE_ORDINAL"},
    {CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE, "IS_LEGACY_CUDA_IPC_CAPABLE"},
    {CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, "RANGE_START_ADDR"},
    {CU_POINTER_ATTRIBUTE_RANGE_SIZE, "RANGE_SIZE"},
    {CU_POINTER_ATTRIBUTE_MAPPED, "MAPPED"},
    {CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES, "ALLOWED_HANDLE_TYPES"},
    {CU_POINTER_ATTRIBUTE_ACCESS_FLAGS, "ACCESS_FLAGS"},
    {CU_POINTER_ATTRIBUTE_MAPPING_SIZE, "MAPPING_SIZE"},
    {CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR, "MAPPING_BASE_ADDR"},
    {CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID, "MEMORY_BLOCK_ID"},
};

// Every attribute at one address. Values are read into a zeroed 8-byte word,
// so 4-byte answers read correctly too; addresses are also given relative to
// `origin` (the allocation or reservation start) so runs can be compared.
std::string query_point(const Driver& drv, const char* label, CUdeviceptr p, CUdeviceptr origin) {
  std::string s = fmt::format("{{\"at\": \"{}\", \"offset\": {}, \"attributes\": {{", label, p - origin);
  bool first = true;
  for (const Attribute& a : kAttributes) {
    uint64_t value = 0;
    const CUresult r = drv.cuPointerGetAttribute(&value, a.id, p);
    s += fmt::format("{}\"{}\": {{\"result\": \"{}\"", first ? "" : ", ", a.name, drv.name(r));
    if (r == CUDA_SUCCESS) s += fmt::format(", \"value\": \"{}\"", hex(value));
    if (r == CUDA_SUCCESS && (a.id == CU_POINTER_ATTRIBUTE_RANGE_START_ADDR ||
                              a.id == CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR ||
                              a.id == CU_POINTER_ATTRIBUTE_DEVICE_POINTER))
      s += fmt::format(", \"minus_origin\": {}", static_cast<int64_t>(value - origin));
    s += "}";
    first = false;
  }
  CUdeviceptr base = 0;
  size_t size = 0;
  const CUresult r = drv.cuMemGetAddressRange(&base, &size, p);
  s += fmt::format("}}, \"cuMemGetAddressRange\": {{\"result\": \"{}\"", drv.name(r));
  if (r == CUDA_SUCCESS)
    s += fmt::format(", \"base_minus_origin\": {}, \"size\": {}", static_cast<int64_t>(base - origin), size);
  return s + "}}";
}

}  // namespace

std::string probe_pointer_attributes(const Driver& drv, const Device& dev) {
  if (!drv.cuPointerGetAttribute || !drv.cuMemGetAddressRange || !drv.cuMemAlloc || !drv.cuMemCreate)
    return "{\"error\": \"the driver lacks cuPointerGetAttribute, cuMemGetAddressRange, cuMemAlloc or cuMemCreate\"}";
  std::vector<std::string> points;
  std::string error;

  // Ordinary memory first: the baseline the VMM answers are compared with.
  const size_t alloc_bytes = 4u << 20;
  CUdeviceptr a = 0;
  if (CUresult r = drv.cuMemAlloc(&a, alloc_bytes); r != CUDA_SUCCESS) {
    error = "cuMemAlloc: " + drv.name(r);
  } else {
    points.push_back(query_point(drv, "cuMemAlloc base", a, a));
    points.push_back(query_point(drv, "cuMemAlloc base+1MiB", a + (1u << 20), a));
    drv.cuMemFree(a);
  }

  // Three pages reserved, the middle one mapped.
  const size_t g = dev.granularity;
  CUdeviceptr va = 0;
  CUmemGenericAllocationHandle h = 0;
  const CUmemAllocationProp prop = device_allocation_prop(dev);
  const CUmemAccessDesc access = read_write_access(dev);
  bool reserved = false, created = false, mapped = false;
  const std::string vmm_error = [&]() -> std::string {
    if (CUresult r = drv.cuMemAddressReserve(&va, 3 * g, g, 0, 0); r != CUDA_SUCCESS)
      return "cuMemAddressReserve: " + drv.name(r);
    reserved = true;
    if (CUresult r = drv.cuMemCreate(&h, g, &prop, 0); r != CUDA_SUCCESS) return "cuMemCreate: " + drv.name(r);
    created = true;
    if (CUresult r = drv.cuMemMap(va + g, g, 0, h, 0); r != CUDA_SUCCESS) return "cuMemMap: " + drv.name(r);
    mapped = true;
    if (CUresult r = drv.cuMemSetAccess(va + g, g, &access, 1); r != CUDA_SUCCESS)
      return "cuMemSetAccess: " + drv.name(r);
    return {};
  }();
  if (vmm_error.empty()) {
    points.push_back(query_point(drv, "vmm page 0 (unmapped)", va, va));
    points.push_back(query_point(drv, "vmm page 1 (mapped)", va + g, va));
    points.push_back(query_point(drv, "vmm page 1 + half", va + g + g / 2, va));
    points.push_back(query_point(drv, "vmm page 2 (unmapped)", va + 2 * g, va));
  } else {
    error = vmm_error;
  }
  if (mapped) drv.cuMemUnmap(va + g, g);
  if (created) drv.cuMemRelease(h);
  if (reserved) drv.cuMemAddressFree(va, 3 * g);

  std::string s = fmt::format("{{\"granularity\": {}, \"points\": [", g);
  for (size_t i = 0; i < points.size(); ++i) s += (i ? ", " : "") + points[i];
  s += "]";
  if (!error.empty()) s += fmt::format(", \"error\": \"{}\"", error);
  return s + "}";
}

}  // namespace driverprobe
