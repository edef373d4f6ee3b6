// data_parallel.cpp: see data_parallel.h.
#include "data_parallel.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string_view>

#include <fmt/core.h>

#include "driver.h"
#include "nccl_abi.h"

namespace minifw {

namespace {

[[noreturn]] void die_nccl(const char* call, ncclResult_t r, const char* (*describe)(ncclResult_t)) {
  fmt::print(stderr, "minifw: {} failed: {} {}\n", call, static_cast<int>(r), describe ? describe(r) : "");
  std::exit(kExitDriverError);
}

ncclDataType_t nccl_type(WeightDtype d) { return d == kDtypeBF16 ? ncclBfloat16 : ncclFloat32; }

}  // namespace

// libnccl.so.2 opened locally (RTLD_LOCAL) and its calls found with dlsym on
// its handle, as ctypes does.
class NcclLibrary {
 public:
  NcclLibrary() {
    handle_ = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      const char* why = dlerror();
      fmt::print(stderr, "minifw: --dist needs libnccl.so.2: {}\n", why ? why : "not found");
      std::exit(1);
    }
    find(error_string, "ncclGetErrorString");
    find(get_unique_id, "ncclGetUniqueId");
    find(init_rank, "ncclCommInitRank");
    find(destroy, "ncclCommDestroy");
    find(group_start, "ncclGroupStart");
    find(group_end, "ncclGroupEnd");
    find(broadcast, "ncclBroadcast");
    find(all_reduce, "ncclAllReduce");
    find(all_gather, "ncclAllGather");
    find(reduce_scatter, "ncclReduceScatter");
    ncclUniqueId id;
    check(get_unique_id(&id), "ncclGetUniqueId");
    check(init_rank(&comm, 1, id, 0), "ncclCommInitRank");
  }
  ~NcclLibrary() {
    if (comm != nullptr) destroy(comm);
    // Not closed: the driver may still hold its module (the library itself).
  }
  NcclLibrary(const NcclLibrary&) = delete;
  NcclLibrary& operator=(const NcclLibrary&) = delete;

  void check(ncclResult_t r, const char* call) const {
    if (r != ncclSuccess) die_nccl(call, r, error_string);
  }

  // All calls between start and end are one NCCL group, enqueued at its end.
  template <typename Body>
  void group(Body&& body) {
    check(group_start(), "ncclGroupStart");
    body();
    check(group_end(), "ncclGroupEnd");
  }

  const char* (*error_string)(ncclResult_t) = nullptr;
  ncclResult_t (*get_unique_id)(ncclUniqueId*) = nullptr;
  ncclResult_t (*init_rank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
  ncclResult_t (*destroy)(ncclComm_t) = nullptr;
  ncclResult_t (*group_start)() = nullptr;
  ncclResult_t (*group_end)() = nullptr;
  ncclResult_t (*broadcast)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, CUstream) = nullptr;
  ncclResult_t (*all_reduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, CUstream) = nullptr;
  ncclResult_t (*all_gather)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, CUstream) = nullptr;
  ncclResult_t (*reduce_scatter)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t,
                                 CUstream) = nullptr;
  ncclComm_t comm = nullptr;

 private:
  template <typename Fn>
  void find(Fn& fn, const char* name) {
    fn = reinterpret_cast<Fn>(dlsym(handle_, name));
    if (fn == nullptr) {
      fmt::print(stderr, "minifw: libnccl.so.2 lacks {}\n", name);
      std::exit(1);
    }
  }

  void* handle_ = nullptr;
};

namespace {
void* as_ptr(CUdeviceptr p) { return reinterpret_cast<void*>(p); }
}  // namespace

DataParallel::DataParallel(DistMode mode, Model& model, CachingAllocator& allocator, CUstream data)
    : mode_(mode), model_(model), nccl_(std::make_unique<NcclLibrary>()) {
  if (mode_ != DistMode::fsdp) return;
  // A sharded checkpoint: each shard arrives from the host. (With one rank
  // the shard is the whole parameter, read back from the loaded model.)
  constexpr size_t kAlign = 512;  // each shard starts aligned, as FSDP pads them
  size_t total = 0;
  for (const Parameter& p : model_.parameters()) total += (p.bytes() + kAlign - 1) / kAlign * kAlign;
  flat_shard_ = DeviceBuffer(allocator, total, "fsdp flat shard");
  std::vector<unsigned char> host;
  CUdeviceptr at = flat_shard_.get();
  for (const Parameter& p : model_.parameters()) {
    copy_parameter_to_host(p, data, host);
    MINIFW_CHECK(cuMemcpyHtoD(at, host.data(), host.size()));
    shards_.push_back(at);
    at += (p.bytes() + kAlign - 1) / kAlign * kAlign;
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::after_load(CUstream compute) {
  if (mode_ != DistMode::ddp) return;
  nccl_->group([&] {
    for (Parameter& p : model_.parameters()) {
      nccl_->check(nccl_->broadcast(as_ptr(p.data.get()), as_ptr(p.data.get()), p.elements, nccl_type(p.dtype), 0,
                                    nccl_->comm, compute),
                   "ncclBroadcast");
    }
  });
  // The wrapped model is usable once every rank holds rank 0's parameters.
  // Waiting here also keeps the broadcast apart from the optimizer's first
  // reads on another stream, so a broadcast that reads unmapped memory fails
  // here, every time, and not only when it runs before those reads.
  MINIFW_CHECK(cuStreamSynchronize(compute));
}

void DataParallel::before_forward(CUstream compute) {
  if (mode_ != DistMode::fsdp) return;
  nccl_->group([&] {
    auto& params = model_.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      nccl_->check(nccl_->all_gather(as_ptr(shards_[i]), as_ptr(params[i].data.get()), params[i].elements,
                                     nccl_type(params[i].dtype), nccl_->comm, compute),
                   "ncclAllGather");
    }
  });
}

void DataParallel::reduce_gradients(Gradients& grads, CUstream compute) {
  if (mode_ == DistMode::none) return;
  auto& params = model_.parameters();
  nccl_->group([&] {
    for (size_t i = 0; i < grads.grads.size() && i < params.size(); ++i) {
      void* g = as_ptr(grads.grads[i].get());
      if (g == nullptr) continue;
      // Gradients are fp32, one per parameter; in place (rank 0's slice of
      // a reduce-scatter is the buffer's start).
      if (mode_ == DistMode::ddp) {
        nccl_->check(nccl_->all_reduce(g, g, params[i].elements, ncclFloat32, ncclAvg, nccl_->comm, compute),
                     "ncclAllReduce");
      } else {
        nccl_->check(nccl_->reduce_scatter(g, g, params[i].elements, ncclFloat32, ncclAvg, nccl_->comm, compute),
                     "ncclReduceScatter");
      }
    }
  });
}

void DataParallel::after_optimizer(CUstream stream) {
  if (mode_ != DistMode::fsdp) return;
  nccl_->group([&] {
    auto& params = model_.parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      nccl_->check(nccl_->reduce_scatter(as_ptr(params[i].data.get()), as_ptr(shards_[i]), params[i].elements,
                                         nccl_type(params[i].dtype), ncclSum, nccl_->comm, stream),
                   "ncclReduceScatter");
    }
  });
}

}  // namespace minifw
