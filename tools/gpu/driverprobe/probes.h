// probes.h: the questions driverprobe asks the driver. Each probe returns one
// JSON object (as text) with what the driver answered, refusals included: a
// refused call is a finding, so probes fail only when they cannot set up
// (then the object has "error").
#pragma once

#include <cuda.h>

#include <string>

#include "driver.h"

namespace driverprobe {

struct Device {
  CUdevice device = 0;
  CUcontext context = nullptr;  // the primary context, current on this thread
  size_t granularity = 0;       // cuMemGetAllocationGranularity, minimum
};

// cuPointerGetAttribute (many attributes) and cuMemGetAddressRange on a
// cuMemAlloc buffer and across a 3-page VMM reservation whose middle page
// alone is mapped.
std::string probe_pointer_attributes(const Driver& drv, const Device& dev);

// The 128 bytes of a CUtensorMap from cuTensorMapEncodeTiled for a known
// address: hex dump, the 8-byte words equal to the address, and which bytes
// change when only the address changes.
std::string probe_tensor_map(const Driver& drv, const Device& dev);

// One 64 MiB cuMemCreate handle mapped in 2 MiB pieces at scattered offsets
// into separate reservations: each piece written through its own mapping and
// read back through a mapping of the whole handle; map, set-access and unmap
// timed per call.
std::string probe_vmm_offsets(const Driver& drv, const Device& dev);

// Whether one cuMemSetAccess and one cuMemUnmap may span several whole
// mappings, and the cost of the driver calls made on every launch that
// touches a staged weight.
std::string probe_launch_path(const Driver& drv, const Device& dev);

// When memory freed by cuMemFreeAsync comes back (cuMemGetInfo) — once the
// stream reached the free, after a synchronization of an idle stream, of its
// own stream, of the context — and the cost of a free plus the
// synchronization of an idle stream (the runtime's free_store_now).
std::string probe_stream_ordered_pool(const Driver& drv, const Device& dev);

// cuMemGetHandleForAddressRange (dma-buf) on cuMemAlloc memory and on
// virtual memory: one handle, two handles, with and without
// gpuDirectRDMACapable, and a range with an unmapped page.
std::string probe_dmabuf(const Driver& drv, const Device& dev);

// Helpers shared by the probes.
CUmemAllocationProp device_allocation_prop(const Device& dev);
CUmemAccessDesc read_write_access(const Device& dev);
std::string hex(uint64_t v);

}  // namespace driverprobe
