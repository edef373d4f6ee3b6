// Stream memory operations (CUDA 11.7+ ABI; the _ptsz variants are
// generated): cuStreamWriteValue32/64 and cuStreamBatchMemOp. Each call is
// one stream item that writes its words in order; a capture records it as
// one CU_GRAPH_NODE_TYPE_BATCH_MEM_OP node, as the driver does, whose
// parameters cuGraphBatchMemOpNodeGetParams answers. Waits and flushes are
// not simulated (NOT_SUPPORTED).
#include <cuda.h>

#include <cstring>
#include <memory>
#include <vector>

#include "sim_graph_nodes.h"
#include "sim_stream.h"

namespace nzsim {

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
      default:
        return CUDA_ERROR_NOT_SUPPORTED;
    }
  }
  out.kind = ItemKind::memset;  // guarded: a write into unmapped memory faults
  out.label = "batch mem op";
  out.body = [list] {
    for (const CUstreamBatchMemOpParams& op : list) {
      if (op.operation == CU_STREAM_MEM_OP_WRITE_VALUE_32) {
        const cuuint32_t v = op.writeValue.value;
        std::memcpy(reinterpret_cast<void*>(op.writeValue.address), &v, 4);
      } else {
        const cuuint64_t v = op.writeValue.value64;
        std::memcpy(reinterpret_cast<void*>(op.writeValue.address), &v, 8);
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

// cuStreamWriteValue32/64: a batch of one.
CUresult write_value(CUstream h, CUstreamBatchMemOpType type, CUdeviceptr addr, cuuint64_t value, unsigned flags) {
  CUstreamBatchMemOpParams op{};
  op.writeValue.operation = type;
  op.writeValue.address = addr;
  if (type == CU_STREAM_MEM_OP_WRITE_VALUE_64) op.writeValue.value64 = value;
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
  return write_value(h, CU_STREAM_MEM_OP_WRITE_VALUE_32, addr, value, flags);
}
CUresult CUDAAPI cuStreamWriteValue64_v2(CUstream h, CUdeviceptr addr, cuuint64_t value, unsigned int flags) {
  NZ_REQUIRE_INIT();
  return write_value(h, CU_STREAM_MEM_OP_WRITE_VALUE_64, addr, value, flags);
}
CUresult CUDAAPI cuStreamBatchMemOp_v2(CUstream h, unsigned int count, CUstreamBatchMemOpParams* ops,
                                       unsigned int flags) {
  NZ_REQUIRE_INIT();
  if (count == 0) return CUDA_SUCCESS;
  return enqueue_memops(h, ops, count, flags);
}
}  // extern "C"
