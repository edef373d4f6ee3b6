// sim_graph_nodes.h: graphs built node by node (cuGraphAdd*Node) and the
// node getters and setters the simulator answers (sim_graph_nodes.cpp).
#pragma once

#include <memory>
#include <vector>

#include "sim_launch.h"
#include "sim_stream.h"

namespace nzsim {

// What a graph node's getters answer.
struct NodeParams {
  CUgraphNodeType type = CU_GRAPH_NODE_TYPE_EMPTY;
  std::shared_ptr<KernelPayload> kernel;  // kernel nodes
  CUDA_MEMCPY3D copy{};                   // memcpy nodes added by the node API
  CUDA_MEMSET_NODE_PARAMS memset{};       // memset nodes added by the node API
  CUgraph child = nullptr;                // child-graph nodes: the clone they run (owned by the node)
  std::vector<CUstreamBatchMemOpParams> memops;  // batch memory operation nodes
  unsigned memop_flags = 0;
  CUcontext memop_ctx = nullptr;
  bool has_params = false;                // copy/memset/memops: their parameters are known
  NodeParams() = default;
  NodeParams(const NodeParams&) = delete;  // owns `child`
  NodeParams& operator=(const NodeParams&) = delete;
  ~NodeParams();
};

// The handle of item `index` of `g` (made on first use; the caller holds g->mu).
CUgraphNode node_handle(Graph* g, size_t index);

// sim_copy.cpp: the queue items of a memcpy or memset node (no stream yet).
CUresult copy_node_item(const CUDA_MEMCPY3D* p, WorkItem& out);
CUresult memset_node_item(const CUDA_MEMSET_NODE_PARAMS* p, WorkItem& out);
// sim_memops.cpp: the queue item of a batch of stream memory operations, with
// its node parameters (a capture or cuGraphAddBatchMemOpNode records it).
CUresult memops_item(const CUstreamBatchMemOpParams* ops, unsigned count, unsigned flags, CUcontext ctx,
                     WorkItem& out);

}  // namespace nzsim
