// wrap_nccl.cpp: NCCL's public calls that move data (collectives, send and
// receive), its groups, and the calls that hand it buffers to keep
// (ncclCommRegister, ncclMemAlloc). NCCL's kernels find their buffers through
// work descriptors, never through launch parameters, so each call is
// described to the runtime as the byte ranges it reads and writes (hooks.h,
// "Communication libraries"); the runtime stages and holds them.
//
// PyTorch links libnccl.so.2 as a shared library: as a preloaded library we
// come first in the global scope, so our definitions interpose. The real
// functions are found lazily: RTLD_NEXT when NCCL is in the global scope, else
// the handle of a libnccl.so.2 already loaded with RTLD_LOCAL (ctypes, vLLM's
// pynccl). Only the calls we hook are exported: a process without NCCL never
// calls them, and a probe for NCCL (dlsym of ncclGetVersion, ncclCommInitRank)
// still finds none. Called without a real NCCL they fail with ncclSystemError
// and one `neuzip:` line.
#include <dlfcn.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "nccl_abi.h"
#include "real_driver.h"
#include "shim_log.h"
#include "wrap_common.h"

namespace nz::shim {
namespace {

constexpr const char* kNcclName = "libnccl.so.2";

// The real NCCL entry point `name`, resolved once it can be found.
class NcclEntry {
 public:
  explicit constexpr NcclEntry(const char* name) : name_(name) {}
  const char* name() const { return name_; }

  template <typename Fn>
  Fn get() noexcept {
    void* p = fn_.load(std::memory_order_acquire);
    if (!p) {
      p = resolve(name_);
      if (p) fn_.store(p, std::memory_order_release);
    }
    return reinterpret_cast<Fn>(p);
  }

  static void* resolve(const char* name) noexcept {
    // From this library, RTLD_NEXT searches the objects after us in the
    // global scope: a libnccl.so.2 linked by the program or a library.
    if (void* p = real_dlsym()(RTLD_NEXT, name)) return p;
    // Loaded with RTLD_LOCAL: only its own handle sees it. Never load it.
    if (void* h = dlopen(kNcclName, RTLD_LAZY | RTLD_NOLOAD)) {
      void* p = real_dlsym()(h, name);
      dlclose(h);  // the program's own reference keeps it loaded
      return p;
    }
    return nullptr;
  }

 private:
  const char* name_;
  std::atomic<void*> fn_{nullptr};
};

NcclEntry e_all_reduce{"ncclAllReduce"}, e_broadcast{"ncclBroadcast"}, e_bcast{"ncclBcast"},
    e_reduce{"ncclReduce"}, e_all_gather{"ncclAllGather"}, e_reduce_scatter{"ncclReduceScatter"},
    e_send{"ncclSend"}, e_recv{"ncclRecv"}, e_group_start{"ncclGroupStart"}, e_group_end{"ncclGroupEnd"},
    e_register{"ncclCommRegister"}, e_deregister{"ncclCommDeregister"}, e_mem_alloc{"ncclMemAlloc"},
    e_mem_free{"ncclMemFree"}, e_comm_count{"ncclCommCount"};

ncclResult_t missing_nccl(const NcclEntry& e) noexcept {
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    log_line("{} called but no real NCCL ({}) is loaded to forward it to: ncclSystemError", e.name(), kNcclName);
  }
  return ncclSystemError;
}

rt::ExternalOutcome outcome_of(ncclResult_t r) noexcept {
  if (r == ncclSuccess) return rt::ExternalOutcome::kEnqueued;
  if (r == ncclInProgress) return rt::ExternalOutcome::kPending;
  return rt::ExternalOutcome::kFailed;
}

// Bytes of `count` elements of `type`; a type this build does not know is
// taken as 8 bytes an element (staging too much is safe, too little is not).
size_t extent(size_t count, ncclDataType_t type) noexcept {
  size_t size = nccl::type_size(type);
  if (size == 0) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true)) log_line("NCCL data type {} unknown: staging 8 bytes per element", static_cast<int>(type));
    size = 8;
  }
  return count > SIZE_MAX / size ? SIZE_MAX : count * size;
}

// Ranks of `comm`, asked of the real NCCL; without an answer, as many as could
// be (the span then reaches to the end of the address space: all staged).
size_t ranks_of(ncclComm_t comm) noexcept {
  int n = 0;
  auto count = e_comm_count.get<ncclResult_t (*)(ncclComm_t, int*)>();
  if (count && count(comm, &n) == ncclSuccess && n > 0) return static_cast<size_t>(n);
  return SIZE_MAX;
}

size_t times(size_t a, size_t b) noexcept { return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b; }

rt::Span span(const void* p, size_t bytes, rt::Access access) noexcept {
  const auto ptr = reinterpret_cast<CUdeviceptr>(p);
  // Clamp so that ptr + bytes does not wrap.
  if (bytes > ~CUdeviceptr{0} - ptr) bytes = ~CUdeviceptr{0} - ptr;
  return rt::Span{ptr, bytes, access};
}

// Stage the spans on `stream`, forward, record the use (or hold it for the group).
template <typename Fn, typename... Args>
ncclResult_t run_collective(NcclEntry& e, const rt::Span* spans, size_t n, ncclStream_t stream,
                            Args... args) noexcept {
  auto real = e.get<Fn>();
  if (!real) return missing_nccl(e);
  if (!rt::external_hooks_enabled()) return real(args...);
  const rt::TransferDesc d = transfer_desc(spans, n, stream, false, true, false, e.name());
  if (rt::before_external(d) != CUDA_SUCCESS) return ncclUnhandledCudaError;
  const ncclResult_t r = real(args...);
  rt::after_external(d, outcome_of(r));
  return r;
}

using rt::Access;

// A call that reads `send_bytes` at `send` and writes `recv_bytes` at `recv`.
template <typename Fn, typename... Args>
ncclResult_t read_write(NcclEntry& e, const void* send, size_t send_bytes, const void* recv, size_t recv_bytes,
                        ncclStream_t stream, Args... args) noexcept {
  const rt::Span s[] = {span(send, send_bytes, Access::kRead), span(recv, recv_bytes, Access::kWrite)};
  return run_collective<Fn>(e, s, 2, stream, args...);
}

// A call that only reads (`access` kRead) or only writes one range.
template <typename Fn, typename... Args>
ncclResult_t one_way(NcclEntry& e, const void* p, size_t bytes, Access access, ncclStream_t stream,
                     Args... args) noexcept {
  const rt::Span s[] = {span(p, bytes, access)};
  return run_collective<Fn>(e, s, 1, stream, args...);
}

}  // namespace
}  // namespace nz::shim

namespace rt = nz::rt;
using nz::shim::span;
using nz::shim::Access;

// Exported (default visibility): these interpose on libnccl.so.2.
#define NZ_NCCL_EXPORT extern "C" [[gnu::visibility("default")]]

NZ_NCCL_EXPORT ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                                          ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                                          ncclStream_t stream) noexcept {
  using namespace nz::shim;
  const size_t bytes = extent(count, type);
  return read_write<decltype(&ncclAllReduce)>(e_all_reduce, sendbuff, bytes, recvbuff, bytes, stream,  //
                                              sendbuff, recvbuff, count, type, op, comm, stream);
}

// The root's sendbuff is read; every rank's recvbuff written (stage both on
// every rank: which rank we are does not matter for staging).
NZ_NCCL_EXPORT ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                                          ncclDataType_t type, int root, ncclComm_t comm,
                                          ncclStream_t stream) noexcept {
  using namespace nz::shim;
  const size_t bytes = extent(count, type);
  return read_write<decltype(&ncclBroadcast)>(e_broadcast, sendbuff, bytes, recvbuff, bytes, stream,  //
                                              sendbuff, recvbuff, count, type, root, comm, stream);
}

NZ_NCCL_EXPORT ncclResult_t ncclBcast(void* buff, size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                                      ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return one_way<decltype(&ncclBcast)>(e_bcast, buff, extent(count, type), Access::kWrite, stream,  //
                                       buff, count, type, root, comm, stream);
}

NZ_NCCL_EXPORT ncclResult_t ncclReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t type,
                                       ncclRedOp_t op, int root, ncclComm_t comm, ncclStream_t stream) noexcept {
  using namespace nz::shim;
  const size_t bytes = extent(count, type);
  return read_write<decltype(&ncclReduce)>(e_reduce, sendbuff, bytes, recvbuff, bytes, stream,  //
                                           sendbuff, recvbuff, count, type, op, root, comm, stream);
}

// recvbuff holds nranks x sendcount elements.
NZ_NCCL_EXPORT ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                                          ncclDataType_t type, ncclComm_t comm, ncclStream_t stream) noexcept {
  using namespace nz::shim;
  const size_t bytes = extent(sendcount, type);
  return read_write<decltype(&ncclAllGather)>(e_all_gather, sendbuff, bytes, recvbuff, times(bytes, ranks_of(comm)),
                                              stream, sendbuff, recvbuff, sendcount, type, comm, stream);
}

// sendbuff holds nranks x recvcount elements.
NZ_NCCL_EXPORT ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount,
                                              ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                                              ncclStream_t stream) noexcept {
  using namespace nz::shim;
  const size_t bytes = extent(recvcount, type);
  return read_write<decltype(&ncclReduceScatter)>(e_reduce_scatter, sendbuff, times(bytes, ranks_of(comm)), recvbuff,
                                                  bytes, stream, sendbuff, recvbuff, recvcount, type, op, comm,
                                                  stream);
}

NZ_NCCL_EXPORT ncclResult_t ncclSend(const void* sendbuff, size_t count, ncclDataType_t type, int peer,
                                     ncclComm_t comm, ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return one_way<decltype(&ncclSend)>(e_send, sendbuff, extent(count, type), Access::kRead, stream,  //
                                      sendbuff, count, type, peer, comm, stream);
}

NZ_NCCL_EXPORT ncclResult_t ncclRecv(void* recvbuff, size_t count, ncclDataType_t type, int peer, ncclComm_t comm,
                                     ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return one_way<decltype(&ncclRecv)>(e_recv, recvbuff, extent(count, type), Access::kWrite, stream,  //
                                      recvbuff, count, type, peer, comm, stream);
}

NZ_NCCL_EXPORT ncclResult_t ncclGroupStart() noexcept {
  using namespace nz::shim;
  auto real = e_group_start.get<decltype(&ncclGroupStart)>();
  if (!real) return missing_nccl(e_group_start);
  const ncclResult_t r = real();
  if (r == ncclSuccess && rt::external_hooks_enabled()) rt::on_group_start();
  return r;
}

NZ_NCCL_EXPORT ncclResult_t ncclGroupEnd() noexcept {
  using namespace nz::shim;
  auto real = e_group_end.get<decltype(&ncclGroupEnd)>();
  if (!real) return missing_nccl(e_group_end);
  const ncclResult_t r = real();
  if (rt::external_hooks_enabled()) rt::on_group_end(outcome_of(r));
  return r;
}

NZ_NCCL_EXPORT ncclResult_t ncclCommRegister(const ncclComm_t comm, void* buff, size_t size, void** handle) noexcept {
  using namespace nz::shim;
  auto real = e_register.get<decltype(&ncclCommRegister)>();
  if (!real) return missing_nccl(e_register);
  const ncclResult_t r = real(comm, buff, size, handle);
  if (r == ncclSuccess && handle != nullptr && rt::external_hooks_enabled()) {
    rt::pin_external(rt::PinOwner::kRegistration, reinterpret_cast<uintptr_t>(*handle),
                     reinterpret_cast<CUdeviceptr>(buff), size, "ncclCommRegister");
  }
  return r;
}

NZ_NCCL_EXPORT ncclResult_t ncclCommDeregister(const ncclComm_t comm, void* handle) noexcept {
  using namespace nz::shim;
  auto real = e_deregister.get<decltype(&ncclCommDeregister)>();
  if (!real) return missing_nccl(e_deregister);
  const ncclResult_t r = real(comm, handle);
  if (r == ncclSuccess && rt::external_hooks_enabled()) {
    rt::unpin_external(rt::PinOwner::kRegistration, reinterpret_cast<uintptr_t>(handle));
  }
  return r;
}

// NCCL allocates with cuMemCreate where it can (not memory neuzip serves); its
// fallback, cudaMalloc, may be. Pinned until ncclMemFree either way.
NZ_NCCL_EXPORT ncclResult_t ncclMemAlloc(void** ptr, size_t size) noexcept {
  using namespace nz::shim;
  auto real = e_mem_alloc.get<decltype(&ncclMemAlloc)>();
  if (!real) return missing_nccl(e_mem_alloc);
  const ncclResult_t r = real(ptr, size);
  if (r == ncclSuccess && ptr != nullptr && *ptr != nullptr && rt::external_hooks_enabled()) {
    rt::pin_external(rt::PinOwner::kLibraryAllocation, reinterpret_cast<uintptr_t>(*ptr),
                     reinterpret_cast<CUdeviceptr>(*ptr), size, "ncclMemAlloc");
  }
  return r;
}

NZ_NCCL_EXPORT ncclResult_t ncclMemFree(void* ptr) noexcept {
  using namespace nz::shim;
  auto real = e_mem_free.get<decltype(&ncclMemFree)>();
  if (!real) return missing_nccl(e_mem_free);
  if (ptr != nullptr && rt::external_hooks_enabled()) {
    rt::unpin_external(rt::PinOwner::kLibraryAllocation, reinterpret_cast<uintptr_t>(ptr));
  }
  return real(ptr);
}

// dlsym(handle of libnccl.so.2, "ncclXxx") (ctypes, vLLM's pynccl, a program
// that dlopens NCCL with RTLD_LOCAL) would bypass the definitions above:
// answer with ours for the names we hook, when that handle has the real one.
extern "C" [[gnu::visibility("hidden")]] void* nz_shim_nccl_lookup(void* handle, const char* symbol) noexcept {
  struct Name {
    const char* name;
    void* ours;
  };
  static const Name kHooked[] = {
      {"ncclAllReduce", reinterpret_cast<void*>(&ncclAllReduce)},
      {"ncclBroadcast", reinterpret_cast<void*>(&ncclBroadcast)},
      {"ncclBcast", reinterpret_cast<void*>(&ncclBcast)},
      {"ncclReduce", reinterpret_cast<void*>(&ncclReduce)},
      {"ncclAllGather", reinterpret_cast<void*>(&ncclAllGather)},
      {"ncclReduceScatter", reinterpret_cast<void*>(&ncclReduceScatter)},
      {"ncclSend", reinterpret_cast<void*>(&ncclSend)},
      {"ncclRecv", reinterpret_cast<void*>(&ncclRecv)},
      {"ncclGroupStart", reinterpret_cast<void*>(&ncclGroupStart)},
      {"ncclGroupEnd", reinterpret_cast<void*>(&ncclGroupEnd)},
      {"ncclCommRegister", reinterpret_cast<void*>(&ncclCommRegister)},
      {"ncclCommDeregister", reinterpret_cast<void*>(&ncclCommDeregister)},
      {"ncclMemAlloc", reinterpret_cast<void*>(&ncclMemAlloc)},
      {"ncclMemFree", reinterpret_cast<void*>(&ncclMemFree)},
  };
  if (handle == RTLD_DEFAULT || handle == RTLD_NEXT) return nullptr;  // glibc finds ours (or the next) itself
  for (const Name& n : kHooked) {
    if (std::strcmp(n.name, symbol) != 0) continue;
    // Only the real NCCL's handle, and only where it has the call (a feature
    // probe must still see an older NCCL lack it).
    void* nccl = dlopen(nz::shim::kNcclName, RTLD_LAZY | RTLD_NOLOAD);
    if (nccl == nullptr) return nullptr;
    dlclose(nccl);
    if (handle != nccl || nz::shim::real_dlsym()(handle, symbol) == nullptr) return nullptr;
    return n.ours;
  }
  return nullptr;
}
