// driverprobe: asks the CUDA driver the questions the runtime's design rests
// on and that no document answers (see probes.h), and prints one JSON object.
//
//   driverprobe [--device N]
//
// Runs on whichever libcuda.so.1 the loader finds (a GPU's, or tests/sim's).
// Exit codes: 0 every probe ran (refusals by the driver are findings, in the
// output); 1 a probe could not set up (its "error" says why); 2 bad usage,
// no driver, or no device.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "probes.h"
#include "util/json_value.h"

namespace driverprobe {

CUmemAllocationProp device_allocation_prop(const Device& dev) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = dev.device;
  return prop;
}

CUmemAccessDesc read_write_access(const Device& dev) {
  CUmemAccessDesc d{};
  d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  d.location.id = dev.device;
  d.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  return d;
}

std::string hex(uint64_t v) { return fmt::format("0x{:x}", v); }

}  // namespace driverprobe

namespace {

using driverprobe::Driver;

int fail(const std::string& why) {
  fmt::print(stderr, "driverprobe: {}\n", why);
  fmt::print("{{\"tool\": \"driverprobe\", \"error\": {}}}\n", nz::util::json::quote(why));
  return 2;
}

std::string facts(const Driver& drv, const driverprobe::Device& dev) {
  int version = 0, major = 0, minor = 0, sms = 0, posix_fd = -1, rdma = -1, rdma_vmm = -1;
  char name[256] = {};
  size_t total = 0;
  if (drv.cuDriverGetVersion) drv.cuDriverGetVersion(&version);
  if (drv.cuDeviceGetName) drv.cuDeviceGetName(name, sizeof name - 1, dev.device);
  if (drv.cuDeviceGetAttribute) {
    drv.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev.device);
    drv.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev.device);
    drv.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev.device);
    // What sharing served memory rests on (RUNTIME.md "IPC", pointer queries).
    drv.cuDeviceGetAttribute(&posix_fd, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, dev.device);
    drv.cuDeviceGetAttribute(&rdma, CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED, dev.device);
    drv.cuDeviceGetAttribute(&rdma_vmm, CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED, dev.device);
  }
  if (drv.cuDeviceTotalMem) drv.cuDeviceTotalMem(&total, dev.device);
  return fmt::format(
      "\"device\": {}, \"simulator\": {}, \"driver_version\": {}, \"compute_capability\": \"{}.{}\", "
      "\"multiprocessors\": {}, \"total_bytes\": {}, \"granularity\": {}, \"posix_fd_handles\": {}, "
      "\"gpudirect_rdma\": {}, \"gpudirect_rdma_vmm\": {}, \"missing_entry_points\": {}",
      nz::util::json::quote(name), std::strncmp(name, "nzsim", 5) == 0 ? "true" : "false", version, major, minor, sms,
      total, dev.granularity, posix_fd, rdma, rdma_vmm, nz::util::json::quote(drv.missing()));
}

}  // namespace

int main(int argc, char** argv) {
  int ordinal = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--device") && i + 1 < argc) {
      ordinal = std::atoi(argv[++i]);
    } else {
      fmt::print(stderr, "usage: driverprobe [--device N]   (JSON on stdout)\n");
      return 2;
    }
  }
  Driver drv;
  std::string error;
  if (!drv.load(error)) return fail(error);
  if (!drv.cuInit || !drv.cuDeviceGet || !drv.cuDevicePrimaryCtxRetain || !drv.cuCtxSetCurrent ||
      !drv.cuMemGetAllocationGranularity || !drv.cuMemAlloc || !drv.cuMemFree)
    return fail("libcuda.so.1 lacks an entry point every probe needs: " + drv.missing());
  driverprobe::Device dev;
  if (CUresult r = drv.cuInit(0); r != CUDA_SUCCESS) return fail("cuInit: " + drv.name(r));
  if (CUresult r = drv.cuDeviceGet(&dev.device, ordinal); r != CUDA_SUCCESS) return fail("cuDeviceGet: " + drv.name(r));
  if (CUresult r = drv.cuDevicePrimaryCtxRetain(&dev.context, dev.device); r != CUDA_SUCCESS)
    return fail("cuDevicePrimaryCtxRetain: " + drv.name(r));
  if (CUresult r = drv.cuCtxSetCurrent(dev.context); r != CUDA_SUCCESS) return fail("cuCtxSetCurrent: " + drv.name(r));
  const CUmemAllocationProp prop = driverprobe::device_allocation_prop(dev);
  if (CUresult r = drv.cuMemGetAllocationGranularity(&dev.granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
      r != CUDA_SUCCESS)
    return fail("cuMemGetAllocationGranularity: " + drv.name(r));

  const std::string pointers = driverprobe::probe_pointer_attributes(drv, dev);
  const std::string tensor_map = driverprobe::probe_tensor_map(drv, dev);
  const std::string vmm = driverprobe::probe_vmm_offsets(drv, dev);
  const std::string launch_path = driverprobe::probe_launch_path(drv, dev);
  const std::string pool = driverprobe::probe_stream_ordered_pool(drv, dev);
  const std::string dmabuf = driverprobe::probe_dmabuf(drv, dev);
  fmt::print("{{\"tool\": \"driverprobe\", \"schema_version\": 1, {}, \"pointer_attributes\": {}, \"tensor_map\": {}, "
             "\"vmm_offsets\": {}, \"launch_path\": {}, \"stream_ordered_pool\": {}, \"dmabuf\": {}}}\n",
             facts(drv, dev), pointers, tensor_map, vmm, launch_path, pool, dmabuf);
  if (drv.cuDevicePrimaryCtxRelease) drv.cuDevicePrimaryCtxRelease(dev.device);
  // A probe that could not set up is a failure of this run; what the driver
  // refused inside a probe is data.
  const bool setup_failed = [&] {
    for (const std::string* s : {&pointers, &tensor_map, &vmm, &launch_path, &pool, &dmabuf})
      if (s->rfind("{\"error\"", 0) == 0 || s->find(", \"error\": ") != std::string::npos) return true;
    return false;
  }();
  if (setup_failed) fmt::print(stderr, "driverprobe: a probe could not set up (see \"error\" in the JSON)\n");
  return setup_failed ? 1 : 0;
}
