// Stream memory operations (CUDA 11.7+ ABI; the _ptsz variants are
// generated): cuStreamWriteValue32/64 and cuStreamBatchMemOp. Each call is
// one stream item that writes its words in order; a capture records it as
// one CU_GRAPH_NODE_TYPE_BATCH_MEM_OP node, as the driver does, whose
// parameters cuGraphBatchMemOpNodeGetParams answers. cuStreamWaitValue32/64
// (and wait operations in a batch) hold their stream until the word at their
// address meets the condition, reading it as the GPU polls it: a wait on an
// unmapped page faults. They stop polling once the context has a sticky error
// (a GPU's context is dead then). In lazy mode (NZSIM_LAZY) a wait whose
// writer is a stream nobody waits for stays blocked: a lazy device runs a
// stream's work only when asked. Remote-write flushes and barriers are no-ops.
#include <cuda.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "sim_graph_nodes.h"
#include "sim_stream.h"

namespace nzsim {
namespace {

// The condition of a wait (cuda.h's CU_STREAM_WAIT_VALUE_*); GEQ compares
// cyclically, as the driver documents ((int32_t)(*addr - value) >= 0).
template <typename T>
bool wait_met(T word, T value, unsigned flags) {
  using S = std::make_signed_t<T>;
  switch (flags & 3u) {
    case CU_STREAM_WAIT_VALUE_GEQ: return static_cast<S>(word - value) >= 0;
    case CU_STREAM_WAIT_VALUE_EQ: return word == value;
    case CU_STREAM_WAIT_VALUE_AND: return (word & value) != 0;
    default: return static_cast<T>(~(word | value)) != 0;  // NOR
  }
}

template <typename T>
void wait_for_word(CUdeviceptr address, T value, unsigned flags, Context* ctx) {
  const T* word = reinterpret_cast<const T*>(address);
  while (!wait_met<T>(__atomic_load_n(word, __ATOMIC_ACQUIRE), value, flags)) {
    if (ctx != nullptr && ctx->sticky.load() != CUDA_SUCCESS) return;
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

}  // namespace

CUresult memops_item(const CUstreamBatchMemOpParams* ops, unsigned count, unsigned flags, CUcontext ctx,
                     WorkItem& out) {
  if (count == 0 || ops == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::vector<CUstreamBatchMemOpParams> list(ops, ops + count);
  for (const CUstreamBatchMemOpParams& op : list) {
    const CUdeviceptr a = op.writeValue.address;
    switch (op.operation) {
      case CU_STREAM_MEM_OP_WRITE_VALUE_32:
        if (a % 4 != 0) return CUDA_ERROR_INVALID_VALUE;
        break;
      case CU_STREAM_MEM_OP_WRITE_VALUE_64:
        if (a % 8 != 0) return CUDA_ERROR_INVALID_VALUE;
        break;
      case CU_STREAM_MEM_OP_WAIT_VALUE_32:
        if (op.waitValue.address % 4 != 0) return CUDA_ERROR_INVALID_VALUE;
        break;
      case CU_STREAM_MEM_OP_WAIT_VALUE_64:
        if (op.waitValue.address % 8 != 0) return CUDA_ERROR_INVALID_VALUE;
        break;
      case CU_STREAM_MEM_OP_FLUSH_REMOTE_WRITES:
      case CU_STREAM_MEM_OP_BARRIER:
        break;
      default:
        return CUDA_ERROR_NOT_SUPPORTED;
    }
  }
  out.kind = ItemKind::memset;  // guarded: a write into, or a wait on, unmapped memory faults
  out.label = "batch mem op";
  Context* owner = reinterpret_cast<Context*>(ctx);
  out.body = [list, owner] {
    for (const CUstreamBatchMemOpParams& op : list) {
      // Atomic word stores (aligned, checked above): another stream's wait
      // polls the word meanwhile, as on a GPU.
      if (op.operation == CU_STREAM_MEM_OP_WRITE_VALUE_32) {
        __atomic_store_n(reinterpret_cast<cuuint32_t*>(op.writeValue.address), op.writeValue.value, __ATOMIC_RELEASE);
      } else if (op.operation == CU_STREAM_MEM_OP_WRITE_VALUE_64) {
        __atomic_store_n(reinterpret_cast<cuuint64_t*>(op.writeValue.address), op.writeValue.value64,
                         __ATOMIC_RELEASE);
      } else if (op.operation == CU_STREAM_MEM_OP_WAIT_VALUE_32) {
        wait_for_word<cuuint32_t>(op.waitValue.address, op.waitValue.value, op.waitValue.flags, owner);
      } else if (op.operation == CU_STREAM_MEM_OP_WAIT_VALUE_64) {
        wait_for_word<cuuint64_t>(op.waitValue.address, op.waitValue.value64, op.waitValue.flags, owner);
      }
    }
    return CUDA_SUCCESS;
  };
  auto node = std::make_shared<NodeParams>();
  node->type = CU_GRAPH_NODE_TYPE_BATCH_MEM_OP;
  node->has_params = true;
  node->memops = std::move(list);
  node->memop_flags = flags;
  node->memop_ctx = ctx;
  out.node = std::move(node);
  return CUDA_SUCCESS;
}

namespace {

CUresult enqueue_memops(CUstream h, const CUstreamBatchMemOpParams* ops, unsigned count, unsigned flags) {
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (CUresult r = s->ctx->sticky.load(); r != CUDA_SUCCESS) return r;
  WorkItem item;
  if (CUresult r = memops_item(ops, count, flags, reinterpret_cast<CUcontext>(s->ctx), item); r != CUDA_SUCCESS)
    return r;
  submit(s, std::move(item));
  return CUDA_SUCCESS;
}

// cuStreamWriteValue32/64 and cuStreamWaitValue32/64: a batch of one (the
// write and wait parameters share one layout).
static_assert(offsetof(CUstreamBatchMemOpParams, waitValue.address) ==
                  offsetof(CUstreamBatchMemOpParams, writeValue.address) &&
              offsetof(CUstreamBatchMemOpParams, waitValue.value64) ==
                  offsetof(CUstreamBatchMemOpParams, writeValue.value64) &&
              offsetof(CUstreamBatchMemOpParams, waitValue.flags) == offsetof(CUstreamBatchMemOpParams, writeValue.flags));
CUresult word_op(CUstream h, CUstreamBatchMemOpType type, CUdeviceptr addr, cuuint64_t value, unsigned flags) {
  CUstreamBatchMemOpParams op{};
  op.writeValue.operation = type;
  op.writeValue.address = addr;
  if (type == CU_STREAM_MEM_OP_WRITE_VALUE_64 || type == CU_STREAM_MEM_OP_WAIT_VALUE_64) op.writeValue.value64 = value;
  else op.writeValue.value = static_cast<cuuint32_t>(value);
  op.writeValue.flags = flags;
  return enqueue_memops(h, &op, 1, 0);
}

}  // namespace
}  // namespace nzsim

using namespace nzsim;

extern "C" {
CUresult CUDAAPI cuStreamWriteValue32_v2(CUstream h, CUdeviceptr addr, cuuint32_t value, unsigned int flags) {
  NZ_REQUIRE_INIT();
  return word_op(h, CU_STREAM_MEM_OP_WRITE_VALUE_32, addr, value, flags);
}
CUresult CUDAAPI cuStreamWriteValue64_v2(CUstream h, CUdeviceptr addr, cuuint64_t value, unsigned int flags) {
  NZ_REQUIRE_INIT();
  return word_op(h, CU_STREAM_MEM_OP_WRITE_VALUE_64, addr, value, flags);
}
CUresult CUDAAPI cuStreamWaitValue32_v2(CUstream h, CUdeviceptr addr, cuuint32_t value, unsigned int flags) {
  NZ_REQUIRE_INIT();
  return word_op(h, CU_STREAM_MEM_OP_WAIT_VALUE_32, addr, value, flags);
}
CUresult CUDAAPI cuStreamWaitValue64_v2(CUstream h, CUdeviceptr addr, cuuint64_t value, unsigned int flags) {
  NZ_REQUIRE_INIT();
  return word_op(h, CU_STREAM_MEM_OP_WAIT_VALUE_64, addr, value, flags);
}
CUresult CUDAAPI cuStreamBatchMemOp_v2(CUstream h, unsigned int count, CUstreamBatchMemOpParams* ops,
                                       unsigned int flags) {
  NZ_REQUIRE_INIT();
  if (count == 0) return CUDA_SUCCESS;
  return enqueue_memops(h, ops, count, flags);
}
}  // extern "C"
