/* nzsim.h: the host-kernel ABI of the simulated CUDA driver (tests/sim).
 *
 * On the simulator, a "module" is a shared library of host functions. Load it
 * like a cubin:
 *   - cuModuleLoad("path/to/libmykernels.so") / cuLibraryLoadFromFile(...), or
 *   - cuModuleLoadData(image) / cuLibraryLoadData(image) where `image` is either
 *       the bytes of the .so file itself (ELF, loaded through a memfd), or
 *       an nzsim_module_ref (below) that names the file.
 * The library exports one C function, NZSIM_MODULE_ENTRY, that lists its kernels.
 * cuModuleGetFunction / cuLibraryGetKernel find a kernel by name;
 * cuFuncGetParamInfo / cuKernelGetParamInfo report the offsets and sizes given
 * here; cuLaunchKernel / cuLaunchKernelEx queue one call of `fn` per launch on
 * the stream's worker thread (the whole grid in one call: the function loops
 * over blocks and threads itself, or ignores them).
 *
 * Device pointers (CUdeviceptr) are host addresses in this process, so a host
 * kernel dereferences them directly. Touching an address that is not mapped
 * (never allocated, freed, reserved but not mapped, unmapped, or without
 * access) is caught by the simulator: the launch is aborted, the context gets
 * the sticky CUDA_ERROR_ILLEGAL_ADDRESS, and the fault is logged.
 *
 * This ABI is stable: version NZSIM_ABI_VERSION. */
#ifndef NZSIM_H
#define NZSIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NZSIM_ABI_VERSION 1
#define NZSIM_MODULE_ENTRY nzsim_module_kernels
#define NZSIM_MODULE_REF_MAGIC "NZSIMREF" /* 8 bytes, no terminator counted */

typedef struct nzsim_dim3 {
  unsigned x, y, z;
} nzsim_dim3;

/* What a kernel function receives, once per launch. */
typedef struct nzsim_launch {
  nzsim_dim3 grid;
  nzsim_dim3 block;
  unsigned shared_bytes;
  /* params[i] points at the value of parameter i, exactly as the kernelParams
   * array of cuLaunchKernel (when the caller used CU_LAUNCH_PARAM_BUFFER_POINTER,
   * the simulator builds this array from the buffer and the declared offsets). */
  void* const* params;
  void* stream; /* the CUstream it runs on (opaque) */
} nzsim_launch;

/* Returns 0 on success. A non-zero return is a device-side trap: the simulator
 * logs it and gives the context the sticky CUDA_ERROR_LAUNCH_FAILED, as
 * __trap() does on a GPU (the runtime uses this to stop work on a checksum
 * failure instead of computing on garbage). NZSIM_KERNEL_ILLEGAL_ADDRESS
 * instead: the kernel would have touched memory a GPU cannot reach (see
 * nzsim_device_accessible); counted as a fault, sticky
 * CUDA_ERROR_ILLEGAL_ADDRESS. */
typedef int (*nzsim_kernel_fn)(const nzsim_launch* launch);
#define NZSIM_KERNEL_ILLEGAL_ADDRESS 2

typedef struct nzsim_param {
  size_t offset; /* byte offset in the packed parameter buffer */
  size_t size;   /* byte size */
} nzsim_param;

typedef struct nzsim_kernel {
  const char* name;          /* the name cuModuleGetFunction looks up */
  unsigned param_count;
  const nzsim_param* params; /* param_count entries */
  nzsim_kernel_fn fn;
} nzsim_kernel;

/* A module image that names a file instead of holding its bytes. */
typedef struct nzsim_module_ref {
  char magic[8];   /* NZSIM_MODULE_REF_MAGIC */
  char path[4088]; /* NUL-terminated path of the .so */
} nzsim_module_ref;

/* Exported by every module library:
 *   const nzsim_kernel* nzsim_module_kernels(unsigned* count, unsigned* abi_version); */
typedef const nzsim_kernel* (*nzsim_module_entry_fn)(unsigned* count, unsigned* abi_version);

/* Module globals (__device__ and __constant__ variables), optional: a module
 * library may also export
 *   const nzsim_global* nzsim_module_globals(unsigned* count);
 * At load the simulator gives each global `bytes` of device memory (zeroed),
 * found by cuModuleGetGlobal / cuLibraryGetGlobal under `name`, and stores its
 * address in *address: the module's kernels read the global through it, as a
 * GPU kernel reads its module's variables without a parameter. (A library
 * loaded twice shares *address: the last load wins.) */
typedef struct nzsim_global {
  const char* name;
  size_t bytes;
  uint64_t* address; /* a CUdeviceptr */
} nzsim_global;
#define NZSIM_MODULE_GLOBALS nzsim_module_globals
typedef const nzsim_global* (*nzsim_module_globals_fn)(unsigned* count);

/* Exported by the simulator's libcuda.so.1 itself (find them with dlsym; they
 * are not part of the CUDA API, so programs that must also run on a real
 * driver look them up and skip when absent). */
typedef struct nzsim_stats {
  uint64_t total_bytes;         /* configured device memory (NZSIM_MEMORY_MB) */
  uint64_t physical_bytes;      /* physical memory in use now (what cuMemGetInfo reports as used) */
  uint64_t peak_physical_bytes; /* its high-water mark since start or the last reset */
  uint64_t faults;              /* illegal-address faults caught so far */
  uint64_t launches;            /* kernel launches executed */
} nzsim_stats;

/* int nzsim_get_stats(nzsim_stats* out);   returns 0 */
typedef int (*nzsim_get_stats_fn)(nzsim_stats* out);
/* void nzsim_reset_peak(void); */
typedef void (*nzsim_reset_peak_fn)(void);
/* void* nzsim_tensor_map_address(const void* tensor_map): the global address a
 * CUtensorMap built by cuTensorMapEncode* describes (the descriptor is opaque,
 * as on a GPU; kernels that take one by value read the address with this). */
typedef void* (*nzsim_tensor_map_address_fn)(const void* tensor_map);
/* void* nzsim_texture_address(unsigned long long tex): the device address of
 * a texture object's linear or pitch-2D resource (null for an unknown
 * object): kernels that take a CUtexObject read their memory through it. */
typedef void* (*nzsim_texture_address_fn)(unsigned long long tex);
/* int nzsim_device_accessible(const void* p, size_t bytes): 1 if a kernel on
 * a GPU could reach [p, p + bytes) — device memory (the simulated device's
 * address space; unmapped pages there fault on their own) or page-locked
 * host memory (cuMemAllocHost, cuMemHostAlloc, cuMemHostRegister) — and 0
 * for pageable host memory, which a kernel here reads as plain host memory
 * but a GPU does not reach. Modules check the host-visible buffers their
 * kernels take with it and return NZSIM_KERNEL_ILLEGAL_ADDRESS if not. The
 * simulator is loaded RTLD_LOCAL by some programs: ask its handle
 * (dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD)). */
typedef int (*nzsim_device_accessible_fn)(const void* p, size_t bytes);

/* int nzsim_dmabuf_io(int fd, unsigned long long offset, void* data,
 *                     unsigned long long bytes, int write): what a NIC does
 * with a dma-buf from cuMemGetHandleForAddressRange: reads (write 0) or
 * writes (write 1) `bytes` at `offset` of it, in the physical pages the
 * range had when the dma-buf was made (whatever is mapped there now).
 * Returns 0, or -1 for an unknown or closed fd or a range outside it. */
typedef int (*nzsim_dmabuf_io_fn)(int fd, unsigned long long offset, void* data, unsigned long long bytes,
                                  int write);

#ifdef __cplusplus
}
#endif

#endif /* NZSIM_H */
