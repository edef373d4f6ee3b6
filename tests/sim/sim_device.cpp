// Initialisation, the one simulated device (H100-like), error names, and
// cuGetProcAddress.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string_view>

#include <pthread.h>
#include <unistd.h>

#include "sim_driver_table.h"
#include "sim_internal.h"
#include "sim_fault.h"
#include "sim_va.h"

using namespace nzsim;

namespace nzsim {
namespace {

std::atomic<bool> g_initialized{false};
// Set in a child forked after cuInit. The real driver cannot be used there:
// every call, cuInit included, returns CUDA_ERROR_NOT_INITIALIZED (what
// PyTorch's DataLoader workers and Inductor's compile workers meet; Triton
// probes for it). Here the child would find the parent's state but none of
// its stream threads, so its calls would hang instead.
std::atomic<bool> g_forked{false};

void on_fork_child() {
  g_forked.store(true, std::memory_order_relaxed);
  g_initialized.store(false, std::memory_order_release);
}
constexpr const char* kDeviceName = "nzsim H100 (simulated)";

int device_attribute(CUdevice_attribute a) {
  switch (a) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: return 1024;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: return 1024;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: return 1024;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: return 64;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: return 2147483647;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: return 65535;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: return 65535;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: return 49152;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: return 232448;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: return 233472;
    case CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY: return 65536;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: return 32;
    case CU_DEVICE_ATTRIBUTE_MAX_PITCH: return 2147483647;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: return 65536;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR: return 65536;
    case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: return 1980000;
    case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: return 2619000;
    case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: return 5120;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: return 52428800;
    case CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT: return 512;
    case CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT: return 32;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: return 132;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: return 2048;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR: return 32;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: return 9;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: return 0;
    case CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT: return 3;
    case CU_DEVICE_ATTRIBUTE_GPU_OVERLAP: return 1;
    case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY: return 1;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS: return 1;
    case CU_DEVICE_ATTRIBUTE_ECC_ENABLED: return 1;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: return 1;
    case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY: return 1;
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS: return 1;
    case CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED: return 1;
    case CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED: return 1;
    case CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED: return 1;
    case CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH: return 1;
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: return 1;
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED: return 1;
    case CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED: return 1;
    case CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED: return 1;
    case CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED: return 1;
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: return 0;
    case CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS: return 0;
    case CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM: return 1;
    case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: return 0;
    case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: return 0;
    case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID: return 0;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_MODE: return CU_COMPUTEMODE_DEFAULT;
    case CU_DEVICE_ATTRIBUTE_TENSOR_MAP_ACCESS_SUPPORTED: return 1;
    case CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH: return 1;
    case CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE: return 34603008;
    case CU_DEVICE_ATTRIBUTE_MAX_ACCESS_POLICY_WINDOW_SIZE: return 134213632;
    default: return 0;
  }
}

}  // namespace

bool initialized() { return g_initialized.load(std::memory_order_acquire); }

}  // namespace nzsim

extern "C" {

CUresult CUDAAPI cuInit(unsigned int flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (g_forked.load(std::memory_order_relaxed)) return CUDA_ERROR_NOT_INITIALIZED;
  static std::once_flag once;
  static CUresult result = CUDA_SUCCESS;
  std::call_once(once, [] {
    if (!va_init()) {
      log_error("cannot reserve the simulated device address space");
      result = CUDA_ERROR_OUT_OF_MEMORY;
      return;
    }
    install_fault_handler();
    pthread_atfork(nullptr, nullptr, on_fork_child);
    log_debug("initialised: {} MiB, lazy={}", config().total_bytes >> 20, config().lazy);
    g_initialized.store(true, std::memory_order_release);
  });
  return result;
}

CUresult CUDAAPI cuDriverGetVersion(int* version) {
  if (!version) return CUDA_ERROR_INVALID_VALUE;
  *version = 13000;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGet(CUdevice* dev, int ordinal) {
  NZ_REQUIRE_INIT();
  if (!dev) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(ordinal)) return CUDA_ERROR_INVALID_DEVICE;
  *dev = ordinal;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetCount(int* count) {
  NZ_REQUIRE_INIT();
  if (!count) return CUDA_ERROR_INVALID_VALUE;
  *count = static_cast<int>(config().devices);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetName(char* name, int len, CUdevice dev) {
  NZ_REQUIRE_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  std::strncpy(name, kDeviceName, static_cast<size_t>(len) - 1);
  name[len - 1] = '\0';
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceTotalMem(size_t* bytes, CUdevice dev) {
  NZ_REQUIRE_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  *bytes = config().total_bytes;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetAttribute(int* value, CUdevice_attribute attrib, CUdevice dev) {
  NZ_REQUIRE_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (!value || attrib <= 0 || attrib >= CU_DEVICE_ATTRIBUTE_MAX) return CUDA_ERROR_INVALID_VALUE;
  *value = device_attribute(attrib);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceComputeCapability(int* major, int* minor, CUdevice dev) {
  NZ_REQUIRE_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (!major || !minor) return CUDA_ERROR_INVALID_VALUE;
  *major = 9;
  *minor = 0;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetUuid(CUuuid* uuid, CUdevice dev) {
  NZ_REQUIRE_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (!uuid) return CUDA_ERROR_INVALID_VALUE;
  std::memcpy(uuid->bytes, "nzsim-device-000", 16);
  uuid->bytes[15] = static_cast<char>('0' + dev);
  return CUDA_SUCCESS;
}


CUresult CUDAAPI cuDeviceGetPCIBusId(char* bus, int len, CUdevice dev) {
  NZ_REQUIRE_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (!bus || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  char id[32];
  std::snprintf(id, sizeof id, "0000:0%d:00.0", static_cast<int>(dev));
  std::strncpy(bus, id, static_cast<size_t>(len) - 1);
  bus[len - 1] = '\0';
  return CUDA_SUCCESS;
}

// With NZSIM_DEVICES > 1 every pair of distinct devices is peer-capable
// (NVLink-like); access still has to be enabled (sim_context.cpp, sim_vmm.cpp).
CUresult CUDAAPI cuDeviceCanAccessPeer(int* can, CUdevice dev, CUdevice peer) {
  NZ_REQUIRE_INIT();
  if (!can) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev) || !valid_device(peer)) return CUDA_ERROR_INVALID_DEVICE;
  *can = dev != peer ? 1 : 0;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuGetErrorName(CUresult error, const char** str) {
  if (!str) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < kErrorTableSize; ++i) {
    if (kErrorTable[i].code == static_cast<int>(error)) {
      *str = kErrorTable[i].name;
      return CUDA_SUCCESS;
    }
  }
  *str = nullptr;
  return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuGetErrorString(CUresult error, const char** str) {
  if (!str) return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < kErrorTableSize; ++i) {
    if (kErrorTable[i].code == static_cast<int>(error)) {
      *str = kErrorTable[i].description;
      return CUDA_SUCCESS;
    }
  }
  *str = nullptr;
  return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuGetExportTable(const void** table, const CUuuid*) {
  if (table) *table = nullptr;
  return CUDA_ERROR_NOT_SUPPORTED;
}

// Resolves `symbol` at CUDA `version`: the newest entry not newer than the
// request; with CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, the _ptsz/_ptds
// variant where one exists. Works before cuInit, as on the real driver.
CUresult CUDAAPI cuGetProcAddress(const char* symbol, void** pfn, int version, cuuint64_t flags,
                                  CUdriverProcAddressQueryResult* status) {
  if (status) *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  if (!symbol || !pfn) return CUDA_ERROR_INVALID_VALUE;
  *pfn = nullptr;
  std::string_view name(symbol);
  const ProcEntry* first = kProcTable;
  const ProcEntry* last = kProcTable + kProcTableSize;
  first = std::lower_bound(first, last, name, [](const ProcEntry& e, std::string_view n) { return e.name < n; });
  if (first == last || first->name != name) return CUDA_ERROR_NOT_FOUND;
  bool per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
  const ProcEntry* best_default = nullptr;
  const ProcEntry* best_variant = nullptr;
  bool any = false;
  for (const ProcEntry* e = first; e != last && e->name == name; ++e) {
    any = true;
    if (e->version > version) continue;
    if (e->variant == 0) best_default = e;
    else best_variant = e;
  }
  const ProcEntry* pick = per_thread && best_variant ? best_variant : best_default;
  if (!pick) {
    if (status && any) *status = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
    return CUDA_ERROR_NOT_FOUND;
  }
  *pfn = pick->fn;
  if (status) *status = CU_GET_PROC_ADDRESS_SUCCESS;
  return CUDA_SUCCESS;
}


// TMA descriptors. A real CUtensorMap is opaque: its global address is not
// stored verbatim anywhere in the 128 bytes, so a scan of launch parameters
// cannot find it. The simulator's layout is opaque the same way:
//   [0, 8)   global address XOR a per-process key, rotated
//   [8, 12)  rank      [12, 16) data type
//   [16, 56) global dims (5 x u64)   [56, 96) global strides (rank-1 x u64)
//   [120, 128) "NZSIMTM\0"
// Kernel modules read the address back with nzsim_tensor_map_address (nzsim.h).
// cuTensorMapReplaceAddress rewrites the first 8 bytes.
namespace {
uint64_t tensor_map_key() {
  static const uint64_t key = [] {
    uint64_t k = 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(getpid()) * 0xbf58476d1ce4e5b9ull;
    return k | 1;
  }();
  return key;
}
uint64_t scramble_address(uint64_t a) {
  const uint64_t x = a ^ tensor_map_key();
  return (x << 23) | (x >> 41);
}
uint64_t unscramble_address(uint64_t s) {
  const uint64_t x = (s >> 23) | (s << 41);
  return x ^ tensor_map_key();
}
void store_address(CUtensorMap* map, void* address) {
  const uint64_t scrambled = scramble_address(reinterpret_cast<uint64_t>(address));
  std::memcpy(map, &scrambled, 8);
}
}  // namespace

__attribute__((visibility("default"))) void* nzsim_tensor_map_address(const void* map) {
  if (!map) return nullptr;
  uint64_t scrambled;
  std::memcpy(&scrambled, map, 8);
  return reinterpret_cast<void*>(unscramble_address(scrambled));
}

static CUresult encode_tensor_map(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* address,
                                  const cuuint64_t* dims, const cuuint64_t* strides) {
  NZ_REQUIRE_INIT();
  if (!map || !address || rank == 0 || rank > 5 || !dims) return CUDA_ERROR_INVALID_VALUE;
  // As the driver requires: a 16-byte aligned global address, strides that
  // are multiples of 16 bytes, no empty dimension.
  if (reinterpret_cast<uintptr_t>(address) % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
  for (cuuint32_t i = 0; i < rank; ++i)
    if (dims[i] == 0) return CUDA_ERROR_INVALID_VALUE;
  for (cuuint32_t i = 0; i + 1 < rank; ++i)
    if (strides == nullptr || strides[i] % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
  auto* bytes = reinterpret_cast<unsigned char*>(map);
  std::memset(bytes, 0, sizeof(CUtensorMap));
  store_address(map, address);
  std::memcpy(bytes + 8, &rank, 4);
  uint32_t t = type;
  std::memcpy(bytes + 12, &t, 4);
  std::memcpy(bytes + 16, dims, 8 * rank);
  if (strides && rank > 1) std::memcpy(bytes + 56, strides, 8 * (rank - 1));
  std::memcpy(bytes + 120, "NZSIMTM", 8);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuTensorMapEncodeTiled(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* address,
                                        const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t*,
                                        const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                        CUtensorMapL2promotion, CUtensorMapFloatOOBfill) {
  return encode_tensor_map(map, type, rank, address, dims, strides);
}

CUresult CUDAAPI cuTensorMapEncodeIm2col(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* address,
                                         const cuuint64_t* dims, const cuuint64_t* strides, const int*, const int*,
                                         cuuint32_t, cuuint32_t, const cuuint32_t*, CUtensorMapInterleave,
                                         CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill) {
  return encode_tensor_map(map, type, rank, address, dims, strides);
}

CUresult CUDAAPI cuTensorMapReplaceAddress(CUtensorMap* map, void* address) {
  NZ_REQUIRE_INIT();
  if (!map || !address || reinterpret_cast<uintptr_t>(address) % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
  store_address(map, address);
  return CUDA_SUCCESS;
}

}  // extern "C"
