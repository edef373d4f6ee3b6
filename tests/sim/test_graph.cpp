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
