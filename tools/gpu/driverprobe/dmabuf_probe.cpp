// dmabuf_probe.cpp: what cuMemGetHandleForAddressRange (a dma-buf for a NIC
// or a storage driver) accepts, for the runtime's dmabuf_export.cpp: memory
// neuzip serves is virtual memory made resident from page handles of one set
// of properties (gpuDirectRDMACapable where the device allows it). Each case
// reports the driver's answer; a refusal is a finding.
//  * linear: cuMemAlloc memory (what the program expected);
//  * one_handle / one_handle_rdma: one 2 MiB handle mapped, without and with
//    allocFlags.gpuDirectRDMACapable;
//  * two_handles: a range across two adjacent mappings of two handles (what
//    a resident allocation of several units is);
//  * unmapped: a range whose second page is not mapped (what a compressed
//    unit leaves): expected refused.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <vector>

#include "probes.h"

namespace driverprobe {
namespace {

struct Mapped {
  CUdeviceptr va = 0;
  size_t bytes = 0;
  std::vector<CUmemGenericAllocationHandle> handles;
};

std::string attempt(const Driver& drv, CUdeviceptr p, size_t bytes) {
  int fd = -1;
  const CUresult r = drv.cuMemGetHandleForAddressRange(&fd, p, bytes, CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD, 0);
  if (r == CUDA_SUCCESS && fd >= 0) close(fd);
  return fmt::format("\"{}\"", drv.name(r));
}

// `pages` handles of the granularity, the first `mapped` of them mapped end
// to end in one reservation.
CUresult map_pages(const Driver& drv, const Device& dev, int pages, int mapped, bool rdma, Mapped& out) {
  CUmemAllocationProp prop = device_allocation_prop(dev);
  prop.allocFlags.gpuDirectRDMACapable = rdma ? 1 : 0;
  const size_t page = dev.granularity;
  out.bytes = page * pages;
  if (CUresult r = drv.cuMemAddressReserve(&out.va, out.bytes, page, 0, 0); r != CUDA_SUCCESS) return r;
  const CUmemAccessDesc access = read_write_access(dev);
  for (int i = 0; i < mapped; ++i) {
    CUmemGenericAllocationHandle h = 0;
    if (CUresult r = drv.cuMemCreate(&h, page, &prop, 0); r != CUDA_SUCCESS) return r;
    out.handles.push_back(h);
    if (CUresult r = drv.cuMemMap(out.va + i * page, page, 0, h, 0); r != CUDA_SUCCESS) return r;
    if (CUresult r = drv.cuMemSetAccess(out.va + i * page, page, &access, 1); r != CUDA_SUCCESS) return r;
  }
  return CUDA_SUCCESS;
}

void unmap_pages(const Driver& drv, const Device& dev, Mapped& m) {
  for (size_t i = 0; i < m.handles.size(); ++i) {
    drv.cuMemUnmap(m.va + i * dev.granularity, dev.granularity);
    drv.cuMemRelease(m.handles[i]);
  }
  if (m.va) drv.cuMemAddressFree(m.va, m.bytes);
  m = Mapped{};
}

std::string vmm_case(const Driver& drv, const Device& dev, int pages, int mapped, bool rdma) {
  Mapped m;
  std::string out;
  if (CUresult r = map_pages(drv, dev, pages, mapped, rdma, m); r != CUDA_SUCCESS)
    out = fmt::format("\"setup: {}\"", drv.name(r));
  else
    out = attempt(drv, m.va, m.bytes);
  unmap_pages(drv, dev, m);
  return out;
}

}  // namespace

std::string probe_dmabuf(const Driver& drv, const Device& dev) {
  if (!drv.cuMemGetHandleForAddressRange || !drv.cuDeviceGetAttribute)
    return fmt::format("{{\"skipped\": \"entry points missing: {}\"}}", drv.missing());
  int supported = -1;
  drv.cuDeviceGetAttribute(&supported, CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED, dev.device);
  CUdeviceptr p = 0;
  const size_t bytes = 2 * dev.granularity;
  std::string linear;
  if (CUresult r = drv.cuMemAlloc(&p, bytes); r != CUDA_SUCCESS) {
    linear = fmt::format("\"setup: {}\"", drv.name(r));
  } else {
    linear = attempt(drv, p, bytes);
    drv.cuMemFree(p);
  }
  return fmt::format(
      "{{\"supported\": {}, \"linear\": {}, \"one_handle\": {}, \"one_handle_rdma\": {}, \"two_handles\": {}, "
      "\"two_handles_rdma\": {}, \"unmapped\": {}}}",
      supported, linear, vmm_case(drv, dev, 1, 1, false), vmm_case(drv, dev, 1, 1, true),
      vmm_case(drv, dev, 2, 2, false), vmm_case(drv, dev, 2, 2, true), vmm_case(drv, dev, 2, 1, false));
}

}  // namespace driverprobe
