// Legacy CUDA IPC between processes: cuIpcGetMemHandle, cuIpcOpenMemHandle,
// cuIpcCloseMemHandle, for cuMemAlloc memory only, as on a GPU (virtual
// memory is refused: it is shared with cuMemExportToShareableHandle).
//
// The exporter moves the allocation's pages to a memfd once (sim_memory.cpp)
// and offers it on an abstract socket (util/fd_exchange.h); the 64-byte handle
// names the process and a random key. The importer fetches the memfd and maps
// it into its own device address space: both processes see each other's
// writes, as two contexts sharing device memory do.
//
// What a real driver does that is simulated here (from its documentation):
// the handle names the whole allocation and opening it returns its base; a
// second open in the same context returns the same pointer, counted, and
// each open needs its close; cuMemFree refuses imported memory. Opening a
// handle in the process that made it fails (CUDA_ERROR_INVALID_CONTEXT;
// PyTorch avoids doing so: "cudaIpcOpenMemHandle will fail if called in the
// same process"). Not verified on a GPU: which error each refusal returns.
#include <unistd.h>

#include <cstring>

#include "sim_internal.h"
#include "sim_memory.h"
#include "sim_stream.h"

namespace nzsim {
namespace {

constexpr char kMagic[8] = {'n', 'z', 's', 'i', 'm', 'I', 'P', 'C'};

struct HandleBody {
  char magic[8];
  int32_t pid;
  uint32_t reserved;
  uint64_t process_id;  // nz::fdx::process_id() of the exporter
  uint64_t size;
  uint64_t physical;
  nz::fdx::Key key;
};
static_assert(sizeof(HandleBody) <= sizeof(CUipcMemHandle));

}  // namespace
}  // namespace nzsim

using namespace nzsim;

extern "C" {

CUresult CUDAAPI cuIpcGetMemHandle(CUipcMemHandle* handle, CUdeviceptr dptr) {
  NZ_REQUIRE_INIT();
  if (!handle) return CUDA_ERROR_INVALID_VALUE;
  if (!current_context()) return CUDA_ERROR_INVALID_CONTEXT;
  IpcExport e;
  if (CUresult r = export_linear(dptr, &e); r != CUDA_SUCCESS) return r;
  HandleBody body{};
  std::memcpy(body.magic, kMagic, sizeof(kMagic));
  body.pid = static_cast<int32_t>(getpid());
  body.process_id = nz::fdx::process_id();
  body.size = e.size;
  body.physical = e.physical;
  body.key = e.key;
  std::memset(handle, 0, sizeof(*handle));
  std::memcpy(handle, &body, sizeof(body));
  return CUDA_SUCCESS;
}

// cuda.h names this cuIpcOpenMemHandle_v2; the unversioned ABI (the same) is
// in sim_legacy.cpp.
CUresult CUDAAPI cuIpcOpenMemHandle(CUdeviceptr* pdptr, CUipcMemHandle handle, unsigned int flags) {
  NZ_REQUIRE_INIT();
  if (!pdptr || (flags & ~CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) != 0) return CUDA_ERROR_INVALID_VALUE;
  if (!current_context()) return CUDA_ERROR_INVALID_CONTEXT;
  HandleBody body;
  std::memcpy(&body, &handle, sizeof(body));
  if (std::memcmp(body.magic, kMagic, sizeof(kMagic)) != 0 || body.physical == 0) return CUDA_ERROR_INVALID_VALUE;
  if (body.process_id == nz::fdx::process_id()) return CUDA_ERROR_INVALID_CONTEXT;
  const int fd = nz::fdx::fetch("nzsim-ipc", body.pid, body.process_id, body.key, 10000);
  if (fd < 0) return CUDA_ERROR_INVALID_HANDLE;  // the exporter is gone, or freed it
  uintptr_t addr = 0;
  const CUresult r = import_linear(fd, IpcExport{0, body.size, body.physical, body.key}, &addr);
  close(fd);
  if (r == CUDA_SUCCESS) *pdptr = addr;
  return r;
}

CUresult CUDAAPI cuIpcCloseMemHandle(CUdeviceptr dptr) {
  NZ_REQUIRE_INIT();
  if (!current_context()) return CUDA_ERROR_INVALID_CONTEXT;
  return close_imported(dptr);
}

}  // extern "C"
