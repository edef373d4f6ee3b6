// wrap_nccl.cpp: NCCL's public calls that move data (collectives, send and
// receive, one-sided puts), its groups, and the calls that hand it buffers to
// keep (ncclCommRegister, ncclCommWindowRegister, ncclMemAlloc). NCCL 2.28
// added ncclAlltoAll, ncclGather and ncclScatter (PyTorch's equal-split
// all_to_all_single calls ncclAlltoAll when built with it), later releases a
// nccl*Config variant of every collective and one-sided ncclPutSignal /
// ncclWaitSignal: a call not hooked here would let NCCL's kernels meet
// compressed memory. NCCL's kernels find their buffers through
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
    e_mem_free{"ncclMemFree"}, e_comm_count{"ncclCommCount"}, e_user_rank{"ncclCommUserRank"},
    e_all_to_all{"ncclAlltoAll"}, e_gather{"ncclGather"}, e_scatter{"ncclScatter"},
    e_all_reduce_config{"ncclAllReduceConfig"}, e_broadcast_config{"ncclBroadcastConfig"},
    e_reduce_config{"ncclReduceConfig"}, e_all_gather_config{"ncclAllGatherConfig"},
    e_reduce_scatter_config{"ncclReduceScatterConfig"}, e_all_to_all_config{"ncclAlltoAllConfig"},
    e_gather_config{"ncclGatherConfig"}, e_scatter_config{"ncclScatterConfig"},
    e_window_register{"ncclCommWindowRegister"}, e_window_deregister{"ncclCommWindowDeregister"},
    e_put_signal{"ncclPutSignal"}, e_wait_signal{"ncclWaitSignal"}, e_group_simulate_end{"ncclGroupSimulateEnd"};

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

// Whether this process is `root` of `comm`; without an answer, taken to be
// (a root-only buffer is then staged too: too much is safe, too little not).
bool is_root(ncclComm_t comm, int root) noexcept {
  int rank = -1;
  auto user_rank = e_user_rank.get<ncclResult_t (*)(ncclComm_t, int*)>();
  if (user_rank && user_rank(comm, &rank) == ncclSuccess && rank >= 0) return rank == root;
  return true;
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

// What a collective reads (send) and writes (recv) on this rank; a range of 0
// bytes is not touched here (a root-only buffer on another rank).
struct Extents {
  const void* send;
  size_t send_bytes;
  const void* recv;
  size_t recv_bytes;
};

// Each rank's buffers hold `count` elements (all-reduce, broadcast, reduce).
Extents same_size(const void* send, const void* recv, size_t count, ncclDataType_t type) noexcept {
  const size_t bytes = extent(count, type);
  return {send, bytes, recv, bytes};
}
// recvbuff holds nranks x sendcount elements.
Extents all_gather(const void* send, const void* recv, size_t sendcount, ncclDataType_t type, ncclComm_t comm) noexcept {
  const size_t bytes = extent(sendcount, type);
  return {send, bytes, recv, times(bytes, ranks_of(comm))};
}
// sendbuff holds nranks x recvcount elements.
Extents reduce_scatter(const void* send, const void* recv, size_t recvcount, ncclDataType_t type,
                       ncclComm_t comm) noexcept {
  const size_t bytes = extent(recvcount, type);
  return {send, times(bytes, ranks_of(comm)), recv, bytes};
}
// Both hold nranks x count elements: chunk j goes to (comes from) rank j.
Extents all_to_all(const void* send, const void* recv, size_t count, ncclDataType_t type, ncclComm_t comm) noexcept {
  const size_t bytes = times(extent(count, type), ranks_of(comm));
  return {send, bytes, recv, bytes};
}
// Every rank sends count elements; the root receives nranks x count
// (recvbuff is not used elsewhere, and may be anything there).
Extents gather(const void* send, const void* recv, size_t count, ncclDataType_t type, int root,
               ncclComm_t comm) noexcept {
  const size_t bytes = extent(count, type);
  return {send, bytes, recv, is_root(comm, root) ? times(bytes, ranks_of(comm)) : 0};
}
// The root sends nranks x count elements (sendbuff is not used elsewhere);
// every rank receives count.
Extents scatter(const void* send, const void* recv, size_t count, ncclDataType_t type, int root,
                ncclComm_t comm) noexcept {
  const size_t bytes = extent(count, type);
  return {send, is_root(comm, root) ? times(bytes, ranks_of(comm)) : 0, recv, bytes};
}

// A call that reads and writes the ranges `x` names.
template <typename Fn, typename... Args>
ncclResult_t read_write(NcclEntry& e, const Extents& x, ncclStream_t stream, Args... args) noexcept {
  rt::Span s[2];
  size_t n = 0;
  if (x.send_bytes != 0) s[n++] = span(x.send, x.send_bytes, Access::kRead);
  if (x.recv_bytes != 0) s[n++] = span(x.recv, x.recv_bytes, Access::kWrite);
  return run_collective<Fn>(e, s, n, stream, args...);
}

// A call that only reads (`access` kRead) or only writes one range.
template <typename Fn, typename... Args>
ncclResult_t one_way(NcclEntry& e, const void* p, size_t bytes, Access access, ncclStream_t stream,
                     Args... args) noexcept {
  const rt::Span s[] = {span(p, bytes, access)};
  return run_collective<Fn>(e, s, 1, stream, args...);
}

// A registration (ncclCommRegister, ncclCommWindowRegister): on success the
// buffer is pinned under the handle NCCL wrote to *owner.
template <typename Fn, typename Owner, typename... Args>
ncclResult_t registering(NcclEntry& e, Owner* owner, void* buff, size_t size, Args... args) noexcept {
  auto real = e.get<Fn>();
  if (!real) return missing_nccl(e);
  const ncclResult_t r = real(args...);
  if (r == ncclSuccess && owner != nullptr && rt::external_hooks_enabled()) {
    rt::pin_external(rt::PinOwner::kRegistration, reinterpret_cast<uintptr_t>(*owner),
                     reinterpret_cast<CUdeviceptr>(buff), size, e.name());
  }
  return r;
}

template <typename Fn, typename Owner, typename... Args>
ncclResult_t deregistering(NcclEntry& e, Owner owner, Args... args) noexcept {
  auto real = e.get<Fn>();
  if (!real) return missing_nccl(e);
  const ncclResult_t r = real(args...);
  if (r == ncclSuccess && rt::external_hooks_enabled())
    rt::unpin_external(rt::PinOwner::kRegistration, reinterpret_cast<uintptr_t>(owner));
  return r;
}

}  // namespace
}  // namespace nz::shim

namespace rt = nz::rt;
using nz::shim::span;
using nz::shim::Access;

// Exported (default visibility): these interpose on libnccl.so.2.
#define NZ_NCCL_EXPORT extern "C" [[gnu::visibility("default")]]

// Each collective in its plain form and in its nccl*Config form (a trailing
// per-call configuration, passed through).
NZ_NCCL_EXPORT ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t type,
                                          ncclRedOp_t op, ncclComm_t comm, ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclAllReduce)>(e_all_reduce, same_size(sendbuff, recvbuff, count, type), stream,
                                              sendbuff, recvbuff, count, type, op, comm, stream);
}
NZ_NCCL_EXPORT ncclResult_t ncclAllReduceConfig(const void* sendbuff, void* recvbuff, size_t count,
                                                ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                                                ncclStream_t stream, const ncclCollConfig_t* config) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclAllReduceConfig)>(e_all_reduce_config, same_size(sendbuff, recvbuff, count, type),
                                                    stream, sendbuff, recvbuff, count, type, op, comm, stream, config);
}

// The root's sendbuff is read; every rank's recvbuff written (stage both on
// every rank: sendbuff is the root's only, but staging it elsewhere is harmless).
NZ_NCCL_EXPORT ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t type,
                                          int root, ncclComm_t comm, ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclBroadcast)>(e_broadcast, same_size(sendbuff, recvbuff, count, type), stream,
                                              sendbuff, recvbuff, count, type, root, comm, stream);
}
NZ_NCCL_EXPORT ncclResult_t ncclBroadcastConfig(const void* sendbuff, void* recvbuff, size_t count,
                                                ncclDataType_t type, int root, ncclComm_t comm, ncclStream_t stream,
                                                const ncclCollConfig_t* config) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclBroadcastConfig)>(e_broadcast_config, same_size(sendbuff, recvbuff, count, type),
                                                    stream, sendbuff, recvbuff, count, type, root, comm, stream,
                                                    config);
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
  return read_write<decltype(&ncclReduce)>(e_reduce, same_size(sendbuff, recvbuff, count, type), stream,  //
                                           sendbuff, recvbuff, count, type, op, root, comm, stream);
}
NZ_NCCL_EXPORT ncclResult_t ncclReduceConfig(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t type,
                                             ncclRedOp_t op, int root, ncclComm_t comm, ncclStream_t stream,
                                             const ncclCollConfig_t* config) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclReduceConfig)>(e_reduce_config, same_size(sendbuff, recvbuff, count, type), stream,
                                                 sendbuff, recvbuff, count, type, op, root, comm, stream, config);
}

NZ_NCCL_EXPORT ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                                          ncclDataType_t type, ncclComm_t comm, ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclAllGather)>(e_all_gather, all_gather(sendbuff, recvbuff, sendcount, type, comm),
                                              stream, sendbuff, recvbuff, sendcount, type, comm, stream);
}
NZ_NCCL_EXPORT ncclResult_t ncclAllGatherConfig(const void* sendbuff, void* recvbuff, size_t sendcount,
                                                ncclDataType_t type, ncclComm_t comm, ncclStream_t stream,
                                                const ncclCollConfig_t* config) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclAllGatherConfig)>(e_all_gather_config,
                                                    all_gather(sendbuff, recvbuff, sendcount, type, comm), stream,
                                                    sendbuff, recvbuff, sendcount, type, comm, stream, config);
}

NZ_NCCL_EXPORT ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount,
                                              ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                                              ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclReduceScatter)>(e_reduce_scatter,
                                                  reduce_scatter(sendbuff, recvbuff, recvcount, type, comm), stream,
                                                  sendbuff, recvbuff, recvcount, type, op, comm, stream);
}
NZ_NCCL_EXPORT ncclResult_t ncclReduceScatterConfig(const void* sendbuff, void* recvbuff, size_t recvcount,
                                                    ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                                                    ncclStream_t stream, const ncclCollConfig_t* config) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclReduceScatterConfig)>(
      e_reduce_scatter_config, reduce_scatter(sendbuff, recvbuff, recvcount, type, comm), stream, sendbuff, recvbuff,
      recvcount, type, op, comm, stream, config);
}

NZ_NCCL_EXPORT ncclResult_t ncclAlltoAll(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t type,
                                         ncclComm_t comm, ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclAlltoAll)>(e_all_to_all, all_to_all(sendbuff, recvbuff, count, type, comm), stream,
                                             sendbuff, recvbuff, count, type, comm, stream);
}
NZ_NCCL_EXPORT ncclResult_t ncclAlltoAllConfig(const void* sendbuff, void* recvbuff, size_t count,
                                               ncclDataType_t type, ncclComm_t comm, ncclStream_t stream,
                                               const ncclCollConfig_t* config) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclAlltoAllConfig)>(e_all_to_all_config,
                                                   all_to_all(sendbuff, recvbuff, count, type, comm), stream,
                                                   sendbuff, recvbuff, count, type, comm, stream, config);
}

NZ_NCCL_EXPORT ncclResult_t ncclGather(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t type,
                                       int root, ncclComm_t comm, ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclGather)>(e_gather, gather(sendbuff, recvbuff, count, type, root, comm), stream,
                                           sendbuff, recvbuff, count, type, root, comm, stream);
}
NZ_NCCL_EXPORT ncclResult_t ncclGatherConfig(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t type,
                                             int root, ncclComm_t comm, ncclStream_t stream,
                                             const ncclCollConfig_t* config) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclGatherConfig)>(e_gather_config, gather(sendbuff, recvbuff, count, type, root, comm),
                                                 stream, sendbuff, recvbuff, count, type, root, comm, stream, config);
}

NZ_NCCL_EXPORT ncclResult_t ncclScatter(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t type,
                                        int root, ncclComm_t comm, ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclScatter)>(e_scatter, scatter(sendbuff, recvbuff, count, type, root, comm), stream,
                                            sendbuff, recvbuff, count, type, root, comm, stream);
}
NZ_NCCL_EXPORT ncclResult_t ncclScatterConfig(const void* sendbuff, void* recvbuff, size_t count,
                                              ncclDataType_t type, int root, ncclComm_t comm, ncclStream_t stream,
                                              const ncclCollConfig_t* config) noexcept {
  using namespace nz::shim;
  return read_write<decltype(&ncclScatterConfig)>(e_scatter_config,
                                                  scatter(sendbuff, recvbuff, count, type, root, comm), stream,
                                                  sendbuff, recvbuff, count, type, root, comm, stream, config);
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

// Ends the group like ncclGroupEnd but only estimates its time: nothing is
// enqueued (NCCL drops the group's work). Unhooked, neuzip's group stayed
// open: every later collective was held as part of it, staged for good.
NZ_NCCL_EXPORT ncclResult_t ncclGroupSimulateEnd(ncclSimInfo_t* info) noexcept {
  using namespace nz::shim;
  auto real = e_group_simulate_end.get<decltype(&ncclGroupSimulateEnd)>();
  if (!real) return missing_nccl(e_group_simulate_end);
  const ncclResult_t r = real(info);
  if (rt::external_hooks_enabled()) rt::on_group_end(rt::ExternalOutcome::kFailed);  // (nothing enqueued)
  return r;
}

NZ_NCCL_EXPORT ncclResult_t ncclCommRegister(const ncclComm_t comm, void* buff, size_t size, void** handle) noexcept {
  using namespace nz::shim;
  return registering<decltype(&ncclCommRegister)>(e_register, handle, buff, size, comm, buff, size, handle);
}

NZ_NCCL_EXPORT ncclResult_t ncclCommDeregister(const ncclComm_t comm, void* handle) noexcept {
  using namespace nz::shim;
  return deregistering<decltype(&ncclCommDeregister)>(e_deregister, handle, comm, handle);
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

// A window (symmetric memory) is read and written by peers at any time, as a
// registered buffer is: pinned until it is deregistered.
NZ_NCCL_EXPORT ncclResult_t ncclCommWindowRegister(ncclComm_t comm, void* buff, size_t size, ncclWindow_t* win,
                                                   int flags) noexcept {
  using namespace nz::shim;
  return registering<decltype(&ncclCommWindowRegister)>(e_window_register, win, buff, size, comm, buff, size, win,
                                                        flags);
}

NZ_NCCL_EXPORT ncclResult_t ncclCommWindowDeregister(ncclComm_t comm, ncclWindow_t win) noexcept {
  using namespace nz::shim;
  return deregistering<decltype(&ncclCommWindowDeregister)>(e_window_deregister, win, comm, win);
}

// A one-sided put reads the local buffer; the peer's window is the peer's.
NZ_NCCL_EXPORT ncclResult_t ncclPutSignal(const void* localbuff, size_t count, ncclDataType_t type, int peer,
                                          ncclWindow_t peer_win, size_t peer_win_offset, int sig_idx, int ctx,
                                          unsigned int flags, ncclComm_t comm, ncclStream_t stream) noexcept {
  using namespace nz::shim;
  return one_way<decltype(&ncclPutSignal)>(e_put_signal, localbuff, extent(count, type), Access::kRead, stream,
                                           localbuff, count, type, peer, peer_win, peer_win_offset, sig_idx, ctx,
                                           flags, comm, stream);
}

// The stream waits for signals from peers, which may come only after this
// rank's later work: marked as a stream memory wait is (patient_wait.cpp), so
// that no eviction waits on the host for what is queued behind it.
NZ_NCCL_EXPORT ncclResult_t ncclWaitSignal(int n_desc, ncclWaitSignalDesc_t* descs, ncclComm_t comm,
                                           ncclStream_t stream) noexcept {
  using namespace nz::shim;
  auto real = e_wait_signal.get<decltype(&ncclWaitSignal)>();
  if (!real) return missing_nccl(e_wait_signal);
  const ncclResult_t r = real(n_desc, descs, comm, stream);
  if (r == ncclSuccess && rt::external_hooks_enabled()) rt::after_external_wait(stream);
  return r;
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
      {"ncclGroupSimulateEnd", reinterpret_cast<void*>(&ncclGroupSimulateEnd)},
      {"ncclCommRegister", reinterpret_cast<void*>(&ncclCommRegister)},
      {"ncclCommDeregister", reinterpret_cast<void*>(&ncclCommDeregister)},
      {"ncclMemAlloc", reinterpret_cast<void*>(&ncclMemAlloc)},
      {"ncclMemFree", reinterpret_cast<void*>(&ncclMemFree)},
      {"ncclAlltoAll", reinterpret_cast<void*>(&ncclAlltoAll)},
      {"ncclGather", reinterpret_cast<void*>(&ncclGather)},
      {"ncclScatter", reinterpret_cast<void*>(&ncclScatter)},
      {"ncclAllReduceConfig", reinterpret_cast<void*>(&ncclAllReduceConfig)},
      {"ncclBroadcastConfig", reinterpret_cast<void*>(&ncclBroadcastConfig)},
      {"ncclReduceConfig", reinterpret_cast<void*>(&ncclReduceConfig)},
      {"ncclAllGatherConfig", reinterpret_cast<void*>(&ncclAllGatherConfig)},
      {"ncclReduceScatterConfig", reinterpret_cast<void*>(&ncclReduceScatterConfig)},
      {"ncclAlltoAllConfig", reinterpret_cast<void*>(&ncclAlltoAllConfig)},
      {"ncclGatherConfig", reinterpret_cast<void*>(&ncclGatherConfig)},
      {"ncclScatterConfig", reinterpret_cast<void*>(&ncclScatterConfig)},
      {"ncclCommWindowRegister", reinterpret_cast<void*>(&ncclCommWindowRegister)},
      {"ncclCommWindowDeregister", reinterpret_cast<void*>(&ncclCommWindowDeregister)},
      {"ncclPutSignal", reinterpret_cast<void*>(&ncclPutSignal)},
      {"ncclWaitSignal", reinterpret_cast<void*>(&ncclWaitSignal)},
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
