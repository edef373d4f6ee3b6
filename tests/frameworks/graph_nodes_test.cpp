// Class 17: graphs built node by node (XLA's command buffers, cuDNN's
// cudnnBackendPopulateCudaGraph, hand-built graphs): cuGraphCreate,
// cuGraphAdd{Kernel,Memcpy,Memset,ChildGraph,BatchMemOp}Node, the exec setters.
// No launch hook sees their kernels; the replays must still find every range
// they read staged, also after other work evicted everything it could
// (NEUZIP_STAGING_MB=8 in frameworks-graph-nodes).
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "fw_env.h"

namespace fw {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

uint64_t read_u64(CUdeviceptr p) {
  uint64_t v = 0;
  EXPECT_EQ(CUDA_SUCCESS, cuMemcpyDtoH(&v, p, 8));
  return v;
}

// A one-thread sum_bytes(p, n, out) node's parameters (`params` must outlive the call that takes them).
CUDA_KERNEL_NODE_PARAMS sum_node_params(void** params) {
  CUDA_KERNEL_NODE_PARAMS kp{};
  kp.func = Env::get().fn("sum_bytes");
  kp.gridDimX = kp.gridDimY = kp.gridDimZ = 1;
  kp.blockDimX = kp.blockDimY = kp.blockDimZ = 1;
  kp.kernelParams = params;
  return kp;
}

// sum_bytes(p, n, out) as a kernel node; the parameter values are copied in.
CUgraphNode add_sum_node(CUgraph g, const CUgraphNode* deps, size_t ndeps, CUdeviceptr p, uint64_t n,
                         CUdeviceptr out) {
  void* params[] = {&p, &n, &out};
  const CUDA_KERNEL_NODE_PARAMS kp = sum_node_params(params);
  CUgraphNode node = nullptr;
  EXPECT_EQ(CUDA_SUCCESS, cuGraphAddKernelNode(&node, g, deps, ndeps, &kp));
  return node;
}

// A device-to-device copy node's parameters.
CUDA_MEMCPY3D d2d(CUdeviceptr src, CUdeviceptr dst, size_t bytes) {
  CUDA_MEMCPY3D cp{};
  cp.srcMemoryType = cp.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  cp.srcDevice = src;
  cp.dstDevice = dst;
  cp.WidthInBytes = bytes;
  cp.Height = cp.Depth = 1;
  return cp;
}

// A byte memset node's parameters.
CUDA_MEMSET_NODE_PARAMS memset8(CUdeviceptr dst, uint8_t value, size_t bytes) {
  CUDA_MEMSET_NODE_PARAMS ms{};
  ms.dst = dst;
  ms.value = value;
  ms.elementSize = 1;
  ms.width = bytes;
  ms.height = 1;
  return ms;
}

// Reads every weight eagerly: under an 8 MiB budget the ranges a graph does
// not pin are evicted (compressed again) by this.
void churn(const std::vector<std::unique_ptr<Weight>>& weights) {
  for (const auto& w : weights) EXPECT_EQ(w->hash(), device_hash(w->dev, w->host.size()));
}

std::vector<std::unique_ptr<Weight>> make_weights(uint32_t first_seed, int count) {
  std::vector<std::unique_ptr<Weight>> out;
  for (int i = 0; i < count; ++i) out.push_back(std::make_unique<Weight>(4 * kMiB, first_seed + i));
  return out;
}

TEST(GraphNodes, KernelNodeReadsACompressedWeight) {
  Weight w(4 * kMiB, 70);
  auto others = make_weights(71, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(20 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64);
  CUgraph g;
  CU_OK(cuGraphCreate(&g, 0));
  add_sum_node(g, nullptr, 0, w.dev, w.host.size(), out);
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  CU_OK(cuGraphDestroy(g));  // the exec outlives its graph
  for (int round = 0; round < 3; ++round) {
    churn(others);
    CU_OK(cuMemsetD8(out, 0, 8));
    CU_OK(cuGraphLaunch(exec, s));
    CU_OK(cuStreamSynchronize(s));
    EXPECT_EQ(w.hash(), read_u64(out)) << "round " << round;
  }
  CU_OK(cuGraphExecDestroy(exec));
  // Unpinned again: it can be compressed and read eagerly as before.
  churn(others);
  EXPECT_EQ(w.hash(), device_hash(w.dev, w.host.size()));
  CU_OK(cuStreamDestroy(s));
}

// A child graph reading one weight, a memcpy node copying out of another and
// a memset node writing a third (the write must survive).
TEST(GraphNodes, ChildGraphMemcpyAndMemsetNodes) {
  Weight a(4 * kMiB, 80), b(4 * kMiB, 81), c(4 * kMiB, 82);
  auto others = make_weights(83, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(28 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64), copy = alloc(b.host.size());
  CUgraph child, parent;
  CU_OK(cuGraphCreate(&child, 0));
  add_sum_node(child, nullptr, 0, a.dev, a.host.size(), out);
  CU_OK(cuGraphCreate(&parent, 0));
  CUgraphNode child_node, copy_node, set_node;
  CU_OK(cuGraphAddChildGraphNode(&child_node, parent, nullptr, 0, child));
  CU_OK(cuGraphDestroy(child));  // cloned into the node
  const CUDA_MEMCPY3D cp = d2d(b.dev + kMiB, copy, 2 * kMiB);  // from the middle of the weight
  CU_OK(cuGraphAddMemcpyNode(&copy_node, parent, &child_node, 1, &cp, Env::get().ctx));
  const CUDA_MEMSET_NODE_PARAMS ms = memset8(c.dev, 0x7f, kMiB);
  CU_OK(cuGraphAddMemsetNode(&set_node, parent, &copy_node, 1, &ms, Env::get().ctx));
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, parent, 0));
  churn(others);
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(a.hash(), read_u64(out));
  EXPECT_EQ(host_hash(b.host.data() + kMiB, 2 * kMiB), device_hash(copy, 2 * kMiB));
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(parent));
  // The memset's bytes and the untouched rest of `c`, after more eviction.
  std::vector<uint8_t> expect = c.host;
  std::fill(expect.begin(), expect.begin() + kMiB, 0x7f);
  churn(others);
  EXPECT_EQ(host_hash(expect.data(), expect.size()), device_hash(c.dev, c.host.size()));
  CU_OK(cuMemFree(copy));
  CU_OK(cuStreamDestroy(s));
}

// An exec's kernel node pointed at another weight after instantiation.
TEST(GraphNodes, ExecKernelNodeGivenAnotherWeight) {
  Weight w(4 * kMiB, 90), w2(4 * kMiB, 91);
  auto others = make_weights(92, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(24 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64);
  CUgraph g;
  CU_OK(cuGraphCreate(&g, 0));
  CUgraphNode node = add_sum_node(g, nullptr, 0, w.dev, w.host.size(), out);
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(w.hash(), read_u64(out));
  CUdeviceptr p = w2.dev;
  uint64_t n = w2.host.size();
  void* params[] = {&p, &n, &out};
  const CUDA_KERNEL_NODE_PARAMS kp = sum_node_params(params);
  CU_OK(cuGraphExecKernelNodeSetParams(exec, node, &kp));
  churn(others);
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(w2.hash(), read_u64(out));
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuStreamDestroy(s));
}

// An exec updated (cuGraphExecUpdate) to a graph of the same shape whose
// kernel node reads another weight, which the eager work since evicted: the
// update stages and pins it for the exec. Through the CUDA 12 ABI and the
// CUDA 10.2-11 one (error node and result apart) that a program built for
// CUDA 11 gets from cuGetProcAddress. An update the topology refuses leaves
// the exec replaying what it did.
TEST(GraphNodes, ExecUpdatedToAGraphReadingAnotherWeight) {
  using UpdateV1 = CUresult(CUDAAPI*)(CUgraphExec, CUgraph, CUgraphNode*, CUgraphExecUpdateResult*);
  for (const int abi : {12000, 11040}) {
    SCOPED_TRACE(abi);
    Weight w(4 * kMiB, 200 + abi % 7), w2(4 * kMiB, 210 + abi % 7);
    auto others = make_weights(220 + abi % 7, 4);
    Env::get().flush();
    EXPECT_COMPRESSED_AT_LEAST(24 * kMiB);
    CUstream s;
    CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUdeviceptr out = alloc(64);
    CUgraph g, g2, g3;
    CU_OK(cuGraphCreate(&g, 0));
    add_sum_node(g, nullptr, 0, w.dev, w.host.size(), out);
    CUgraphExec exec;
    CU_OK(cuGraphInstantiate(&exec, g, 0));
    CU_OK(cuGraphLaunch(exec, s));
    CU_OK(cuStreamSynchronize(s));
    EXPECT_EQ(w.hash(), read_u64(out));
    CU_OK(cuGraphCreate(&g2, 0));
    add_sum_node(g2, nullptr, 0, w2.dev, w2.host.size(), out);
    CU_OK(cuGraphCreate(&g3, 0));  // two nodes: not the exec's topology
    CUgraphNode first = add_sum_node(g3, nullptr, 0, w.dev, w.host.size(), out);
    add_sum_node(g3, &first, 1, w.dev, w.host.size(), out);
    auto update = [&](CUgraph to, CUgraphExecUpdateResult& result) {
      if (abi >= 12000) {
        CUgraphExecUpdateResultInfo info{};
        const CUresult r = cuGraphExecUpdate(exec, to, &info);
        result = info.result;
        return r;
      }
      void* fn = nullptr;
      CUdriverProcAddressQueryResult found{};
      EXPECT_EQ(CUDA_SUCCESS, cuGetProcAddress("cuGraphExecUpdate", &fn, abi, CU_GET_PROC_ADDRESS_DEFAULT, &found));
      if (fn == nullptr) return CUDA_ERROR_NOT_FOUND;
      CUgraphNode error_node = nullptr;
      return reinterpret_cast<UpdateV1>(fn)(exec, to, &error_node, &result);
    };
    CUgraphExecUpdateResult result{};
    churn(others);  // w2 compressed again
    CU_OK(update(g2, result));
    EXPECT_EQ(CU_GRAPH_EXEC_UPDATE_SUCCESS, result);
    // The graphs go (the exec is all a framework keeps): only the exec's
    // own pins, moved by the update, hold w2 now.
    CU_OK(cuGraphDestroy(g2));
    CU_OK(cuGraphDestroy(g));
    for (int round = 0; round < 2; ++round) {
      churn(others);
      CU_OK(cuMemsetD8(out, 0, 8));
      CU_OK(cuGraphLaunch(exec, s));
      CU_OK(cuStreamSynchronize(s));
      EXPECT_EQ(w2.hash(), read_u64(out)) << "round " << round;
    }
    EXPECT_EQ(CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE, update(g3, result));
    EXPECT_EQ(CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED, result);
    CU_OK(cuGraphDestroy(g3));
    churn(others);
    CU_OK(cuGraphLaunch(exec, s));
    CU_OK(cuStreamSynchronize(s));
    EXPECT_EQ(w2.hash(), read_u64(out));
    CU_OK(cuGraphExecDestroy(exec));
    CU_OK(cuStreamDestroy(s));
  }
}

// An exec's memcpy, memset and child-graph nodes given new parameters that
// reach compressed weights the graph never touched.
TEST(GraphNodes, ExecCopyMemsetAndChildNodesRepointed) {
  Weight a(4 * kMiB, 110), b(4 * kMiB, 111), c(4 * kMiB, 112);
  auto others = make_weights(113, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(28 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr scratch = alloc(2 * kMiB), copy = alloc(2 * kMiB), out = alloc(64);
  CUgraph child, other_child, g;
  CU_OK(cuGraphCreate(&child, 0));
  add_sum_node(child, nullptr, 0, scratch, 64, out);  // reads nothing compressed
  CU_OK(cuGraphCreate(&other_child, 0));
  add_sum_node(other_child, nullptr, 0, a.dev, a.host.size(), out);
  CU_OK(cuGraphCreate(&g, 0));
  CUDA_MEMCPY3D cp = d2d(scratch, copy, kMiB);
  CUDA_MEMSET_NODE_PARAMS ms = memset8(scratch, 0x11, kMiB);
  CUgraphNode copy_node, set_node, child_node;
  CU_OK(cuGraphAddMemcpyNode(&copy_node, g, nullptr, 0, &cp, Env::get().ctx));
  CU_OK(cuGraphAddMemsetNode(&set_node, g, &copy_node, 1, &ms, Env::get().ctx));
  CU_OK(cuGraphAddChildGraphNode(&child_node, g, &set_node, 1, child));
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  cp.srcDevice = b.dev + kMiB;  // now out of a compressed weight
  CU_OK(cuGraphExecMemcpyNodeSetParams(exec, copy_node, &cp, Env::get().ctx));
  ms.dst = c.dev + 2 * kMiB;  // now into one
  CU_OK(cuGraphExecMemsetNodeSetParams(exec, set_node, &ms, Env::get().ctx));
  CU_OK(cuGraphExecChildGraphNodeSetParams(exec, child_node, other_child));
  churn(others);
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(host_hash(b.host.data() + kMiB, kMiB), device_hash(copy, kMiB));
  EXPECT_EQ(a.hash(), read_u64(out));
  CU_OK(cuGraphExecDestroy(exec));
  std::vector<uint8_t> expect = c.host;
  std::fill(expect.begin() + 2 * kMiB, expect.begin() + 3 * kMiB, 0x11);
  churn(others);
  EXPECT_EQ(host_hash(expect.data(), expect.size()), device_hash(c.dev, c.host.size()));
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuGraphDestroy(child));
  CU_OK(cuGraphDestroy(other_child));
  CU_OK(cuMemFree(scratch));
  CU_OK(cuMemFree(copy));
  CU_OK(cuStreamDestroy(s));
}

// The generic exec setter (cuGraphExecNodeSetParams, CUDA 12.2+) re-points a
// kernel node and a memcpy node at compressed weights.
TEST(GraphNodes, GenericExecSetterRepointsKernelAndCopy) {
  Weight w(4 * kMiB, 130), w2(4 * kMiB, 131);
  auto others = make_weights(132, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(24 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr scratch = alloc(kMiB), copy = alloc(kMiB), out = alloc(64);
  CUgraph g;
  CU_OK(cuGraphCreate(&g, 0));
  CUgraphNode sum_node = add_sum_node(g, nullptr, 0, scratch, 64, out);
  const CUDA_MEMCPY3D cp0 = d2d(scratch, copy, kMiB);
  CUgraphNode copy_node;
  CU_OK(cuGraphAddMemcpyNode(&copy_node, g, &sum_node, 1, &cp0, Env::get().ctx));
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  CUdeviceptr p = w.dev;
  uint64_t n = w.host.size();
  void* params[] = {&p, &n, &out};
  CUgraphNodeParams kp{};
  kp.type = CU_GRAPH_NODE_TYPE_KERNEL;
  const CUDA_KERNEL_NODE_PARAMS k = sum_node_params(params);
  kp.kernel.func = k.func;
  kp.kernel.gridDimX = kp.kernel.gridDimY = kp.kernel.gridDimZ = 1;
  kp.kernel.blockDimX = kp.kernel.blockDimY = kp.kernel.blockDimZ = 1;
  kp.kernel.kernelParams = params;
  CU_OK(cuGraphExecNodeSetParams(exec, sum_node, &kp));
  CUgraphNodeParams mp{};
  mp.type = CU_GRAPH_NODE_TYPE_MEMCPY;
  mp.memcpy.copyCtx = Env::get().ctx;
  mp.memcpy.copyParams = d2d(w2.dev + 3 * kMiB, copy, kMiB);
  CU_OK(cuGraphExecNodeSetParams(exec, copy_node, &mp));
  churn(others);
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(w.hash(), read_u64(out));
  EXPECT_EQ(host_hash(w2.host.data() + 3 * kMiB, kMiB), device_hash(copy, kMiB));
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuStreamDestroy(s));
}

// An exec's kernel node re-pointed at six weights in turn (a layer's graph
// replayed for every layer): each setter call's pins replace the node's last
// ones, so after eviction only the last weight stays staged for the exec.
TEST(GraphNodes, RepointedNodeKeepsOnlyItsLastRangesStaged) {
  auto layers = make_weights(140, 6);
  auto others = make_weights(146, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(40 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64);
  CUgraph g;
  CU_OK(cuGraphCreate(&g, 0));
  CUgraphNode node = add_sum_node(g, nullptr, 0, layers[0]->dev, layers[0]->host.size(), out);
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  for (const auto& w : layers) {
    CUdeviceptr p = w->dev;
    uint64_t n = w->host.size();
    void* params[] = {&p, &n, &out};
    const CUDA_KERNEL_NODE_PARAMS kp = sum_node_params(params);
    CU_OK(cuGraphExecKernelNodeSetParams(exec, node, &kp));
    CU_OK(cuGraphLaunch(exec, s));  // no synchronisation before the next setter call
  }
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(layers.back()->hash(), read_u64(out));
  churn(others);
  if (Env::get().neuzip()) {
    // The last layer (4 MiB) pinned, and what the 8 MiB budget keeps of the
    // churn; with every layer still pinned it would be 24 MiB and more.
    EXPECT_LE(Env::get().stats().staging_bytes, 16 * kMiB);
  }
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(layers.back()->hash(), read_u64(out));
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuStreamDestroy(s));
}

// A replay still queued when its exec and graph are destroyed (no
// synchronisation in between, as a framework's graph cache may do): the
// exec's pins drop at once, and the evictions that follow must wait for the
// replay (frameworks-graph-nodes-lazy keeps it queued until waited for).
TEST(GraphNodes, ReplayStillQueuedWhenItsExecDies) {
  Weight w(4 * kMiB, 120);
  auto others = make_weights(121, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(20 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64);
  CU_OK(cuMemsetD8(out, 0, 8));
  CUgraph g;
  CU_OK(cuGraphCreate(&g, 0));
  add_sum_node(g, nullptr, 0, w.dev, w.host.size(), out);
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(g));
  churn(others);  // evicts what it can, `w` among them once its replay is done
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(w.hash(), read_u64(out));
  CU_OK(cuStreamDestroy(s));
}

// One launch of `kernel`(p, n, out) captured on `s` into a new graph.
CUgraph capture_one(CUstream s, const char* kernel, CUdeviceptr p, uint64_t n, CUdeviceptr out) {
  void* params[] = {&p, &n, &out};
  CUgraph g = nullptr;
  EXPECT_EQ(CUDA_SUCCESS, cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
  EXPECT_EQ(CUDA_SUCCESS, cuLaunchKernel(Env::get().fn(kernel), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  EXPECT_EQ(CUDA_SUCCESS, cuStreamEndCapture(s, &g));
  return g;
}

// Evicts what it can, then replays `g` once on `s` and waits.
void replay_once(CUgraph g, CUstream s, const std::vector<std::unique_ptr<Weight>>& others) {
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  churn(others);
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  CU_OK(cuGraphExecDestroy(exec));
}

// The static-input loop: `g` sums `input` (made on the device, untagged when
// `g` was made) into `out`; each step fills it from a new host batch, evicts
// what it can and replays.
void replay_with_host_batches(CUgraph g, CUstream s, CUdeviceptr input, size_t bytes, CUdeviceptr out,
                              const std::vector<std::unique_ptr<Weight>>& others, uint32_t seed) {
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  for (uint32_t step = 0; step < 3; ++step) {
    const std::vector<uint8_t> batch = weights(bytes, seed + step);
    CU_OK(cuMemcpyHtoD(input, batch.data(), bytes));
    churn(others);
    CU_OK(cuGraphLaunch(exec, s));
    CU_OK(cuStreamSynchronize(s));
    EXPECT_EQ(host_hash(batch.data(), batch.size()), read_u64(out)) << "step " << step;
  }
  CU_OK(cuGraphExecDestroy(exec));
}

// Wraps `inner` in `levels` child-graph nodes (the listing stops past depth 8).
void nest_into(CUgraph inner, int levels, CUgraph* out) {
  CUgraph g = inner;
  for (int i = 0; i < levels; ++i) {
    CUgraph parent;
    CU_OK(cuGraphCreate(&parent, 0));
    CUgraphNode node;
    CU_OK(cuGraphAddChildGraphNode(&node, parent, nullptr, 0, g));
    CU_OK(cuGraphDestroy(g));
    g = parent;
  }
  *out = g;
}

// A captured graph edited afterwards: a kernel node added to it reads
// another compressed weight that no captured launch touched.
TEST(GraphNodes, NodeAddedToACapturedGraph) {
  Weight w(4 * kMiB, 100), w2(4 * kMiB, 101);
  auto others = make_weights(102, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(24 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64), out2 = alloc(64);
  CUgraph g = capture_one(s, "sum_bytes", w.dev, w.host.size(), out);
  add_sum_node(g, nullptr, 0, w2.dev, w2.host.size(), out2);
  replay_once(g, s, others);
  EXPECT_EQ(w.hash(), read_u64(out));
  EXPECT_EQ(w2.hash(), read_u64(out2));
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuStreamDestroy(s));
}

// The same with a node the getters cannot read (nested past the listing's
// depth): it was not captured, so it may touch anything.
TEST(GraphNodes, UnreadableNodeAddedToACapturedGraph) {
  Weight w(4 * kMiB, 320), w2(4 * kMiB, 321);
  auto others = make_weights(322, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(24 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64), out2 = alloc(64);
  CUgraph g = capture_one(s, "sum_bytes", w.dev, w.host.size(), out);
  CUgraph inner, deep;
  CU_OK(cuGraphCreate(&inner, 0));
  add_sum_node(inner, nullptr, 0, w2.dev, w2.host.size(), out2);
  nest_into(inner, 8, &deep);
  CUgraphNode node;
  CU_OK(cuGraphAddChildGraphNode(&node, g, nullptr, 0, deep));
  CU_OK(cuGraphDestroy(deep));
  replay_once(g, s, others);
  EXPECT_EQ(w.hash(), read_u64(out));
  EXPECT_EQ(w2.hash(), read_u64(out2));
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuStreamDestroy(s));
}

// PyTorch's CUDA-graph training loop: a static input buffer made on the
// device (torch.empty/randn: no host copy), a graph captured reading it, then
// every step `static_input.copy_(batch)` from a host batch. The first host
// copy tags the buffer only after the capture; under a fixed budget the
// runtime compresses what is tagged at once, and the replay must still find
// the batch staged. (Before graphs kept where their nodes read, the first
// replay met an illegal address: the capture had pinned nothing there.)
TEST(GraphNodes, StaticInputFirstFilledFromTheHostAfterCapture) {
  constexpr size_t kBytes = 4 * kMiB;
  CUdeviceptr input = alloc(kBytes), out = alloc(64);
  CU_OK(cuMemsetD8(input, 0, kBytes));
  auto others = make_weights(95, 4);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUgraph g = capture_one(s, "sum_bytes", input, kBytes, out);
  replay_with_host_batches(g, s, input, kBytes, out, others, 200);
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuMemFree(input));
  CU_OK(cuStreamDestroy(s));
}

// A graph built node by node whose listing is incomplete (a kernel nested
// past the listing's depth) reads a buffer tagged only after instantiation.
TEST(GraphNodes, IncompleteListingThenStaticInput) {
  constexpr size_t kBytes = 4 * kMiB;
  CUdeviceptr input = alloc(kBytes), out = alloc(64);
  CU_OK(cuMemsetD8(input, 0, kBytes));
  auto others = make_weights(300, 4);
  Env::get().flush();
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUgraph inner, g;
  CU_OK(cuGraphCreate(&inner, 0));
  add_sum_node(inner, nullptr, 0, input, kBytes, out);
  nest_into(inner, 9, &g);
  replay_with_host_batches(g, s, input, kBytes, out, others, 310);
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuStreamDestroy(s));
}

// A static input read backwards from one past its allocation's end.
TEST(GraphNodes, StaticInputReadFromOnePastTheEnd) {
  constexpr size_t kBytes = 4 * kMiB;
  CUdeviceptr input = alloc(kBytes), out = alloc(64);
  CU_OK(cuMemsetD8(input, 0, kBytes));
  auto others = make_weights(330, 4);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUgraph g = capture_one(s, "sum_back", input + kBytes, kBytes, out);
  replay_with_host_batches(g, s, input, kBytes, out, others, 340);
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuStreamDestroy(s));
}

// Static inputs reached through a pointer array in device memory.
TEST(GraphNodes, StaticInputsThroughAPointerArray) {
  constexpr size_t kBytes = 4 * kMiB;
  CUdeviceptr a = alloc(kBytes), b = alloc(kBytes);
  CU_OK(cuMemsetD8(a, 0, kBytes));
  CU_OK(cuMemsetD8(b, 0, kBytes));
  CUdeviceptr ptrs_dev = alloc(64);
  std::vector<CUdeviceptr> ptrs = {a, b};
  CU_OK(cuMemcpyHtoD(ptrs_dev, ptrs.data(), 16));
  auto others = make_weights(350, 4);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr out = alloc(64);
  CU_OK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
  uint64_t count = 2, each = kBytes;
  void* params[] = {&ptrs_dev, &count, &each, &out};
  CU_OK(cuLaunchKernel(Env::get().fn("sum_ptrs"), 1, 1, 1, 1, 1, 1, 0, s, params, nullptr));
  CUgraph g;
  CU_OK(cuStreamEndCapture(s, &g));
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));  // before the inputs are filled from the host
  const std::vector<uint8_t> ha = weights(kBytes, 360), hb = weights(kBytes, 361);
  CU_OK(cuMemcpyHtoD(a, ha.data(), kBytes));
  CU_OK(cuMemcpyHtoD(b, hb.data(), kBytes));
  churn(others);
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  EXPECT_EQ(host_hash(ha.data(), kBytes) * 31 + host_hash(hb.data(), kBytes), read_u64(out));
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuStreamDestroy(s));
}

// Batch memory operation nodes write words outside any kernel
// (cuGraphAddBatchMemOpNode; cuStreamWriteValue* and cuStreamBatchMemOp
// captured). Their words' units are staged and pinned for the graph, and
// nothing else: the listing reads the node (a node it cannot read would pin
// every weight).
CUstreamBatchMemOpParams write_op(CUdeviceptr at, uint64_t value, bool wide) {
  CUstreamBatchMemOpParams op{};
  op.writeValue.operation = wide ? CU_STREAM_MEM_OP_WRITE_VALUE_64 : CU_STREAM_MEM_OP_WRITE_VALUE_32;
  op.writeValue.address = at;
  if (wide) op.writeValue.value64 = value;
  else op.writeValue.value = static_cast<cuuint32_t>(value);
  return op;
}

// `host` with the words of `ops` written (little-endian, as on the device).
std::vector<uint8_t> with_writes(std::vector<uint8_t> host, CUdeviceptr base,
                                 const std::vector<CUstreamBatchMemOpParams>& ops) {
  for (const auto& op : ops) {
    const size_t at = op.writeValue.address - base;
    if (op.operation == CU_STREAM_MEM_OP_WRITE_VALUE_64) std::memcpy(&host[at], &op.writeValue.value64, 8);
    else std::memcpy(&host[at], &op.writeValue.value, 4);
  }
  return host;
}

TEST(GraphNodes, BatchMemOpNodeWritesIntoACompressedWeight) {
  Weight a(4 * kMiB, 340);
  auto others = make_weights(341, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(20 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  std::vector<CUstreamBatchMemOpParams> ops = {write_op(a.dev + 8, 0x0123456789abcdefULL, true),
                                               write_op(a.dev + 3 * kMiB + 4, 0xdeadbeef, false)};
  CUDA_BATCH_MEM_OP_NODE_PARAMS p{};
  p.ctx = Env::get().ctx;
  p.count = static_cast<unsigned>(ops.size());
  p.paramArray = ops.data();
  CUgraph g;
  CU_OK(cuGraphCreate(&g, 0));
  CUgraphNode node;
  CU_OK(cuGraphAddBatchMemOpNode(&node, g, nullptr, 0, &p));
  const uint64_t decoded_before = Env::get().stats().bytes_decompressed;
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  if (Env::get().neuzip()) {
    // At most the written weight's units: the other 16 MiB stay compressed.
    EXPECT_LE(Env::get().stats().bytes_decompressed - decoded_before, 4 * kMiB);
  }
  CU_OK(cuGraphDestroy(g));
  churn(others);
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  CU_OK(cuGraphExecDestroy(exec));
  const std::vector<uint8_t> expect = with_writes(a.host, a.dev, ops);
  churn(others);
  EXPECT_EQ(host_hash(expect.data(), expect.size()), device_hash(a.dev, expect.size()));
  CU_OK(cuStreamDestroy(s));
}

// A captured cuStreamBatchMemOp writing into a scratch word, re-pointed after
// instantiation at a compressed weight, by the node's own exec setter and by
// the generic one (cuGraphExecNodeSetParams). Before the shim hooked
// cuGraphExecBatchMemOpNodeSetParams, the replay wrote into unmapped pages.
TEST(GraphNodes, CapturedBatchMemOpRepointedAtACompressedWeight) {
  Weight a(4 * kMiB, 350), b(4 * kMiB, 351);
  auto others = make_weights(352, 4);
  Env::get().flush();
  EXPECT_COMPRESSED_AT_LEAST(24 * kMiB);
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr scratch = alloc(64);
  std::vector<CUstreamBatchMemOpParams> ops = {write_op(scratch, 7, false), write_op(scratch + 8, 9, true)};
  CU_OK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
  CU_OK(cuStreamBatchMemOp(s, static_cast<unsigned>(ops.size()), ops.data(), 0));
  CUgraph g = nullptr;
  CU_OK(cuStreamEndCapture(s, &g));
  size_t count = 0;
  CU_OK(cuGraphGetNodes(g, nullptr, &count));
  ASSERT_EQ(count, 1u);
  CUgraphNode node;
  CU_OK(cuGraphGetNodes(g, &node, &count));
  CUgraphNodeType type;
  CU_OK(cuGraphNodeGetType(node, &type));
  EXPECT_EQ(type, CU_GRAPH_NODE_TYPE_BATCH_MEM_OP);
  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));

  std::vector<CUstreamBatchMemOpParams> into_a = {write_op(a.dev + 2 * kMiB + 16, 0x55aa55aa, false),
                                                  write_op(a.dev + 4 * kMiB - 8, 0x1122334455667788ULL, true)};
  CUDA_BATCH_MEM_OP_NODE_PARAMS p{};
  p.ctx = Env::get().ctx;
  p.count = static_cast<unsigned>(into_a.size());
  p.paramArray = into_a.data();
  CU_OK(cuGraphExecBatchMemOpNodeSetParams(exec, node, &p));
  churn(others);
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));

  std::vector<CUstreamBatchMemOpParams> into_b = {write_op(b.dev + 40, 0xcafef00d, false)};
  CUgraphNodeParams generic{};
  generic.type = CU_GRAPH_NODE_TYPE_BATCH_MEM_OP;
  generic.memOp.ctx = Env::get().ctx;
  generic.memOp.count = 1;
  generic.memOp.paramArray = into_b.data();
  CU_OK(cuGraphExecNodeSetParams(exec, node, &generic));
  churn(others);
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(g));

  churn(others);
  const std::vector<uint8_t> expect_a = with_writes(a.host, a.dev, into_a);
  const std::vector<uint8_t> expect_b = with_writes(b.host, b.dev, into_b);
  EXPECT_EQ(host_hash(expect_a.data(), expect_a.size()), device_hash(a.dev, expect_a.size()));
  EXPECT_EQ(host_hash(expect_b.data(), expect_b.size()), device_hash(b.dev, expect_b.size()));
  CU_OK(cuMemFree(scratch));
  CU_OK(cuStreamDestroy(s));
}

}  // namespace
}  // namespace fw
