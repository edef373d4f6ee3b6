// cuMemGetHandleForAddressRange: a device range exported as a dma-buf, the
// way NIC stacks register GPU memory for RDMA (NCCL's IB/EFA plugins, UCX,
// libfabric) and cuFile registers it for GPUDirect Storage.
//
// The driver's rules (cuda.h): the pointer and size aligned to the host page
// size; for memory from cuMemAddressReserve, the whole range backed and
// mapped, by physical allocations of identical properties; and "users are
// also expected to retrieve a new handle every time the underlying physical
// allocation(s) ... are changed": a dma-buf holds the pages that backed the
// range when it was made, whatever is mapped there later.
//
// Here a dma-buf is a token file descriptor (an empty memfd the program
// closes as it would a dma-buf) and, per piece of the range, a duplicate of
// the memfd of the physical memory behind it. What a NIC would read or write
// goes through nzsim_dmabuf_io (nzsim.h) to those pages: a test sees its
// writes in device memory only while the same pages are still mapped there.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include "sim_internal.h"
#include "sim_memory.h"
#include "sim_stream.h"

namespace nzsim {
namespace {

struct DmaBuf {
  ino_t token = 0;  // the token fd's inode: a closed and reused number is told apart
  size_t bytes = 0;
  std::vector<DmaSegment> pieces;
};

std::mutex& g_mu = *new std::mutex;
std::map<int, DmaBuf>& g_bufs = *new std::map<int, DmaBuf>;  // token fd -> buffer

void close_pieces(DmaBuf& b) {
  for (const DmaSegment& d : b.pieces) close(d.fd);
  b.pieces.clear();
}

ino_t inode_of(int fd) {
  struct stat st{};
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

}  // namespace
}  // namespace nzsim

using namespace nzsim;

extern "C" {

CUresult CUDAAPI cuMemGetHandleForAddressRange(void* handle, CUdeviceptr dptr, size_t size,
                                               CUmemRangeHandleType type, unsigned long long flags) {
  NZ_REQUIRE_INIT();
  if (!handle || size == 0 || type != CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD) return CUDA_ERROR_INVALID_VALUE;
  if (flags & ~static_cast<unsigned long long>(CU_MEM_RANGE_FLAG_DMA_BUF_MAPPING_TYPE_PCIE))
    return CUDA_ERROR_INVALID_VALUE;
  if (flags != 0) return CUDA_ERROR_NOT_SUPPORTED;  // no BAR1 mapping on this platform
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  if (dptr % page != 0 || size % page != 0) return CUDA_ERROR_INVALID_VALUE;
  if (!current_context()) return CUDA_ERROR_INVALID_CONTEXT;
  RangeInfo info;
  if (!find_device_range(dptr, &info)) return CUDA_ERROR_INVALID_VALUE;
  DmaBuf buf;
  buf.bytes = size;
  if (info.vmm) {
    if (CUresult r = vmm_dmabuf_segments(dptr, size, &buf.pieces); r != CUDA_SUCCESS) return r;
  } else {
    DmaSegment one;
    if (CUresult r = linear_dmabuf_segment(dptr, size, &one); r != CUDA_SUCCESS) return r;
    buf.pieces.push_back(one);
  }
  const int token = memfd_create("nzsim-dmabuf", MFD_CLOEXEC);
  buf.token = token >= 0 ? inode_of(token) : 0;
  if (token < 0 || buf.token == 0) {
    if (token >= 0) close(token);
    close_pieces(buf);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  std::lock_guard lock(g_mu);
  if (auto old = g_bufs.find(token); old != g_bufs.end()) {  // a closed dma-buf's number, reused
    close_pieces(old->second);
    g_bufs.erase(old);
  }
  g_bufs[token] = std::move(buf);
  *static_cast<int*>(handle) = token;
  return CUDA_SUCCESS;
}

__attribute__((visibility("default"))) int nzsim_dmabuf_io(int fd, unsigned long long offset, void* data,
                                                           unsigned long long bytes, int write) {
  std::lock_guard lock(g_mu);
  auto it = g_bufs.find(fd);
  if (it == g_bufs.end()) return -1;
  DmaBuf& b = it->second;
  if (inode_of(fd) != b.token) {  // closed: the buffer is gone
    close_pieces(b);
    g_bufs.erase(it);
    return -1;
  }
  if (offset > b.bytes || bytes > b.bytes - offset) return -1;
  auto* p = static_cast<char*>(data);
  size_t at = 0;  // offset of the current piece in the buffer
  for (const DmaSegment& d : b.pieces) {
    const size_t lo = std::max<size_t>(offset, at), hi = std::min<size_t>(offset + bytes, at + d.bytes);
    if (lo < hi) {
      const off_t where = static_cast<off_t>(d.offset + (lo - at));
      const size_t n = hi - lo;
      const ssize_t done = write ? pwrite(d.fd, p + (lo - offset), n, where) : pread(d.fd, p + (lo - offset), n, where);
      if (done != static_cast<ssize_t>(n)) return -1;
    }
    at += d.bytes;
  }
  return 0;
}

}  // extern "C"
