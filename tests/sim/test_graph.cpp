// Stream capture into a graph and replay.
#include "sim_test_util.h"

using namespace nzsim_test;

TEST(Graph, CaptureAndReplay) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUfunction add = get_function(m, "add_u32");
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 64 * 4));
  CU_OK(cuMemsetD32(p, 0, 64));

  CU_OK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
  CUstreamCaptureStatus st;
  CU_OK(cuStreamIsCapturing(s, &st));
  EXPECT_EQ(CU_STREAM_CAPTURE_STATUS_ACTIVE, st);
  uint32_t v = 3;
  uint64_t n = 64;
  void* params[] = {&p, &v, &n};
  CU_OK(cuLaunchKernel(add, 1, 1, 1, 64, 1, 1, 0, s, params, nullptr));
  v = 4;  // the captured launch keeps the value it was given
  CU_OK(cuLaunchKernel(add, 1, 1, 1, 64, 1, 1, 0, s, params, nullptr));
  cuuint64_t id = 0;
  CU_OK(cuStreamGetCaptureInfo(s, &st, &id, nullptr, nullptr, nullptr, nullptr));
  EXPECT_NE(0u, id);
  CUgraph g;
  CU_OK(cuStreamEndCapture(s, &g));
  CU_OK(cuStreamIsCapturing(s, &st));
  EXPECT_EQ(CU_STREAM_CAPTURE_STATUS_NONE, st);
  size_t nodes = 0;
  CU_OK(cuGraphGetNodes(g, nullptr, &nodes));
  EXPECT_EQ(2u, nodes);
  uint32_t word = 1;
  CU_OK(cuMemcpyDtoH(&word, p, 4));
  EXPECT_EQ(0u, word);  // nothing ran during capture

  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  CU_OK(cuMemcpyDtoH(&word, p + 63 * 4, 4));
  EXPECT_EQ(14u, word);
  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuMemFree(p));
  CU_OK(cuStreamDestroy(s));
  CU_OK(cuModuleUnload(m));
}

TEST(Graph, UnsafeCallInvalidatesGlobalCaptureButNotRelaxedThread) {
  ScopedContext ctx;
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CU_OK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
  CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_RELAXED;
  CU_OK(cuThreadExchangeStreamCaptureMode(&mode));
  CUdeviceptr p;
  CU_OK(cuMemAlloc(&p, 16));  // relaxed: allowed
  CU_OK(cuMemFree(p));
  CU_OK(cuThreadExchangeStreamCaptureMode(&mode));
  EXPECT_EQ(CU_STREAM_CAPTURE_MODE_RELAXED, mode);
  EXPECT_EQ(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, cuMemAlloc(&p, 16));
  CUgraph g;
  EXPECT_EQ(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, cuStreamEndCapture(s, &g));
  EXPECT_EQ(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, cuStreamBeginCapture(nullptr, CU_STREAM_CAPTURE_MODE_GLOBAL));
  CU_OK(cuStreamDestroy(s));
}

// A graph built node by node (as XLA's command buffers or cuDNN's graph
// population do): kernel, memset, memcpy and child-graph nodes run in order,
// the getters answer what was added, and an exec's kernel node can be given
// new parameters without changing the graph's.
TEST(Graph, BuiltNodeByNode) {
  ScopedContext ctx;
  CUmodule m = load_test_module();
  CUfunction add = get_function(m, "add_u32");
  CUstream s;
  CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr p, q;
  CU_OK(cuMemAlloc(&p, 64 * 4));
  CU_OK(cuMemAlloc(&q, 64 * 4));

  CUgraph g;
  CU_OK(cuGraphCreate(&g, 0));
  CUDA_MEMSET_NODE_PARAMS ms{};
  ms.dst = p;
  ms.value = 5;
  ms.elementSize = 4;
  ms.width = 64;
  ms.height = 1;
  CUgraphNode set_node, add_node, copy_node;
  CU_OK(cuGraphAddMemsetNode(&set_node, g, nullptr, 0, &ms, ctx.get()));
  uint32_t v = 3;
  uint64_t n = 64;
  void* params[] = {&p, &v, &n};
  CUDA_KERNEL_NODE_PARAMS kp{};
  kp.func = add;
  kp.gridDimX = kp.gridDimY = kp.gridDimZ = 1;
  kp.blockDimX = 64;
  kp.blockDimY = kp.blockDimZ = 1;
  kp.kernelParams = params;
  CU_OK(cuGraphAddKernelNode(&add_node, g, &set_node, 1, &kp));
  v = 100;  // the node keeps the value it was given
  CUDA_MEMCPY3D cp{};
  cp.srcMemoryType = cp.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  cp.srcDevice = p;
  cp.dstDevice = q;
  cp.WidthInBytes = 64 * 4;
  cp.Height = cp.Depth = 1;
  CU_OK(cuGraphAddMemcpyNode(&copy_node, g, &add_node, 1, &cp, ctx.get()));

  // A dependency from another graph is refused.
  CUgraph other;
  CU_OK(cuGraphCreate(&other, 0));
  CUgraphNode stray;
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuGraphAddEmptyNode(&stray, other, &add_node, 1));

  // The getters.
  CUgraphNodeType type;
  CU_OK(cuGraphNodeGetType(add_node, &type));
  EXPECT_EQ(CU_GRAPH_NODE_TYPE_KERNEL, type);
  CU_OK(cuGraphNodeGetType(copy_node, &type));
  EXPECT_EQ(CU_GRAPH_NODE_TYPE_MEMCPY, type);
  CUDA_KERNEL_NODE_PARAMS got{};
  CU_OK(cuGraphKernelNodeGetParams(add_node, &got));
  EXPECT_EQ(add, got.func);
  EXPECT_EQ(64u, got.blockDimX);
  ASSERT_NE(nullptr, got.kernelParams);
  EXPECT_EQ(p, *static_cast<CUdeviceptr*>(got.kernelParams[0]));
  EXPECT_EQ(3u, *static_cast<uint32_t*>(got.kernelParams[1]));
  CUDA_MEMCPY3D got_copy{};
  CU_OK(cuGraphMemcpyNodeGetParams(copy_node, &got_copy));
  EXPECT_EQ(q, got_copy.dstDevice);
  CUDA_MEMSET_NODE_PARAMS got_set{};
  CU_OK(cuGraphMemsetNodeGetParams(set_node, &got_set));
  EXPECT_EQ(p, got_set.dst);
  EXPECT_EQ(CUDA_ERROR_INVALID_VALUE, cuGraphMemsetNodeGetParams(add_node, &got_set));
  CUgraphNode nodes[3];
  size_t count = 3;
  CU_OK(cuGraphGetNodes(g, nodes, &count));
  ASSERT_EQ(3u, count);
  EXPECT_EQ(add_node, nodes[1]);

  // Nested: the child is cloned, so a node added to it later does not run.
  CUgraph parent;
  CU_OK(cuGraphCreate(&parent, 0));
  CUgraphNode child_node;
  CU_OK(cuGraphAddChildGraphNode(&child_node, parent, nullptr, 0, g));
  CUgraph child_clone;
  CU_OK(cuGraphChildGraphNodeGetGraph(child_node, &child_clone));
  CU_OK(cuGraphGetNodes(child_clone, nullptr, &count));
  EXPECT_EQ(3u, count);
  CUgraphNode late;
  CU_OK(cuGraphAddKernelNode(&late, g, &copy_node, 1, &kp));  // v is 100 now

  CUgraphExec exec;
  CU_OK(cuGraphInstantiate(&exec, parent, 0));
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  uint32_t word = 0;
  CU_OK(cuMemcpyDtoH(&word, q + 63 * 4, 4));
  EXPECT_EQ(8u, word);  // 5 + 3, copied to q
  CU_OK(cuMemcpyDtoH(&word, p, 4));
  EXPECT_EQ(8u, word);  // the late node (+100) is not in the clone
  CU_OK(cuGraphExecDestroy(exec));

  // An exec's kernel node takes new parameters; the graph keeps its own.
  CU_OK(cuGraphInstantiate(&exec, g, 0));
  uint32_t w = 7;
  void* params_q[] = {&q, &w, &n};
  kp.kernelParams = params_q;
  CU_OK(cuGraphExecKernelNodeSetParams(exec, add_node, &kp));
  CU_OK(cuGraphLaunch(exec, s));
  CU_OK(cuStreamSynchronize(s));
  // memset p=5; add 7 to q (not p); copy p->q (q=5); late node adds 100 to p.
  CU_OK(cuMemcpyDtoH(&word, q, 4));
  EXPECT_EQ(5u, word);
  CU_OK(cuMemcpyDtoH(&word, p, 4));
  EXPECT_EQ(105u, word);
  CU_OK(cuGraphKernelNodeGetParams(add_node, &got));
  EXPECT_EQ(p, *static_cast<CUdeviceptr*>(got.kernelParams[0]));

  CU_OK(cuGraphExecDestroy(exec));
  CU_OK(cuGraphDestroy(parent));
  CU_OK(cuGraphDestroy(other));
  CU_OK(cuGraphDestroy(g));
  CU_OK(cuMemFree(p));
  CU_OK(cuMemFree(q));
  CU_OK(cuStreamDestroy(s));
  CU_OK(cuModuleUnload(m));
}
