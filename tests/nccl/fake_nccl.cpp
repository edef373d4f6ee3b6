// fake_nccl.cpp: libnccl.so.2 for the simulated driver, one rank per
// communicator, in process. What matters for neuzip is how the work reaches
// the device, and that is NCCL's way: each collective writes a work
// descriptor (the buffer addresses, the count) into a host-pinned ring mapped
// for the device, then launches one kernel whose only parameter is the
// descriptor's device address. Calls between ncclGroupStart and the outermost
// ncclGroupEnd are queued and launched at the group's end, as NCCL does; a
// send and a receive to oneself only make sense in a group.
//
// The API (names, enum values, signatures) is NCCL's public nccl.h
// (interpose/nccl_abi.h). Every driver call goes through the dynamic linker,
// so under LD_PRELOAD=libneuzip.so they meet neuzip's driver hooks like the
// real NCCL's (through the CUDA runtime) do.
#include <cuda.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "nccl_abi.h"
#include "nzsim.h"
#include "work.h"

extern "C" const nzsim_kernel* NZSIM_MODULE_ENTRY(unsigned* count, unsigned* abi);

namespace fake_nccl {
namespace {

constexpr int kVersion = 22809;  // reports itself as NCCL 2.28.9
constexpr size_t kSlots = 256;   // descriptors in flight per communicator
constexpr int kMaxRanks = 8;     // ranks of a communicator (this process is rank 0, the others its mirrors)
constexpr int kSignals = 64;     // signal indices of a communicator

thread_local ncclResult_t t_last_error = ncclSuccess;

ncclResult_t fail(ncclResult_t r) {
  t_last_error = r;
  return r;
}

// The ring of descriptors: host-pinned, mapped for the device (NCCL's work
// FIFO). A slot is reused once the kernel that read it has completed.
class WorkRing {
 public:
  CUresult init() {
    CUresult r = cuMemHostAlloc(reinterpret_cast<void**>(&host_), kSlots * sizeof(Work),
                                CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE);
    if (r != CUDA_SUCCESS) return r;
    r = cuMemHostGetDevicePointer(&device_, host_, 0);
    if (r != CUDA_SUCCESS) return r;
    for (auto& e : done_) {
      r = cuEventCreate(&e, CU_EVENT_DISABLE_TIMING);
      if (r != CUDA_SUCCESS) return r;
    }
    return CUDA_SUCCESS;
  }
  ~WorkRing() {
    for (auto e : done_) if (e) cuEventDestroy(e);
    if (host_) cuMemFreeHost(host_);
  }
  // Writes `w` into a free slot and launches `kernel` on it, on `stream`.
  CUresult launch(CUfunction kernel, const Work& w, CUstream stream) {
    std::lock_guard lock(mutex_);
    const size_t slot = next_++ % kSlots;
    if (used_[slot]) {
      CUresult r = cuEventSynchronize(done_[slot]);
      if (r != CUDA_SUCCESS) return r;
    }
    host_[slot] = w;
    CUdeviceptr descriptor = device_ + slot * sizeof(Work);
    void* params[] = {&descriptor};
    CUresult r = cuLaunchKernel(kernel, 1, 1, 1, 1, 1, 1, 0, stream, params, nullptr);
    if (r != CUDA_SUCCESS) return r;
    used_[slot] = true;
    return cuEventRecord(done_[slot], stream);
  }

 private:
  std::mutex mutex_;
  Work* host_ = nullptr;
  CUdeviceptr device_ = 0;
  CUevent done_[kSlots] = {};
  bool used_[kSlots] = {};
  size_t next_ = 0;
};

struct Queued {
  Work work;
  CUstream stream;
  bool is_send = false, is_recv = false;
};

}  // namespace
}  // namespace fake_nccl

struct ncclComm {
  int nranks = 1;
  int rank = 0;
  CUdevice device = 0;
  CUmodule module = nullptr;
  CUfunction kernel = nullptr;
  fake_nccl::WorkRing ring;
  std::mutex mutex;
  struct Registration {
    void* handle;
    void* buff;
    size_t size;
  };
  std::vector<Registration> registrations;  // ncclCommRegister, ncclCommWindowRegister
  // One-sided signals: counters in host-pinned memory the kernels update, and
  // how many of each index the waits enqueued so far expect.
  uint64_t* signals = nullptr;
  CUdeviceptr signals_device = 0;
  uint64_t expected[fake_nccl::kSignals] = {};
};

// A window: the registration's handle.
struct ncclWindow_vidmem {
  void* buff;
  size_t size;
};

namespace fake_nccl {
namespace {

struct Group {
  int depth = 0;
  std::vector<std::pair<ncclComm*, Queued>> queued;
};
thread_local Group t_group;

// libnccl.so.2 is its own simulator module: load the file we were loaded from.
CUresult load_module(ncclComm& c) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&NZSIM_MODULE_ENTRY), &info) == 0 || info.dli_fname == nullptr)
    return CUDA_ERROR_FILE_NOT_FOUND;
  CUresult r = cuModuleLoad(&c.module, info.dli_fname);
  if (r != CUDA_SUCCESS) return r;
  return cuModuleGetFunction(&c.kernel, c.module, kKernelName);
}

ncclResult_t launch(ncclComm* comm, const Work& w, CUstream stream) {
  return comm->ring.launch(comm->kernel, w, stream) == CUDA_SUCCESS ? ncclSuccess : fail(ncclUnhandledCudaError);
}

ncclResult_t submit(ncclComm* comm, const Queued& q) {
  if (comm == nullptr) return fail(ncclInvalidArgument);
  if (t_group.depth > 0) {
    try {
      t_group.queued.emplace_back(comm, q);
    } catch (...) {
      return fail(ncclSystemError);
    }
    return ncclSuccess;
  }
  if (q.is_send || q.is_recv) return fail(ncclInvalidUsage);  // to oneself: only within a group
  return launch(comm, q.work, q.stream);
}

bool reduces(WorkKind kind) {
  return kind == WorkKind::all_reduce || kind == WorkKind::reduce || kind == WorkKind::reduce_scatter;
}

// `send` and `recv` may be null where the rank does not use them (a gather's
// recvbuff off the root, a scatter's sendbuff).
ncclResult_t collective(WorkKind kind, const void* send, void* recv, size_t count, ncclDataType_t type,
                        ncclRedOp_t op, ncclComm* comm, CUstream stream, int root = 0, bool uses_send = true,
                        bool uses_recv = true) {
  if (comm == nullptr) return fail(ncclInvalidArgument);
  if (nz::nccl::type_size(type) == 0 || op < ncclSum || op > ncclAvg) return fail(ncclInvalidArgument);
  if (root < 0 || root >= comm->nranks) return fail(ncclInvalidArgument);
  if (reduces(kind) && comm->nranks > 1) return fail(ncclInvalidUsage);  // mirrored peers: not simulated
  if (count > 0 && ((uses_send && send == nullptr) || (uses_recv && recv == nullptr))) return fail(ncclInvalidArgument);
  if (count == 0) return ncclSuccess;
  Queued q{};
  q.work = Work{kind, static_cast<uint32_t>(type), static_cast<uint32_t>(op), static_cast<uint32_t>(comm->nranks),
                0, 0, count, reinterpret_cast<uint64_t>(send), reinterpret_cast<uint64_t>(recv)};
  q.work.root = static_cast<uint32_t>(root);
  q.stream = stream;
  return submit(comm, q);
}

// The group's end: sends meet receives in order (one rank: each to itself).
ncclResult_t run_group(std::vector<std::pair<ncclComm*, Queued>>& queued) {
  std::vector<std::pair<ncclComm*, Queued>*> sends, recvs;
  for (auto& e : queued) {
    if (e.second.is_send) sends.push_back(&e);
    if (e.second.is_recv) recvs.push_back(&e);
  }
  if (sends.size() != recvs.size()) return fail(ncclInvalidUsage);
  for (auto& e : queued) {
    if (e.second.is_send || e.second.is_recv) continue;
    if (ncclResult_t r = launch(e.first, e.second.work, e.second.stream); r != ncclSuccess) return r;
  }
  for (size_t i = 0; i < sends.size(); ++i) {
    auto& s = sends[i]->second;
    auto& r = recvs[i]->second;
    if (s.work.count != r.work.count || s.work.type != r.work.type) return fail(ncclInvalidUsage);
    Work w = r.work;
    w.send = s.work.send;
    // The receive's stream runs it; it waits for what the sender's stream queued before.
    if (s.stream != r.stream) {
      CUevent e;
      if (cuEventCreate(&e, CU_EVENT_DISABLE_TIMING) != CUDA_SUCCESS) return fail(ncclUnhandledCudaError);
      cuEventRecord(e, s.stream);
      cuStreamWaitEvent(r.stream, e, 0);
      cuEventDestroy(e);
    }
    if (ncclResult_t res = launch(recvs[i]->first, w, r.stream); res != ncclSuccess) return res;
  }
  return ncclSuccess;
}

}  // namespace
}  // namespace fake_nccl

using namespace fake_nccl;

#define FAKE_NCCL_API extern "C" [[gnu::visibility("default")]]

FAKE_NCCL_API ncclResult_t ncclGetVersion(int* version) {
  if (version == nullptr) return fail(ncclInvalidArgument);
  *version = kVersion;
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (id == nullptr) return fail(ncclInvalidArgument);
  std::memset(id, 0, sizeof *id);
  std::memcpy(id->internal, "fake-nccl", 9);
  return ncclSuccess;
}

// One process: rank 0 of up to kMaxRanks, the others mirrors of it.
FAKE_NCCL_API ncclResult_t ncclCommInitRank(ncclComm_t* out, int nranks, ncclUniqueId, int rank) {
  if (out == nullptr) return fail(ncclInvalidArgument);
  if (nranks < 1 || nranks > kMaxRanks || rank != 0) return fail(ncclInvalidArgument);
  CUcontext ctx = nullptr;
  if (cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || ctx == nullptr) return fail(ncclInvalidUsage);
  auto* c = new (std::nothrow) ncclComm;
  if (c == nullptr) return fail(ncclSystemError);
  c->nranks = nranks;
  if (cuCtxGetDevice(&c->device) != CUDA_SUCCESS || load_module(*c) != CUDA_SUCCESS || c->ring.init() != CUDA_SUCCESS ||
      cuMemHostAlloc(reinterpret_cast<void**>(&c->signals), kSignals * sizeof(uint64_t),
                     CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE) != CUDA_SUCCESS ||
      cuMemHostGetDevicePointer(&c->signals_device, c->signals, 0) != CUDA_SUCCESS) {
    if (c->signals) cuMemFreeHost(c->signals);
    delete c;
    return fail(ncclUnhandledCudaError);
  }
  std::memset(c->signals, 0, kSignals * sizeof(uint64_t));
  *out = c;
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclCommInitAll(ncclComm_t* comms, int ndev, const int*) {
  if (ndev != 1) return fail(ncclInvalidArgument);
  ncclUniqueId id;
  ncclGetUniqueId(&id);
  return ncclCommInitRank(comms, 1, id, 0);
}

FAKE_NCCL_API ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  return comm ? ncclSuccess : fail(ncclInvalidArgument);
}

FAKE_NCCL_API ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm == nullptr) return fail(ncclInvalidArgument);
  cuCtxSynchronize();
  if (comm->module) cuModuleUnload(comm->module);
  if (comm->signals) cuMemFreeHost(comm->signals);
  delete comm;
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclCommAbort(ncclComm_t comm) { return ncclCommDestroy(comm); }

FAKE_NCCL_API ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  if (comm == nullptr || count == nullptr) return fail(ncclInvalidArgument);
  *count = comm->nranks;
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  if (comm == nullptr || rank == nullptr) return fail(ncclInvalidArgument);
  *rank = comm->rank;
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int* device) {
  if (comm == nullptr || device == nullptr) return fail(ncclInvalidArgument);
  *device = comm->device;
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* error) {
  if (comm == nullptr || error == nullptr) return fail(ncclInvalidArgument);
  *error = ncclSuccess;
  return ncclSuccess;
}

FAKE_NCCL_API const char* ncclGetErrorString(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

FAKE_NCCL_API const char* ncclGetLastError(ncclComm_t) { return ncclGetErrorString(t_last_error); }

FAKE_NCCL_API ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type,
                                         ncclRedOp_t op, ncclComm_t comm, CUstream stream) {
  return collective(WorkKind::all_reduce, send, recv, count, type, op, comm, stream);
}

FAKE_NCCL_API ncclResult_t ncclReduce(const void* send, void* recv, size_t count, ncclDataType_t type,
                                      ncclRedOp_t op, int root, ncclComm_t comm, CUstream stream) {
  if (root != 0) return fail(ncclInvalidArgument);
  return collective(WorkKind::reduce, send, recv, count, type, op, comm, stream);
}

// The root is rank 0, this process (mirrors: every rank's data is the same).
FAKE_NCCL_API ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t type, int root,
                                         ncclComm_t comm, CUstream stream) {
  if (root != 0) return fail(ncclInvalidArgument);
  return collective(WorkKind::broadcast, send, recv, count, type, ncclSum, comm, stream);
}

FAKE_NCCL_API ncclResult_t ncclBcast(void* buff, size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                                     CUstream stream) {
  return ncclBroadcast(buff, buff, count, type, root, comm, stream);
}

FAKE_NCCL_API ncclResult_t ncclAllGather(const void* send, void* recv, size_t sendcount, ncclDataType_t type,
                                         ncclComm_t comm, CUstream stream) {
  return collective(WorkKind::all_gather, send, recv, sendcount, type, ncclSum, comm, stream);
}

FAKE_NCCL_API ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recvcount, ncclDataType_t type,
                                             ncclRedOp_t op, ncclComm_t comm, CUstream stream) {
  return collective(WorkKind::reduce_scatter, send, recv, recvcount, type, op, comm, stream);
}

FAKE_NCCL_API ncclResult_t ncclAlltoAll(const void* send, void* recv, size_t count, ncclDataType_t type,
                                        ncclComm_t comm, CUstream stream) {
  return collective(WorkKind::all_to_all, send, recv, count, type, ncclSum, comm, stream);
}

FAKE_NCCL_API ncclResult_t ncclGather(const void* send, void* recv, size_t count, ncclDataType_t type, int root,
                                      ncclComm_t comm, CUstream stream) {
  return collective(WorkKind::gather, send, recv, count, type, ncclSum, comm, stream, root, true, root == 0);
}

FAKE_NCCL_API ncclResult_t ncclScatter(const void* send, void* recv, size_t count, ncclDataType_t type, int root,
                                       ncclComm_t comm, CUstream stream) {
  return collective(WorkKind::scatter, send, recv, count, type, ncclSum, comm, stream, root, root == 0, true);
}

// The nccl*Config forms: a per-call configuration this NCCL ignores.
FAKE_NCCL_API ncclResult_t ncclAllReduceConfig(const void* send, void* recv, size_t count, ncclDataType_t type,
                                               ncclRedOp_t op, ncclComm_t comm, CUstream stream,
                                               const ncclCollConfig_t*) {
  return ncclAllReduce(send, recv, count, type, op, comm, stream);
}
FAKE_NCCL_API ncclResult_t ncclBroadcastConfig(const void* send, void* recv, size_t count, ncclDataType_t type,
                                               int root, ncclComm_t comm, CUstream stream, const ncclCollConfig_t*) {
  return ncclBroadcast(send, recv, count, type, root, comm, stream);
}
FAKE_NCCL_API ncclResult_t ncclReduceConfig(const void* send, void* recv, size_t count, ncclDataType_t type,
                                            ncclRedOp_t op, int root, ncclComm_t comm, CUstream stream,
                                            const ncclCollConfig_t*) {
  return ncclReduce(send, recv, count, type, op, root, comm, stream);
}
FAKE_NCCL_API ncclResult_t ncclAllGatherConfig(const void* send, void* recv, size_t count, ncclDataType_t type,
                                               ncclComm_t comm, CUstream stream, const ncclCollConfig_t*) {
  return ncclAllGather(send, recv, count, type, comm, stream);
}
FAKE_NCCL_API ncclResult_t ncclReduceScatterConfig(const void* send, void* recv, size_t count, ncclDataType_t type,
                                                   ncclRedOp_t op, ncclComm_t comm, CUstream stream,
                                                   const ncclCollConfig_t*) {
  return ncclReduceScatter(send, recv, count, type, op, comm, stream);
}
FAKE_NCCL_API ncclResult_t ncclAlltoAllConfig(const void* send, void* recv, size_t count, ncclDataType_t type,
                                              ncclComm_t comm, CUstream stream, const ncclCollConfig_t*) {
  return ncclAlltoAll(send, recv, count, type, comm, stream);
}
FAKE_NCCL_API ncclResult_t ncclGatherConfig(const void* send, void* recv, size_t count, ncclDataType_t type, int root,
                                            ncclComm_t comm, CUstream stream, const ncclCollConfig_t*) {
  return ncclGather(send, recv, count, type, root, comm, stream);
}
FAKE_NCCL_API ncclResult_t ncclScatterConfig(const void* send, void* recv, size_t count, ncclDataType_t type, int root,
                                             ncclComm_t comm, CUstream stream, const ncclCollConfig_t*) {
  return ncclScatter(send, recv, count, type, root, comm, stream);
}

FAKE_NCCL_API ncclResult_t ncclSend(const void* send, size_t count, ncclDataType_t type, int peer, ncclComm_t comm,
                                    CUstream stream) {
  if (peer != 0 || nz::nccl::type_size(type) == 0) return fail(ncclInvalidArgument);
  Queued q{};
  q.work = Work{WorkKind::send_recv, static_cast<uint32_t>(type), 0, 1, 0, 0, count,
                reinterpret_cast<uint64_t>(send), 0};
  q.stream = stream;
  q.is_send = true;
  return submit(comm, q);
}

FAKE_NCCL_API ncclResult_t ncclRecv(void* recv, size_t count, ncclDataType_t type, int peer, ncclComm_t comm,
                                    CUstream stream) {
  if (peer != 0 || nz::nccl::type_size(type) == 0) return fail(ncclInvalidArgument);
  Queued q{};
  q.work = Work{WorkKind::send_recv, static_cast<uint32_t>(type), 0, 1, 0, 0, count, 0,
                reinterpret_cast<uint64_t>(recv)};
  q.stream = stream;
  q.is_recv = true;
  return submit(comm, q);
}

FAKE_NCCL_API ncclResult_t ncclGroupStart() {
  ++t_group.depth;
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclGroupEnd() {
  if (t_group.depth == 0) return fail(ncclInvalidUsage);
  if (--t_group.depth > 0) return ncclSuccess;
  std::vector<std::pair<ncclComm*, Queued>> queued;
  queued.swap(t_group.queued);
  return run_group(queued);
}

// Ends the group as ncclGroupEnd does but runs nothing: the queued work is
// dropped and its time estimated (here: 1 µs a call).
FAKE_NCCL_API ncclResult_t ncclGroupSimulateEnd(ncclSimInfo_t* info) {
  if (t_group.depth == 0) return fail(ncclInvalidUsage);
  if (--t_group.depth > 0) return ncclSuccess;
  const size_t calls = t_group.queued.size();
  t_group.queued.clear();
  if (info != nullptr) info->estimatedTime = 1e-6f * static_cast<float>(calls);
  return ncclSuccess;
}

// A registered buffer may be read or written at any time by the peers it was
// mapped into, outside any call of this process; fake_nccl_touch_registered
// plays that part (one rank: the reads come from this process's kernel).
FAKE_NCCL_API ncclResult_t ncclCommRegister(const ncclComm_t comm, void* buff, size_t size, void** handle) {
  if (comm == nullptr || buff == nullptr || size == 0 || handle == nullptr) return fail(ncclInvalidArgument);
  auto* h = new (std::nothrow) unsigned char[1];
  if (h == nullptr) return fail(ncclSystemError);
  std::lock_guard lock(comm->mutex);
  try {
    comm->registrations.push_back({h, buff, size});
  } catch (...) {
    delete[] h;
    return fail(ncclSystemError);
  }
  *handle = h;
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclCommDeregister(const ncclComm_t comm, void* handle) {
  if (comm == nullptr) return fail(ncclInvalidArgument);
  std::lock_guard lock(comm->mutex);
  auto it = std::find_if(comm->registrations.begin(), comm->registrations.end(),
                         [&](const ncclComm::Registration& r) { return r.handle == handle; });
  if (it == comm->registrations.end()) return fail(ncclInvalidArgument);
  comm->registrations.erase(it);
  delete[] static_cast<unsigned char*>(handle);
  return ncclSuccess;
}

// A window is a registration too: peers read and write it at any time.
FAKE_NCCL_API ncclResult_t ncclCommWindowRegister(ncclComm_t comm, void* buff, size_t size, ncclWindow_t* win, int) {
  if (comm == nullptr || buff == nullptr || size == 0 || win == nullptr) return fail(ncclInvalidArgument);
  auto* w = new (std::nothrow) ncclWindow_vidmem{buff, size};
  if (w == nullptr) return fail(ncclSystemError);
  std::lock_guard lock(comm->mutex);
  try {
    comm->registrations.push_back({w, buff, size});
  } catch (...) {
    delete w;
    return fail(ncclSystemError);
  }
  *win = w;
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclCommWindowDeregister(ncclComm_t comm, ncclWindow_t win) {
  if (comm == nullptr) return fail(ncclInvalidArgument);
  std::lock_guard lock(comm->mutex);
  auto it = std::find_if(comm->registrations.begin(), comm->registrations.end(),
                         [&](const ncclComm::Registration& r) { return r.handle == win; });
  if (it == comm->registrations.end()) return fail(ncclInvalidArgument);
  comm->registrations.erase(it);
  delete win;
  return ncclSuccess;
}

namespace fake_nccl {
namespace {

// Work on the signal word `sig` of `comm` (validated by the caller).
Work signal_work(WorkKind kind, ncclComm* comm, int sig) {
  Work w{kind, ncclUint8, 0, static_cast<uint32_t>(comm->nranks), 0, 0, 0, 0, 0};
  w.signal = comm->signals_device + static_cast<size_t>(sig) * sizeof(uint64_t);
  return w;
}

}  // namespace
}  // namespace fake_nccl

// One-sided, to oneself (peer 0): the local buffer into the window at the
// offset, then one signal on `sig`.
FAKE_NCCL_API ncclResult_t ncclPutSignal(const void* local, size_t count, ncclDataType_t type, int peer,
                                         ncclWindow_t win, size_t offset, int sig, int, unsigned int, ncclComm_t comm,
                                         CUstream stream) {
  const size_t size = nz::nccl::type_size(type);
  if (comm == nullptr || win == nullptr || peer != 0 || size == 0 || sig < 0 || sig >= kSignals)
    return fail(ncclInvalidArgument);
  if (offset > win->size || count > (win->size - offset) / size || (count > 0 && local == nullptr))
    return fail(ncclInvalidArgument);
  Queued q{};
  q.work = signal_work(WorkKind::put_signal, comm, sig);
  q.work.type = static_cast<uint32_t>(type);
  q.work.count = count;
  q.work.send = reinterpret_cast<uint64_t>(local);
  q.work.recv = reinterpret_cast<uint64_t>(win->buff) + offset;
  q.stream = stream;
  return submit(comm, q);
}

FAKE_NCCL_API ncclResult_t ncclSignal(int peer, int sig, int, unsigned int, ncclComm_t comm, CUstream stream) {
  if (comm == nullptr || peer != 0 || sig < 0 || sig >= kSignals) return fail(ncclInvalidArgument);
  return submit(comm, Queued{signal_work(WorkKind::signal, comm, sig), stream});
}

// The stream waits (a kernel spinning on the signal word, up to 30 s) until
// every signal described has arrived, counting from the waits before. In a
// group, enqueued at its end, as NCCL does.
FAKE_NCCL_API ncclResult_t ncclWaitSignal(int n, ncclWaitSignalDesc_t* descs, ncclComm_t comm, CUstream stream) {
  if (comm == nullptr || n < 0 || (n > 0 && descs == nullptr)) return fail(ncclInvalidArgument);
  for (int i = 0; i < n; ++i) {
    const auto& d = descs[i];
    if (d.peer != 0 || d.sigIdx < 0 || d.sigIdx >= kSignals || d.opCnt < 0) return fail(ncclInvalidArgument);
    Queued q{signal_work(WorkKind::wait_signal, comm, d.sigIdx), stream};
    {
      std::lock_guard lock(comm->mutex);
      q.work.target = comm->expected[d.sigIdx] += static_cast<uint64_t>(d.opCnt);
    }
    if (ncclResult_t r = submit(comm, q); r != ncclSuccess) return r;
  }
  return ncclSuccess;
}

// Not NCCL's API (tests only): a kernel reads every buffer registered with
// `comm`, as a peer's kernels may while no call of ours runs.
FAKE_NCCL_API ncclResult_t fake_nccl_touch_registered(ncclComm_t comm, CUstream stream) {
  if (comm == nullptr) return fail(ncclInvalidArgument);
  std::lock_guard lock(comm->mutex);
  for (const auto& r : comm->registrations) {
    const Work w{WorkKind::touch, ncclUint8, 0, 1, 0, 0, r.size, reinterpret_cast<uint64_t>(r.buff), 0};
    if (ncclResult_t res = launch(comm, w, stream); res != ncclSuccess) return res;
  }
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclMemAlloc(void** ptr, size_t size) {
  if (ptr == nullptr || size == 0) return fail(ncclInvalidArgument);
  CUdeviceptr p = 0;
  if (cuMemAlloc(&p, size) != CUDA_SUCCESS) return fail(ncclUnhandledCudaError);
  *ptr = reinterpret_cast<void*>(p);
  return ncclSuccess;
}

FAKE_NCCL_API ncclResult_t ncclMemFree(void* ptr) {
  if (ptr == nullptr) return ncclSuccess;
  return cuMemFree(reinterpret_cast<CUdeviceptr>(ptr)) == CUDA_SUCCESS ? ncclSuccess : fail(ncclUnhandledCudaError);
}
