// End-to-end tests of the runtime on the simulated driver: the test plays the
// shim (HookedDriver) and a framework (allocations, HtoD weight loading,
// launches with pointers, interior pointers and by-value structs, copies).
// Every result is compared with the same computation on the host.
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <random>
#include <thread>

#include "hooked_driver.h"
#include "neuzip/runtime.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"
#include "runtime/unit.h"

namespace nz::rt::test {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

HookedDriver* g_driver = nullptr;

class Env : public ::testing::Environment {
 public:
  void SetUp() override { g_driver = start_shared_driver("runtime e2e"); }
};
const auto* g_env = ::testing::AddGlobalTestEnvironment(new Env);

nz_runtime_stats stats() {
  nz_runtime_stats s{};
  EXPECT_EQ(nz_stats(&s, sizeof s), NZ_RT_OK);
  return s;
}

class RuntimeE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (g_driver == nullptr) GTEST_SKIP() << "simulated driver or test module unavailable";
    if (!nz::rt::active()) GTEST_SKIP() << "runtime inactive (NEUZIP=0)";
    d = g_driver;
    f_add = d->function("add_u16");
    f_sum = d->function("sum_u16");
    f_pair = d->function("sum_pair");
    ASSERT_NE(f_add, nullptr);
    ASSERT_NE(f_sum, nullptr);
    ASSERT_NE(f_pair, nullptr);
    result = d->alloc(64);
    ASSERT_NE(result, 0u);
  }
  void TearDown() override {
    if (d != nullptr) {
      EXPECT_EQ(d->real().base.cuCtxSynchronize(), CUDA_SUCCESS);
      d->free(result);
      nzsim_stats s{};
      if (d->sim_stats(s)) {
        EXPECT_EQ(s.faults, 0u) << "the simulator caught an illegal address";
      }
    }
  }

  // A managed allocation filled with weights by HtoD and compressed.
  CUdeviceptr load_weights(const std::vector<uint16_t>& w) {
    bool served = false;
    CUdeviceptr p = d->alloc(w.size() * 2, &served);
    EXPECT_TRUE(served);
    EXPECT_EQ(d->htod(p, w.data(), w.size() * 2), CUDA_SUCCESS);
    Runtime::get().compress_pending(true);
    return p;
  }

  // Weights of the given sizes (bf16 elements), each rewritten by its launch
  // at every step (LOMO's weights); at `random_step` every weight is
  // rewritten with random bits instead (an encoding sized by the last one
  // cannot hold it). Every few steps and at the end, every weight's content
  // as of that step must come back (a copy stages what is compressed).
  void rewrite_every_step(const std::vector<size_t>& elements, int steps, int random_step) {
    const size_t largest = *std::max_element(elements.begin(), elements.end());
    std::vector<std::vector<uint16_t>> w;
    std::vector<CUdeviceptr> p;
    for (size_t i = 0; i < elements.size(); ++i) {
      w.push_back(bf16_weights(elements[i], 80 + static_cast<int>(i)));
      p.push_back(load_weights(w.back()));
    }
    auto delta = bf16_weights(largest, 79, 0.001f);
    std::vector<uint16_t> noise(largest);
    std::mt19937 rng(5);
    for (auto& x : noise) x = static_cast<uint16_t>(rng());
    CUdeviceptr dp = d->alloc(delta.size() * 2), np = d->alloc(noise.size() * 2);
    ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2), CUDA_SUCCESS);  // untagged
    ASSERT_EQ(d->real().base.cuMemcpyHtoD(np, noise.data(), noise.size() * 2), CUDA_SUCCESS);
    auto check_all = [&](int step) {
      for (size_t i = 0; i < w.size(); ++i) {
        std::vector<uint16_t> back(elements[i]);
        ASSERT_EQ(d->dtoh(back.data(), p[i], back.size() * 2), CUDA_SUCCESS);
        ASSERT_EQ(back, w[i]) << "step " << step << " weight " << i;
      }
    };
    for (int step = 0; step < steps; ++step) {
      for (size_t i = 0; i < w.size(); ++i) {
        const bool random = step == random_step;
        CUdeviceptr& by = random ? np : dp;
        uint64_t n = elements[i];
        ASSERT_EQ(d->launch(f_add, {&p[i], &by, &n}), CUDA_SUCCESS) << "step " << step << " weight " << i;
        const auto& add = random ? noise : delta;
        for (size_t k = 0; k < elements[i]; ++k) w[i][k] = static_cast<uint16_t>(w[i][k] + add[k]);
      }
      if (step % 3 == 2 || step == random_step + 1) check_all(step);
    }
    check_all(steps);
    for (auto q : p) d->free(q);
    d->free(dp);
    d->free(np);
  }

  uint64_t device_sum(CUdeviceptr p, size_t n, CUstream s = nullptr) {
    uint64_t n64 = n;
    EXPECT_EQ(d->launch(f_sum, {&p, &n64, &result}, s), CUDA_SUCCESS);
    uint64_t out = 0;
    EXPECT_EQ(d->dtoh(&out, result, 8, s, s != nullptr), CUDA_SUCCESS);
    if (s != nullptr) {
      EXPECT_EQ(d->real().base.cuStreamSynchronize(s), CUDA_SUCCESS);
    }
    return out;
  }

  // On `s`, capturing since a successful begin: one sum of `n` elements at
  // `p` into `result`, the capture ended and instantiated, each step told to
  // the runtime as the shim tells it.
  void capture_sum(const GraphApi& g, CUstream s, CUdeviceptr p, uint64_t n, CUgraph& graph, CUgraphExec& exec) {
    nz::rt::on_capture_begin(s);  // the shim's part, after the real call
    ASSERT_EQ(d->launch(f_sum, {&p, &n, &result}, s), CUDA_SUCCESS);
    ASSERT_EQ(g.end(s, &graph), CUDA_SUCCESS);
    nz::rt::on_capture_end(s, graph);
    ASSERT_EQ(g.instantiate(&exec, graph, 0), CUDA_SUCCESS);
    nz::rt::on_graph_instantiate(exec, graph);
  }

  // capture_sum on a new non-blocking stream `s`, captured in global mode.
  void capture_sum_on_new_stream(const GraphApi& g, CUstream& s, CUdeviceptr p, uint64_t n, CUgraph& graph,
                                 CUgraphExec& exec) {
    ASSERT_EQ(d->real().base.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
    ASSERT_EQ(g.begin(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
    capture_sum(g, s, p, n, graph, exec);
  }

  // The graph, then its exec, gone (told to the runtime as the shim tells it).
  void destroy_graph_and_exec(const GraphApi& g, CUgraph graph, CUgraphExec exec) {
    nz::rt::on_graph_destroy(graph);
    ASSERT_EQ(g.destroy(graph), CUDA_SUCCESS);
    nz::rt::on_graph_exec_destroy(exec);
    ASSERT_EQ(g.destroy_exec(exec), CUDA_SUCCESS);
  }

  // One replay of `exec` (a graph whose kernel writes `result`) on `s`, as the
  // shim launches it: what the kernel wrote (0 on any failure).
  uint64_t replay_result(CUgraphExec exec, CUstream s, CUresult (*graph_launch)(CUgraphExec, CUstream)) {
    uint64_t got = 0;
    EXPECT_EQ(d->real().base.cuMemsetD8Async(result, 0, 8, s), CUDA_SUCCESS);
    EXPECT_EQ(nz::rt::before_graph_launch(exec, s), CUDA_SUCCESS);
    EXPECT_EQ(graph_launch(exec, s), CUDA_SUCCESS);
    EXPECT_EQ(d->real().base.cuStreamSynchronize(s), CUDA_SUCCESS);
    EXPECT_EQ(d->real().base.cuMemcpyDtoH(&got, result, 8), CUDA_SUCCESS);
    return got;
  }

  HookedDriver* d = nullptr;
  CUfunction f_add = nullptr, f_sum = nullptr, f_pair = nullptr;
  CUdeviceptr result = 0;
};

TEST_F(RuntimeE2E, SmallAllocationsPassThrough) {
  bool served = true;
  CUdeviceptr p = d->alloc(4096, &served);
  EXPECT_FALSE(served);
  EXPECT_EQ(d->free(p), CUDA_SUCCESS);
}

TEST_F(RuntimeE2E, CompressesTaggedWeightsAndReleasesPages) {
  nzsim_stats before{};
  const bool on_sim = d->sim_stats(before);
  const auto s0 = stats();
  auto w = bf16_weights(4 * kMiB, 1);  // 8 MiB
  CUdeviceptr p = load_weights(w);
  const auto s1 = stats();
  EXPECT_EQ(s1.bytes_original_compressed - s0.bytes_original_compressed, 8 * kMiB);
  const uint64_t compressed = s1.bytes_compressed - s0.bytes_compressed;
  EXPECT_GT(compressed, 0u);
  EXPECT_LT(compressed, 8 * kMiB * 8 / 10);
  if (on_sim) {
    nzsim_stats after{};
    d->sim_stats(after);
    EXPECT_LT(after.physical_bytes, before.physical_bytes + 8 * kMiB * 8 / 10)
        << "pages of the compressed range were not released";
  }
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  EXPECT_GT(stats().faults, s1.faults);
  EXPECT_EQ(d->free(p), CUDA_SUCCESS);
}

TEST_F(RuntimeE2E, InteriorPointersStructsByValueAndPackedParams) {
  auto wa = bf16_weights(2 * kMiB, 2), wb = bf16_weights(2 * kMiB, 3);
  CUdeviceptr a = load_weights(wa), b = load_weights(wb);
  struct PairView {
    CUdeviceptr a, b;
    uint64_t n;
  } view{a + 1000 * 2, b, 4096};  // interior pointer into a
  ASSERT_EQ(d->launch(f_pair, {&view, &result}), CUDA_SUCCESS);
  uint64_t got = 0;
  ASSERT_EQ(d->dtoh(&got, result, 8), CUDA_SUCCESS);
  uint64_t want = 0;
  for (size_t i = 0; i < 4096; ++i) want = want * 31u + wa[1000 + i] * 3u + wb[i];
  EXPECT_EQ(got, want);
  // The same through an `extra` parameter buffer.
  EXPECT_EQ(Runtime::get().evict_idle() > 0, true);
  struct {
    PairView v;
    CUdeviceptr out;
  } packed{view, result};
  ASSERT_EQ(d->launch_packed(f_pair, &packed, sizeof packed), CUDA_SUCCESS);
  got = 0;
  ASSERT_EQ(d->dtoh(&got, result, 8), CUDA_SUCCESS);
  EXPECT_EQ(got, want);
  d->free(a);
  d->free(b);
}

// Under memory pressure (less than 1/8 of the device free) a staged range
// gives its store up once decoded. Its eviction, finding it unchanged,
// leaves the store in page-locked host memory (a copy made before it was
// given up: store_copies.cpp), from where the next decode reads it; with
// NEUZIP_KEEP_STORES_MB=0 (runtime-e2e-pressure-no-copies) it encodes it
// again. Changed, it is encoded. The bytes stay exact throughout. Needs a
// small simulated device (runtime-e2e-pressure: NZSIM_MEMORY_MB=256) so the
// filler stays small.
TEST_F(RuntimeE2E, PressureOutOfMemoryMovesStoresToHost) {
  size_t free = 0, total = 0;
  ASSERT_EQ(d->real().base.cuMemGetInfo(&free, &total), CUDA_SUCCESS);
  if (total > 1024 * kMiB) GTEST_SKIP() << "run with NZSIM_MEMORY_MB=256 (runtime-e2e-pressure)";
  const char* keep = std::getenv("NEUZIP_KEEP_STORES_MB");
  const bool copies = keep == nullptr || std::string(keep) != "0";
  constexpr int kWeights = 4;
  std::vector<std::vector<uint16_t>> w;
  std::vector<CUdeviceptr> p;
  for (int i = 0; i < kWeights; ++i) {
    w.push_back(bf16_weights(2 * kMiB, 40 + i));  // 4 MiB: two units each
    p.push_back(load_weights(w.back()));
  }
  ASSERT_EQ(stats().bytes_original_compressed, kWeights * 4 * kMiB);
  // 256 KiB free: a weight's pages (2 MiB at a time, each unit's store
  // going as it is decoded) fit only once other weights' stores (about
  // 1.4 MB a unit) left the device.
  ASSERT_EQ(d->real().base.cuMemGetInfo(&free, &total), CUDA_SUCCESS);
  CUdeviceptr filler = 0;
  ASSERT_EQ(d->real().base.cuMemAlloc(&filler, free - kMiB / 4), CUDA_SUCCESS);
  const uint64_t offloaded = Runtime::get().debug_stores_offloaded();
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kWeights; ++i) {
      uint64_t sum = 0;
      uint64_t n = w[i].size();
      const CUresult r = d->launch(f_sum, {&p[i], &n, &result});
      if (!copies) {
        // Without host copies nothing makes room: the staging fails cleanly.
        EXPECT_EQ(r, CUDA_ERROR_OUT_OF_MEMORY);
        continue;
      }
      ASSERT_EQ(r, CUDA_SUCCESS) << "round " << round << " weight " << i;
      ASSERT_EQ(d->dtoh(&sum, result, 8), CUDA_SUCCESS);
      EXPECT_EQ(sum, host_sum(w[i].data(), w[i].size())) << "round " << round << " weight " << i;
    }
  }
  if (copies) {
    EXPECT_GT(Runtime::get().debug_stores_offloaded(), offloaded);
  }
  ASSERT_EQ(d->real().base.cuMemFree(filler), CUDA_SUCCESS);
  for (int i = 0; i < kWeights; ++i) {
    std::vector<uint16_t> back(w[i].size());
    ASSERT_EQ(d->dtoh(back.data(), p[i], back.size() * 2), CUDA_SUCCESS);
    EXPECT_EQ(back, w[i]) << "weight " << i;
    d->free(p[i]);
  }
  EXPECT_EQ(d->real().base.cuCtxSynchronize(), CUDA_SUCCESS);
}

TEST_F(RuntimeE2E, PressureReleasesStoresAndEncodesAgain) {
  size_t free = 0, total = 0;
  ASSERT_EQ(d->real().base.cuMemGetInfo(&free, &total), CUDA_SUCCESS);
  if (total > 1024 * kMiB) GTEST_SKIP() << "run with NZSIM_MEMORY_MB=256 (runtime-e2e-pressure)";
  auto w = bf16_weights(2 * kMiB, 21), delta = bf16_weights(2 * kMiB, 22, 0.001f);
  CUdeviceptr p = load_weights(w);
  CUdeviceptr dp = d->alloc(delta.size() * 2);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2), CUDA_SUCCESS);  // untagged
  const auto s0 = stats();
  ASSERT_EQ(s0.bytes_original_compressed, w.size() * 2);
  ASSERT_GT(s0.bytes_compressed, 0u);
  // Leave 24 MiB free: below 1/8 of the device, enough to stage and encode.
  ASSERT_EQ(d->real().base.cuMemGetInfo(&free, &total), CUDA_SUCCESS);
  ASSERT_GT(free, 24 * kMiB);
  CUdeviceptr filler = 0;
  ASSERT_EQ(d->real().base.cuMemAlloc(&filler, free - 24 * kMiB), CUDA_SUCCESS);

  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  const auto s1 = stats();
  EXPECT_EQ(s1.decompressions, s0.decompressions + 2);  // two 2 MiB units
  EXPECT_EQ(s1.bytes_compressed, 0u) << "stores kept while staged under pressure";
  const char* keep = std::getenv("NEUZIP_KEEP_STORES_MB");
  const bool copies = keep == nullptr || std::string(keep) != "0";
  const uint64_t left_before = Runtime::get().debug_stores_left_in_host();
  const uint64_t reencodes_before = Runtime::get().debug_reencodes();
  Runtime::get().evict_idle();  // unchanged, no store on the device: not a drop nor a recompression
  const auto s2 = stats();
  EXPECT_EQ(s2.drops, s1.drops);
  EXPECT_EQ(s2.recompressions, s1.recompressions);
  if (copies) {
    EXPECT_EQ(s2.bytes_compressed, 0u) << "short of memory, the stores stay in host memory";
    EXPECT_EQ(Runtime::get().debug_stores_left_in_host(), left_before + 2);
    EXPECT_EQ(Runtime::get().debug_reencodes(), reencodes_before);
  } else {
    EXPECT_EQ(s2.bytes_compressed, s0.bytes_compressed);  // encoded again: same content, same encoding
    EXPECT_EQ(Runtime::get().debug_reencodes(), reencodes_before + 2);
  }
  EXPECT_EQ(s2.staging_bytes, 0u);
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));  // decoded from host memory (copies)

  uint64_t n = w.size();
  ASSERT_EQ(d->launch(f_add, {&p, &dp, &n}), CUDA_SUCCESS);  // an optimizer step
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(w[i] + delta[i]);
  Runtime::get().evict_idle();
  const auto s3 = stats();
  EXPECT_EQ(s3.recompressions, s2.recompressions + 2);
  EXPECT_GT(s3.bytes_compressed, 0u);
  std::vector<uint16_t> back(w.size());
  ASSERT_EQ(d->dtoh(back.data(), p, back.size() * 2), CUDA_SUCCESS);  // checkpoint save
  EXPECT_EQ(back, w);
  EXPECT_EQ(d->real().base.cuCtxSynchronize(), CUDA_SUCCESS);
  EXPECT_EQ(d->real().base.cuMemFree(filler), CUDA_SUCCESS);
  d->free(p);
  d->free(dp);
}

// A call staged unit by unit for want of memory, while its stream captures
// (a staging for a capture keeps its store: the host waited for the decode,
// and nothing asks the store back until the graph lets go): when a later
// unit finds no memory, the stores of the call's first units must be among
// the last resorts. They were not (listed as staged only once the whole call
// was), and the launch failed with out-of-memory on a device with room for
// it: two random programs at once on a 32 MiB device (docs/RESULTS.md
// §4.9.13). Here 5 MiB free for four 2 MiB units: two fit, then the first
// stores must go. Needs the small device of runtime-e2e-pressure.
TEST_F(RuntimeE2E, PressureCapturedCallGivesItsFirstStoresUp) {
  const GraphApi g = GraphApi::load(*d);
  if (!g.usable()) GTEST_SKIP() << "no graph API in this driver";
  size_t free = 0, total = 0;
  ASSERT_EQ(d->real().base.cuMemGetInfo(&free, &total), CUDA_SUCCESS);
  if (total > 1024 * kMiB) GTEST_SKIP() << "run with NZSIM_MEMORY_MB=256 (runtime-e2e-pressure)";
  auto w = bf16_weights(4 * kMiB, 31);  // 8 MiB: four units
  CUdeviceptr p = load_weights(w);
  const auto s0 = stats();
  ASSERT_EQ(s0.bytes_original_compressed, w.size() * 2);
  ASSERT_LT(s0.bytes_compressed, 6 * kMiB);  // the test's arithmetic: each store under 1.5 MiB
  ASSERT_EQ(d->real().base.cuMemGetInfo(&free, &total), CUDA_SUCCESS);
  ASSERT_GT(free, 5 * kMiB);
  CUdeviceptr filler = 0;
  ASSERT_EQ(d->real().base.cuMemAlloc(&filler, free - 5 * kMiB), CUDA_SUCCESS);
  CUstream s = nullptr;
  CUgraph graph = nullptr;
  CUgraphExec exec = nullptr;
  capture_sum_on_new_stream(g, s, p, w.size(), graph, exec);
  if (HasFatalFailure()) return;
  const auto s1 = stats();
  EXPECT_EQ(s1.decompressions, s0.decompressions + 4);
  EXPECT_LE(s1.bytes_compressed, s0.bytes_compressed / 2) << "the first units' stores made the room";
  EXPECT_EQ(replay_result(exec, s, g.launch), host_sum(w.data(), w.size()));
  destroy_graph_and_exec(g, graph, exec);
  if (HasFatalFailure()) return;
  // Unpinned: evicted (encoded again, the stores were given up) and intact.
  Runtime::get().evict_idle();
  EXPECT_EQ(device_sum(p, w.size(), s), host_sum(w.data(), w.size()));
  EXPECT_EQ(d->real().base.cuMemFree(filler), CUDA_SUCCESS);
  d->real().base.cuStreamDestroy(s);
  d->free(p);
}

// An allocation the runtime would serve, on a device whose memory is held by
// what only the out-of-memory path frees (here the stores of ranges a graph
// keeps staged): the runtime frees it and serves the allocation. It passed
// it to the driver after a plain eviction, and the shim's retry then got it
// from the driver: a segment never compressed, on the very device short of
// memory (two random programs at once on a 32 MiB device, §4.9.13).
TEST_F(RuntimeE2E, PressureAllocationFreesWhatTheShimWould) {
  const GraphApi g = GraphApi::load(*d);
  if (!g.usable()) GTEST_SKIP() << "no graph API in this driver";
  size_t free = 0, total = 0;
  ASSERT_EQ(d->real().base.cuMemGetInfo(&free, &total), CUDA_SUCCESS);
  if (total > 1024 * kMiB) GTEST_SKIP() << "run with NZSIM_MEMORY_MB=256 (runtime-e2e-pressure)";
  auto w = bf16_weights(4 * kMiB, 32);
  CUdeviceptr p = load_weights(w);
  CUstream s = nullptr;
  CUgraph graph = nullptr;
  CUgraphExec exec = nullptr;
  capture_sum_on_new_stream(g, s, p, w.size(), graph, exec);  // staged and pinned, stores kept
  if (HasFatalFailure()) return;
  const auto s1 = stats();
  ASSERT_GT(s1.bytes_compressed, 3 * kMiB) << "the stores the test needs held";
  ASSERT_EQ(d->real().base.cuMemGetInfo(&free, &total), CUDA_SUCCESS);
  CUdeviceptr filler = 0;
  ASSERT_EQ(d->real().base.cuMemAlloc(&filler, free - kMiB), CUDA_SUCCESS);
  bool served = false;
  CUdeviceptr q = d->alloc(2 * kMiB, &served);
  ASSERT_NE(q, 0u);
  EXPECT_TRUE(served) << "passed to the driver";
  EXPECT_LT(stats().bytes_compressed, s1.bytes_compressed);
  EXPECT_EQ(replay_result(exec, s, g.launch), host_sum(w.data(), w.size()));
  d->free(q);
  EXPECT_EQ(d->real().base.cuMemFree(filler), CUDA_SUCCESS);
  destroy_graph_and_exec(g, graph, exec);
  if (HasFatalFailure()) return;
  Runtime::get().evict_idle();
  EXPECT_EQ(device_sum(p, w.size(), s), host_sum(w.data(), w.size()));
  d->real().base.cuStreamDestroy(s);
  d->free(p);
}

// Training-like steps (forward W0..W3, backward W3..W0) with a budget of
// three of the four weights: the two stagings a step needs (W3 near the
// end of the forward pass, W0 at the end of the backward pass) are guessed
// from the last step's uses (use_order.h) and staged ahead. The staging
// order guessed W0 after W3 (what followed W3's staging last time), which
// has no room until the backward pass reaches it: at most half the
// stagings ahead. The device is idle after every call (a synchronous read
// of the result), so no guess ever has to wait. Run by
// runtime-e2e-guess-from-uses (NEUZIP_STAGING_MB=6).
TEST_F(RuntimeE2E, TrainingStepsAreGuessedFromTheirUses) {
  const char* budget = std::getenv("NEUZIP_STAGING_MB");
  if (budget == nullptr || std::string(budget) != "6") GTEST_SKIP() << "run by runtime-e2e-guess-from-uses";
  constexpr size_t kElements = kMiB;  // 2 MiB of bf16: one unit each
  std::vector<std::vector<uint16_t>> w;
  std::vector<CUdeviceptr> p;
  std::vector<uint64_t> expect;
  for (int i = 0; i < 4; ++i) {
    w.push_back(bf16_weights(kElements, 300 + i));
    p.push_back(load_weights(w.back()));
    expect.push_back(host_sum(w.back().data(), kElements));
  }
  const int order[] = {0, 1, 2, 3, 3, 2, 1, 0};
  nz_runtime_stats before{};
  uint64_t hits_before = 0;
  for (int step = 0; step < 10; ++step) {
    if (step == 4) {  // the forecast and the use order know two whole steps by then
      before = stats();
      hits_before = Runtime::get().debug_prefetch_hits();
    }
    const uint64_t batch = static_cast<uint64_t>(step);
    ASSERT_EQ(d->htod(result, &batch, sizeof batch), CUDA_SUCCESS);  // a new iteration begins
    for (int i : order) ASSERT_EQ(device_sum(p[i], kElements), expect[i]) << "step " << step << " weight " << i;
  }
  const nz_runtime_stats after = stats();
  const uint64_t ahead = after.stagings_ahead - before.stagings_ahead,
                 on_launch = after.stagings_on_launch - before.stagings_on_launch,
                 hits = Runtime::get().debug_prefetch_hits() - hits_before;
  std::printf("steps 4-9: %llu stagings ahead (%llu used), %llu on launch\n", static_cast<unsigned long long>(ahead),
              static_cast<unsigned long long>(hits), static_cast<unsigned long long>(on_launch));
  // Two stagings per step, both guessed right: staged ahead and then used
  // (a wrong guess would count as staged ahead, not as used).
  EXPECT_EQ(ahead + on_launch, 12u) << "the budget should force two stagings per step";
  EXPECT_EQ(on_launch, 0u) << "stagings on launch: a guess was missing or wrong";
  EXPECT_EQ(hits, 12u) << "stagings ahead that were not used: wrong guesses";
  for (auto q : p) d->free(q);
}

// A rewritten run evicted when the device has no room for its new encoding
// (a fixed budget reserves none): its units are parked in host memory so
// that the pages can go. Before, the run stayed staged and a staging that
// needed its pages ran out of memory (RESULTS §4.9.9). Needs a small device
// and a fixed budget (runtime-e2e-park: NZSIM_MEMORY_MB=256,
// NEUZIP_STAGING_MB=8).
class RuntimePark : public RuntimeE2E {
 protected:
  void SetUp() override {
    RuntimeE2E::SetUp();
    if (IsSkipped()) return;
    size_t free = 0, total = 0;
    ASSERT_EQ(d->real().base.cuMemGetInfo(&free, &total), CUDA_SUCCESS);
    if (total > 1024 * kMiB || std::getenv("NEUZIP_STAGING_MB") == nullptr)
      GTEST_SKIP() << "run with NZSIM_MEMORY_MB=256 and a fixed budget (runtime-e2e-park)";
    // The default 64 MiB of host memory, or (runtime-e2e-park-one-unit) room for one unit.
    const char* park = std::getenv("NEUZIP_PARK_MB");
    one_unit_of_host_memory = park != nullptr && std::string(park) == "2";
  }
  void TearDown() override {
    if (d != nullptr) {
      EXPECT_EQ(d->real().base.cuCtxSynchronize(), CUDA_SUCCESS);
      for (CUdeviceptr f : fillers) EXPECT_EQ(d->real().base.cuMemFree(f), CUDA_SUCCESS);
    }
    RuntimeE2E::TearDown();
  }
  // All of the device's free memory but `leave` (256 KiB by default; once
  // the stores freed in stream order are back), released in TearDown or by
  // release_fillers.
  void fill(size_t leave = kMiB / 4) {
    size_t free = 0, total = 0;
    ASSERT_EQ(d->real().base.cuCtxSynchronize(), CUDA_SUCCESS);
    ASSERT_EQ(d->real().base.cuMemGetInfo(&free, &total), CUDA_SUCCESS);
    ASSERT_GT(free, leave);
    CUdeviceptr f = 0;
    ASSERT_EQ(d->real().base.cuMemAlloc(&f, free - leave), CUDA_SUCCESS);
    fillers.push_back(f);
  }
  void release_fillers() {
    ASSERT_EQ(d->real().base.cuCtxSynchronize(), CUDA_SUCCESS);
    for (CUdeviceptr f : fillers) ASSERT_EQ(d->real().base.cuMemFree(f), CUDA_SUCCESS);
    fillers.clear();
  }
  // A 4 MiB weight (one run of two units), staged, rewritten on the device
  // with the device filled, then evicted: both units parked. The rewrite
  // gives every element a random exponent out of 64: it still compresses
  // (about 0.88), but not into the old encoding's size, so its encode needs
  // a bound-sized buffer (2 MiB + header) first.
  void park_rewritten_weight() {
    ASSERT_NO_FATAL_FAILURE(load_and_rewrite_filled());
    Runtime::get().evict_idle();
    EXPECT_EQ(Runtime::get().debug_parked(), parked0 + 2) << "both units to host memory";
    EXPECT_EQ(stats().staging_bytes, 0u) << "the run stayed staged";
  }
  std::vector<uint16_t> content() {
    std::vector<uint16_t> back(target.size());
    EXPECT_EQ(d->dtoh(back.data(), p, back.size() * 2), CUDA_SUCCESS);
    return back;
  }

  // A 4 MiB weight, staged, then rewritten with every element given a random
  // exponent out of 64 (see park_rewritten_weight); `p` = target after it.
  void load_and_rewrite_filled() {
    auto w = bf16_weights(2 * kMiB, 31);
    p = load_weights(w);
    target.resize(w.size());
    std::vector<uint16_t> delta(w.size());
    std::mt19937 rng(7);
    for (size_t i = 0; i < w.size(); ++i) {
      const uint32_t r = rng();
      target[i] = static_cast<uint16_t>((r & 0x807F) | ((100 + ((r >> 16) & 63)) << 7));
      delta[i] = static_cast<uint16_t>(target[i] - w[i]);
    }
    dp = d->alloc(delta.size() * 2);
    ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2), CUDA_SUCCESS);  // untagged
    EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));  // staged, stores kept
    fill();
    uint64_t n = w.size();
    ASSERT_EQ(d->launch(f_add, {&p, &dp, &n}), CUDA_SUCCESS);  // p = target
    parked0 = Runtime::get().debug_parked();
  }

  std::vector<CUdeviceptr> fillers;
  std::vector<uint16_t> target;
  CUdeviceptr p = 0, dp = 0;
  uint64_t parked0 = 0;
  bool one_unit_of_host_memory = false;
};

// Host memory for one unit of a two-unit run (runtime-e2e-park-one-unit:
// NEUZIP_PARK_MB=2): the first unit parks, the second cannot, so the run
// stays mapped — and the first unit's parked copy must go with that. Kept,
// it was restored at the run's next staging over content rewritten since.
TEST_F(RuntimePark, RunThatCannotParkWholeStaysWithoutParkedCopies) {
  if (!one_unit_of_host_memory) GTEST_SKIP() << "run with NEUZIP_PARK_MB=2 (runtime-e2e-park-one-unit)";
  // A second rewrite, allocated while there is room: every element + 1.
  std::vector<uint16_t> ones(2 * kMiB, 1);
  CUdeviceptr op = d->alloc(ones.size() * 2);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(op, ones.data(), ones.size() * 2), CUDA_SUCCESS);  // untagged
  ASSERT_NO_FATAL_FAILURE(load_and_rewrite_filled());
  Runtime::get().evict_idle();
  EXPECT_EQ(Runtime::get().debug_parked(), parked0) << "a run parked in part counts as not parked";
  EXPECT_EQ(stats().staging_bytes, 4 * kMiB) << "the run stays mapped";
  uint64_t n = target.size();
  ASSERT_EQ(d->launch(f_add, {&p, &op, &n}), CUDA_SUCCESS);  // rewritten again while staged
  for (auto& x : target) x = static_cast<uint16_t>(x + 1);
  release_fillers();
  Runtime::get().evict_idle();  // room now: both encoded
  EXPECT_EQ(stats().staging_bytes, 0u);
  EXPECT_EQ(content(), target) << "a stale parked copy came back";
  d->free(p);
  d->free(dp);
  d->free(op);
}

// A run whose first unit parks and whose second cannot be held compressed
// (random bits: poor ratio) becomes resident memory whole: the first unit's
// parked copy must go with that (kept by a dead unit, its host memory was
// given back outside the runtime's lock whenever the unit died). The leak
// itself is not seen here (the dead unit dies at once either way): this
// covers the path, its content and its accounting.
TEST_F(RuntimePark, RunRetiredAfterAParkKeepsNoParkedCopy) {
  if (one_unit_of_host_memory) GTEST_SKIP() << "needs room for two units (runtime-e2e-park)";
  auto w = bf16_weights(2 * kMiB, 33);
  p = load_weights(w);
  target.resize(w.size());
  std::vector<uint16_t> delta(w.size());
  std::mt19937 rng(9);
  const size_t half = w.size() / 2;  // unit A: random exponents out of 64; unit B: random bits
  for (size_t i = 0; i < w.size(); ++i) {
    const uint32_t r = rng();
    target[i] = i < half ? static_cast<uint16_t>((r & 0x807F) | ((100 + ((r >> 16) & 63)) << 7))
                         : static_cast<uint16_t>(r);
    delta[i] = static_cast<uint16_t>(target[i] - w[i]);
  }
  dp = d->alloc(delta.size() * 2);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2), CUDA_SUCCESS);  // untagged
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  // 2.2 MiB free: A's encode takes a buffer of its old size (1.45 MB),
  // finds it too small, and then a bound-sized one no longer fits (the
  // first is the pool's until a synchronization); A parks, which
  // synchronizes; B's bound-sized buffer then fits, and its random bits
  // compress too poorly to keep (kRetire).
  fill(2 * kMiB + kMiB / 5);
  uint64_t n = w.size();
  ASSERT_EQ(d->launch(f_add, {&p, &dp, &n}), CUDA_SUCCESS);
  const uint64_t parked_before = Runtime::get().debug_parked();
  const auto s0 = stats();
  Runtime::get().evict_idle();
  EXPECT_EQ(stats().bytes_original_compressed, s0.bytes_original_compressed - 4 * kMiB)
      << "the run did not become resident memory (the scenario was not reached)";
  EXPECT_EQ(Runtime::get().debug_parked(), parked_before) << "the run was retired, not parked";
  EXPECT_EQ(Runtime::get().debug_parked_bytes_held(), 0u) << "a parked copy outlived the run's retirement";
  EXPECT_EQ(content(), target);
  d->free(p);
  d->free(dp);
}

// An untyped range (bytes copied in, no nz_tag) rewritten a little is
// encoded at eviction into a buffer of its last encoding's size, with the
// element type that won then: 1.75 MiB free holds that (~1.45 MB) but not
// a bound-sized buffer (2 MiB + header). Without the hint for untyped
// bytes the encode found no room and the range parked in host memory.
TEST_F(RuntimePark, UntypedRewrittenRangeEncodesIntoItsLastSize) {
  if (one_unit_of_host_memory) GTEST_SKIP() << "runs in runtime-e2e-park";
  auto w = bf16_weights(kMiB, 35);  // one 2 MiB unit
  p = load_weights(w);
  const auto s0 = stats();
  ASSERT_EQ(s0.bytes_original_compressed % (2 * kMiB), 0u);
  // Every 16th element's lowest mantissa bit flips: about the same size.
  target = w;
  std::vector<uint16_t> delta(w.size(), 0);
  for (size_t i = 0; i < w.size(); i += 16) {
    delta[i] = (w[i] & 1) ? static_cast<uint16_t>(0xFFFF) : uint16_t{1};
    target[i] = static_cast<uint16_t>(w[i] + delta[i]);
  }
  dp = d->alloc(delta.size() * 2);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2), CUDA_SUCCESS);  // untagged
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));  // staged
  fill(kMiB + 3 * kMiB / 4);
  uint64_t n = w.size();
  ASSERT_EQ(d->launch(f_add, {&p, &dp, &n}), CUDA_SUCCESS);  // p = target
  const uint64_t parked_before = Runtime::get().debug_parked();
  const auto s1 = stats();
  Runtime::get().evict_idle();
  const auto s2 = stats();
  EXPECT_EQ(Runtime::get().debug_parked(), parked_before) << "no room for a bound-sized encode: parked";
  EXPECT_EQ(s2.recompressions, s1.recompressions + 1) << "the rewritten unit was not encoded on the device";
  EXPECT_EQ(s2.staging_bytes, 0u) << "the unit stayed staged";
  release_fillers();
  EXPECT_EQ(content(), target);  // decoded from the new store
  d->free(p);
  d->free(dp);
}

// Parked, restored bit for bit at the next use, parked again while memory
// stays short, encoded once there is room (with `park` disabled it fails:
// the run stays staged).
TEST_F(RuntimePark, EvictionWithoutRoomToEncodeParksInHostMemory) {
  if (one_unit_of_host_memory) GTEST_SKIP() << "needs room for two units (runtime-e2e-park)";
  ASSERT_NO_FATAL_FAILURE(park_rewritten_weight());
  EXPECT_EQ(content(), target);  // restored from host memory
  fill();                        // what the old stores held
  Runtime::get().evict_idle();   // still no room: parked again
  EXPECT_EQ(Runtime::get().debug_parked(), parked0 + 4);
  EXPECT_EQ(stats().staging_bytes, 0u);
  release_fillers();
  const auto s0 = stats();
  EXPECT_EQ(device_sum(p, target.size()), host_sum(target.data(), target.size()));
  Runtime::get().evict_idle();  // room now: encoded, not parked
  const auto s1 = stats();
  EXPECT_EQ(Runtime::get().debug_parked(), parked0 + 4);
  EXPECT_EQ(s1.staging_bytes, 0u);
  EXPECT_GT(s1.bytes_compressed, s0.bytes_compressed + 3 * kMiB) << "two new stores of ~1.8 MB";
  EXPECT_EQ(content(), target);  // decoded from the new stores
  d->free(p);
  d->free(dp);
}

// A parked range untagged comes back as resident memory with its content;
// one freed while parked leaves nothing behind (the next park finds room).
TEST_F(RuntimePark, ParkedRangesUntaggedOrFreed) {
  if (one_unit_of_host_memory) GTEST_SKIP() << "needs room for two units (runtime-e2e-park)";
  ASSERT_NO_FATAL_FAILURE(park_rewritten_weight());
  const auto s0 = stats();
  EXPECT_EQ(nz_untag(p, target.size() * 2), NZ_RT_OK);
  EXPECT_EQ(stats().bytes_original_compressed, s0.bytes_original_compressed - target.size() * 2);
  EXPECT_EQ(content(), target);
  Runtime::get().evict_idle();
  EXPECT_EQ(Runtime::get().debug_parked(), parked0 + 2) << "resident now: never parked again";
  EXPECT_EQ(content(), target);
  d->free(p);
  d->free(dp);
  release_fillers();
  // 40 more parks of 2 MiB: more than the 64 MiB of host memory holds,
  // so only if the freed and untagged ranges gave theirs back.
  for (int i = 0; i < 20; ++i) {
    ASSERT_NO_FATAL_FAILURE(park_rewritten_weight());
    d->free(p);
    d->free(dp);
    release_fillers();
  }
}

TEST_F(RuntimeE2E, ChangedRangesAreRecompressedUnchangedDropped) {
  auto w = bf16_weights(2 * kMiB, 4), delta = bf16_weights(2 * kMiB, 5, 0.001f);
  CUdeviceptr p = load_weights(w);
  CUdeviceptr dp = d->alloc(delta.size() * 2);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2), CUDA_SUCCESS);  // untagged
  // The weight is compressed as units of at most kMaxUnitBytes, each counted.
  const uint64_t units = (w.size() * 2 + nz::rt::detail::kMaxUnitBytes - 1) / nz::rt::detail::kMaxUnitBytes;
  const auto s0 = stats();
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  Runtime::get().evict_idle();
  const auto s1 = stats();
  EXPECT_EQ(s1.drops, s0.drops + units);
  uint64_t n = w.size();
  ASSERT_EQ(d->launch(f_add, {&p, &dp, &n}), CUDA_SUCCESS);  // an optimizer step
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(w[i] + delta[i]);
  Runtime::get().evict_idle();
  const auto s2 = stats();
  EXPECT_EQ(s2.recompressions, s1.recompressions + units);
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  std::vector<uint16_t> back(w.size());
  Runtime::get().evict_idle();
  ASSERT_EQ(d->dtoh(back.data(), p, back.size() * 2), CUDA_SUCCESS);  // checkpoint save
  EXPECT_EQ(back, w);
  d->free(p);
  d->free(dp);
}

// A weight of several units is staged as one run: one handle, one
// cuMemMap + cuMemSetAccess, one decode launch, one cuMemUnmap at eviction,
// whatever its size (issue 10: VMM calls per weight, not per page).
TEST_F(RuntimeE2E, MultiUnitWeightStagesAsOneRun) {
  auto w = bf16_weights(6 * kMiB, 9);  // 12 MiB: six 2 MiB units
  CUdeviceptr p = load_weights(w);
  const uint64_t units = w.size() * 2 / nz::rt::detail::kMaxUnitBytes;
  ASSERT_EQ(units, 6u);
  Runtime::get().evict_idle();
  const auto s0 = stats();
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  const auto s1 = stats();
  EXPECT_EQ(s1.decompressions - s0.decompressions, units);
  EXPECT_EQ(s1.decode_launches - s0.decode_launches, 1u) << "one batched decode for the whole run";
  EXPECT_EQ(s1.stagings_on_launch - s0.stagings_on_launch, units);
  // map + set-access, and at most one cuMemCreate (the pool may hold a handle of this size).
  EXPECT_GE(s1.vmm_calls - s0.vmm_calls, 2u);
  EXPECT_LE(s1.vmm_calls - s0.vmm_calls, 3u);
  Runtime::get().evict_idle();
  const auto s2 = stats();
  EXPECT_EQ(s2.drops - s1.drops, units);
  EXPECT_EQ(s2.vmm_calls - s1.vmm_calls, 1u) << "one cuMemUnmap for the run";
  // Staged again: the evicted run's handle is reused, no cuMemCreate.
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  const auto s3 = stats();
  EXPECT_EQ(s3.vmm_calls - s2.vmm_calls, 2u);
  EXPECT_EQ(s3.decode_launches - s2.decode_launches, 1u);
  Runtime::get().evict_idle();
  d->free(p);
}

// A loop reading more weights than the budget holds (runtime-e2e-forecast*:
// NEUZIP_STAGING_MB=12, six units): twelve one-unit weights read in order,
// each iteration begun by a host-to-device copy, as a batch would be. Least
// recently used eviction took each weight just before it was needed again:
// every iteration staged all twelve (with the arena, or exact handles without
// handovers; with exact handles and handovers, 8: a handover's victim must be
// of the incoming run's size, which made it the unit just used). With the
// forecast (reuse_forecast.h) the ones needed last go, and once two
// iterations were seen each stages 7: the shortfall and the guess staged
// ahead. Every sum stays exact.
TEST_F(RuntimeE2E, CyclicLoopKeepsWhatItNeedsFirst) {
  if (std::getenv("NEUZIP_STAGING_MB") == nullptr) GTEST_SKIP() << "needs a fixed budget (runtime-e2e-forecast)";
  constexpr int kWeights = 12, kIterations = 8, kMeasured = 4;
  std::vector<std::vector<uint16_t>> w;
  std::vector<CUdeviceptr> p;
  std::vector<uint64_t> sums;
  for (int i = 0; i < kWeights; ++i) {
    w.push_back(bf16_weights(kMiB, 200 + i));  // one 2 MiB unit each
    p.push_back(load_weights(w.back()));
    sums.push_back(host_sum(w.back().data(), w.back().size()));
  }
  CUdeviceptr batch = d->alloc(4096);
  uint64_t staged = 0;
  for (int it = 0; it < kIterations; ++it) {
    const uint32_t token = static_cast<uint32_t>(it);
    ASSERT_EQ(d->htod(batch, &token, sizeof token), CUDA_SUCCESS);
    const auto before = stats();
    for (int i = 0; i < kWeights; ++i) {
      ASSERT_EQ(device_sum(p[i], w[i].size()), sums[i]) << "iteration " << it << " weight " << i;
    }
    const auto after = stats();
    if (it >= kIterations - kMeasured) staged += after.decompressions - before.decompressions;
  }
  const double per_iteration = static_cast<double>(staged) / kMeasured;
  // At least the shortfall (12 - 6) must be staged, or the budget was not one.
  EXPECT_GE(per_iteration, 6.0);
  const char* order = std::getenv("NEUZIP_EVICT");
  if (order != nullptr && std::string(order) == "lru") {
    EXPECT_GE(per_iteration, 11.0) << "runtime-e2e-forecast-lru: the case the forecast is for";
  } else {
    EXPECT_LE(per_iteration, 8.5) << "least recently used stages all 12";
  }
  std::fprintf(stderr, "staged per iteration: %.2f\n", per_iteration);
  for (auto q : p) d->free(q);
  d->free(batch);
}

// A pointer into untagged memory of an allocation that holds weights reaches
// forward, like a pointer into a tag: a block starting before compressed
// pages and running over them stages them (and reads them exactly), while an
// activation a caching allocator placed after the weights stages nothing (it
// used to stage every unit of the allocation at each launch: a 64 MiB budget
// on the H200 restaged whole 20 MiB segments per launch in generation).
TEST_F(RuntimeE2E, UntaggedMemoryReachesForwardOnly) {
  constexpr size_t kAlloc = 20 * kMiB, kWeightsAt = 4 * kMiB, kWeights = 8 * kMiB;
  CUdeviceptr p = d->alloc(kAlloc);
  ASSERT_NE(p, 0u);
  // Untagged memory with known content (the real driver's memset: no tag).
  ASSERT_EQ(d->real().base.cuMemsetD8Async(p, 0x11, kAlloc, nullptr), CUDA_SUCCESS);
  ASSERT_EQ(d->real().base.cuCtxSynchronize(), CUDA_SUCCESS);
  auto w = bf16_weights(kWeights / 2, 21);
  ASSERT_EQ(d->htod(p + kWeightsAt, w.data(), kWeights), CUDA_SUCCESS);
  Runtime::get().compress_pending(true);
  Runtime::get().evict_idle();
  const size_t units = kWeights / nz::rt::detail::kMaxUnitBytes;

  // After the weights (an activation in the segment's tail): nothing staged.
  const auto s0 = stats();
  std::vector<uint16_t> tail(2 * kMiB / 2, 0x1111);
  EXPECT_EQ(device_sum(p + 14 * kMiB, tail.size()), host_sum(tail.data(), tail.size()));
  const auto s1 = stats();
  EXPECT_EQ(s1.decompressions - s0.decompressions, 0u) << "a pointer after the weights staged them";
  EXPECT_EQ(s1.faults - s0.faults, 0u);

  // Before the weights, reading on over them: they are staged, exactly.
  std::vector<uint16_t> span((kWeightsAt - 2 * kMiB) / 2, 0x1111);
  span.insert(span.end(), w.begin(), w.end());
  EXPECT_EQ(device_sum(p + 2 * kMiB, span.size()), host_sum(span.data(), span.size()));
  const auto s2 = stats();
  EXPECT_EQ(s2.decompressions - s1.decompressions, units) << "a block running over compressed pages";
  Runtime::get().evict_idle();
  d->free(p);
}

// Handovers (handoff.h) under a fixed budget with the arena
// (runtime-e2e-handoff): a range found unchanged at its last eviction is
// evicted on the device, its change test run by a guard kernel. Written in
// between (the runtime cannot see writes), it is "changed after all": the
// guard copies it to host memory, the next use restores it from there (not
// from the stale store), and from then on it is encoded at eviction.
TEST_F(RuntimeE2E, HandoffOfARangeChangedAfterAllRestoresItFromHost) {
  const char* budget = std::getenv("NEUZIP_STAGING_MB");
  if (budget == nullptr || std::getenv("NZSIM_MAP_OFFSETS") == nullptr)
    GTEST_SKIP() << "needs a fixed budget and the arena (runtime-e2e-handoff)";
  const size_t bytes = std::strtoull(budget, nullptr, 10) * kMiB;  // one range fills the budget
  auto a = bf16_weights(bytes / 2, 41), b = bf16_weights(bytes / 2, 42), delta = bf16_weights(bytes / 2, 43, 0.001f);
  CUdeviceptr pa = load_weights(a), pb = load_weights(b);
  CUdeviceptr dp = d->alloc(bytes);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), bytes), CUDA_SUCCESS);  // untagged
  const uint64_t units = bytes / nz::rt::detail::kMaxUnitBytes;
  // Each staging evicts the other range: both are seen unchanged once.
  EXPECT_EQ(device_sum(pa, a.size()), host_sum(a.data(), a.size()));
  EXPECT_EQ(device_sum(pb, b.size()), host_sum(b.data(), b.size()));
  EXPECT_EQ(device_sum(pa, a.size()), host_sum(a.data(), a.size()));
  const uint64_t handoffs0 = Runtime::get().debug_handoffs(), rescues0 = Runtime::get().debug_rescues();

  // A written while staged, then evicted by B's staging: handed over, changed.
  uint64_t n = a.size();
  ASSERT_EQ(d->launch(f_add, {&pa, &dp, &n}), CUDA_SUCCESS);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint16_t>(a[i] + delta[i]);
  EXPECT_EQ(device_sum(pb, b.size()), host_sum(b.data(), b.size()));
  EXPECT_EQ(Runtime::get().debug_handoffs() - handoffs0, units) << "A was evicted on the host, not handed over";

  // Restored from the guard's host copy, not decoded from A's old store.
  EXPECT_EQ(device_sum(pa, a.size()), host_sum(a.data(), a.size()));
  EXPECT_EQ(Runtime::get().debug_rescues() - rescues0, units);
  const auto s0 = stats();
  // Never handed over again: evicted on the host and encoded, still exact.
  EXPECT_EQ(device_sum(pb, b.size()), host_sum(b.data(), b.size()));
  EXPECT_EQ(device_sum(pa, a.size()), host_sum(a.data(), a.size()));
  const auto s1 = stats();
  EXPECT_EQ(s1.recompressions - s0.recompressions, units) << "A's new content was not encoded at eviction";
  EXPECT_EQ(Runtime::get().debug_rescues() - rescues0, units);
  std::vector<uint16_t> back(a.size());
  ASSERT_EQ(d->dtoh(back.data(), pa, bytes), CUDA_SUCCESS);
  EXPECT_TRUE(back == a);
  Runtime::get().evict_idle();
  d->free(pa);
  d->free(pb);
  d->free(dp);
}

// Programs poll cuMemGetInfo (memory samplers every few ms, vLLM's profiling)
// while other threads launch; a staging holds the runtime lock for its VMM
// calls. The answer must not wait for that lock, nor rescan what was loaded
// when nothing new was tagged: it reuses the room computed last.
TEST_F(RuntimeE2E, FreeMemoryQueryNeverWaitsForTheLock) {
  auto w = bf16_weights(4 * kMiB / 2, 23);
  CUdeviceptr p = load_weights(w);
  size_t free0 = 0, total = 0;
  ASSERT_EQ(d->real().base.cuMemGetInfo(&free0, &total), CUDA_SUCCESS);
  size_t first = free0;
  Runtime::get().adjust_free_memory(&first, total);
  EXPECT_LT(first, free0) << "no room kept to stage the compressed weights";

  std::future<size_t> answer;
  bool answered_while_locked = false;
  Runtime::get().debug_run_locked([&] {
    answer = std::async(std::launch::async, [&] {
      size_t free = free0;
      Runtime::get().adjust_free_memory(&free, total);
      return free;
    });
    answered_while_locked = answer.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  });
  EXPECT_TRUE(answered_while_locked) << "cuMemGetInfo waited for the runtime lock";
  EXPECT_EQ(answer.get(), first);
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  Runtime::get().evict_idle();
  d->free(p);
}

// A unit keeps one pending use per ordinary stream (a later event on a
// stream completes after an earlier one), so a launch adds its use without
// asking the driver about older ones; the default-stream handles name a
// different stream per thread, so their uses are kept apart and pruned.
TEST_F(RuntimeE2E, UnitKeepsTheLatestUsePerStream) {
  const auto& api = d->real().base;
  CUstream s1 = nullptr, s2 = nullptr;
  ASSERT_EQ(api.cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  ASSERT_EQ(api.cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  // s1 held by a host function until released: its events stay pending, so
  // pruning finished uses could not have dropped the earlier one.
  using HostFn = CUresult (*)(CUstream, CUhostFn, void*);
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(lib, nullptr);
  auto launch_host = reinterpret_cast<HostFn>(dlsym(lib, "cuLaunchHostFunc"));
  ASSERT_NE(launch_host, nullptr);
  static std::atomic<bool> release{false};
  release = false;
  ASSERT_EQ(launch_host(s1, [](void*) { while (!release.load()) std::this_thread::yield(); }, nullptr), CUDA_SUCCESS);
  nz::rt::Unit u;
  auto a = nz::rt::record_event(s1), b = nz::rt::record_event(s1), c = nz::rt::record_event(s2);
  ASSERT_TRUE(a && b && c);
  u.add_use(a, s1);
  u.add_use(b, s1);
  EXPECT_FALSE(nz::rt::event_done(a));
  ASSERT_EQ(u.uses.size(), 1u);
  EXPECT_EQ(u.uses[0], b) << "the later event on the same stream replaces the earlier";
  // A stream destroyed somewhere: a handle may now name another stream, so an
  // older use is not replaced by a newer one on the same handle.
  nz::rt::note_stream_destroyed();
  auto b2 = nz::rt::record_event(s1);
  u.add_use(b2, s1);
  EXPECT_EQ(u.uses.size(), 2u) << "kept after a stream was destroyed";
  release = true;
  u.add_use(c, s2);
  EXPECT_EQ(u.uses.size(), 3u);
  EXPECT_EQ(u.use_streams.size(), u.uses.size());
  // Per-thread default stream: never merged, pruned once finished.
  for (int i = 0; i < 20; ++i) {
    auto e = nz::rt::record_event(CU_STREAM_PER_THREAD);
    ASSERT_TRUE(e);
    u.add_use(e, CU_STREAM_PER_THREAD);
    ASSERT_EQ(api.cuStreamSynchronize(CU_STREAM_PER_THREAD), CUDA_SUCCESS);
  }
  EXPECT_LE(u.uses.size(), nz::rt::Unit::kPrunedAt + 1);
  EXPECT_EQ(u.use_streams.size(), u.uses.size());
  u.wait_uses();
  EXPECT_TRUE(u.uses.empty());
  EXPECT_TRUE(u.use_streams.empty());
  // The legacy default stream (0 or CU_STREAM_LEGACY: PyTorch's) of the
  // runtime's own context is one stream: its later use replaces the earlier
  // one while both are pending. Not known to be that context: kept apart.
  static std::atomic<bool> release_legacy{false};
  release_legacy = false;
  ASSERT_EQ(launch_host(CU_STREAM_LEGACY, [](void*) { while (!release_legacy.load()) std::this_thread::yield(); },
                        nullptr),
            CUDA_SUCCESS);
  nz::rt::Unit v;
  auto l1 = nz::rt::record_event(nullptr), l2 = nz::rt::record_event(CU_STREAM_LEGACY);
  ASSERT_TRUE(l1 && l2);
  v.add_use(l1, nullptr, true);
  v.add_use(l2, CU_STREAM_LEGACY, true);
  EXPECT_FALSE(nz::rt::event_done(l1));
  ASSERT_EQ(v.uses.size(), 1u);
  EXPECT_EQ(v.uses[0], l2) << "the legacy stream's later use replaces the earlier";
  v.add_use(nz::rt::record_event(nullptr), nullptr, false);
  EXPECT_EQ(v.uses.size(), 2u) << "a legacy use of another context is kept apart";
  release_legacy = true;
  v.wait_uses();
  EXPECT_EQ(api.cuStreamDestroy(s1), CUDA_SUCCESS);
  EXPECT_EQ(api.cuStreamDestroy(s2), CUDA_SUCCESS);
}

// Whether this driver maps a slice of a handle (the H200's driver 580 and
// the simulator by default do not; NZSIM_MAP_OFFSETS=1 does).
bool driver_maps_slices(nz::rt::VmmAllocator& vmm) {
  nz::rt::UniquePhysicalMemory h;
  if (vmm.create(2 * vmm.page_size(), h) != CUDA_SUCCESS) {
    ADD_FAILURE() << "cuMemCreate of two pages failed";
    return false;
  }
  return vmm.maps_part_of(h.get());
}

// Whether one cuMemUnmap takes down two adjacent mappings of two handles
// (the simulator does unless NZSIM_UNMAP_ACROSS=0; the H200's answer is not
// known yet).
bool driver_unmaps_across(nz::rt::VmmAllocator& vmm) {
  nz::rt::UniquePhysicalMemory a, b;
  if (vmm.create(vmm.page_size(), a) != CUDA_SUCCESS || vmm.create(vmm.page_size(), b) != CUDA_SUCCESS) {
    ADD_FAILURE() << "cuMemCreate of a page failed";
    return false;
  }
  return vmm.unmaps_across(a.get(), b.get());
}

// The simulator's two answers to an unmap over several mappings, and the
// probe's reading of each (NZSIM_UNMAP_ACROSS=0 runs the other half).
TEST_F(RuntimeE2E, UnmapAcrossMappingsIsAskedNotAssumed) {
  const auto& api = d->real().base;
  nz::rt::VmmAllocator vmm;
  ASSERT_TRUE(vmm.init(0));
  const size_t page = vmm.page_size();
  nz::rt::UniquePhysicalMemory a, b;
  ASSERT_EQ(vmm.create(page, a), CUDA_SUCCESS);
  ASSERT_EQ(vmm.create(page, b), CUDA_SUCCESS);
  CUdeviceptr va = 0;
  ASSERT_EQ(api.cuMemAddressReserve(&va, 2 * page, page, 0, 0), CUDA_SUCCESS);
  ASSERT_EQ(api.cuMemMap(va, page, 0, a.get(), 0), CUDA_SUCCESS);
  ASSERT_EQ(api.cuMemMap(va + page, page, 0, b.get(), 0), CUDA_SUCCESS);
  const bool across = api.cuMemUnmap(va, 2 * page) == CUDA_SUCCESS;
  const char* env = std::getenv("NZSIM_UNMAP_ACROSS");
  EXPECT_EQ(across, !(env && std::string(env) == "0"));
  if (!across) {
    // Refused, nothing changed: each mapping still goes on its own.
    EXPECT_EQ(api.cuMemUnmap(va, page), CUDA_SUCCESS);
    EXPECT_EQ(api.cuMemUnmap(va + page, page), CUDA_SUCCESS);
  } else {
    EXPECT_NE(api.cuMemUnmap(va, page), CUDA_SUCCESS) << "both mappings went";
  }
  // An unmap that ends inside a mapping is refused either way.
  ASSERT_EQ(api.cuMemMap(va, page, 0, a.get(), 0), CUDA_SUCCESS);
  ASSERT_EQ(api.cuMemMap(va + page, page, 0, b.get(), 0), CUDA_SUCCESS);
  EXPECT_NE(api.cuMemUnmap(va, page + page / 2), CUDA_SUCCESS);
  EXPECT_EQ(api.cuMemUnmap(va, page), CUDA_SUCCESS);
  EXPECT_EQ(api.cuMemUnmap(va + page, page), CUDA_SUCCESS);
  EXPECT_EQ(api.cuMemAddressFree(va, 2 * page), CUDA_SUCCESS);
  EXPECT_EQ(vmm.unmaps_across(a.get(), b.get()), across) << "the probe reads the driver right";
}

// NEUZIP_STAGING_HANDLES=pages on a driver that maps whole handles only but
// unmaps a run of them in one call: the granular arena (staging_pool.h). The
// budget's pages are made at the first staging; runs of any size are mapped
// from them, one piece per page, end to end; no later run creates, whatever
// its size; a run's pages come back to serve a run of another size (what
// exact handles could not). On a driver that unmaps one mapping per call
// (NZSIM_UNMAP_ACROSS=0), exact handles as without the setting.
TEST_F(RuntimeE2E, StagingOnWholeHandleDriverMapsRunsFromPages) {
  using nz::rt::StagingPieces;
  const auto& api = d->real().base;
  nz::rt::VmmAllocator vmm;
  ASSERT_TRUE(vmm.init(0));
  const size_t page = vmm.page_size();
  if (driver_maps_slices(vmm)) GTEST_SKIP() << "this driver maps slices of a handle";
  const bool across = driver_unmaps_across(vmm);
  ASSERT_FALSE(HasFailure());
  nz::rt::StagingPool pool(vmm);
  pool.set_arena_bytes(8 * page, /*pages=*/true);
  const uint64_t creates0 = vmm.create_calls();
  StagingPieces a, b, c;
  ASSERT_EQ(pool.acquire(3 * page, a), CUDA_SUCCESS);
  if (!across) {
    EXPECT_FALSE(pool.granular());
    EXPECT_FALSE(pool.arena()) << "exact handles: one unmap per page would cost more than creates";
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].bytes(), 3 * page);
    EXPECT_EQ(pool.physical_bytes(), 3 * page) << "the probe's pages went back";
    pool.give_back(a);
    pool.trim(0);
    return;
  }
  EXPECT_TRUE(pool.granular());
  EXPECT_TRUE(pool.arena());
  EXPECT_TRUE(pool.unmaps_runs_whole());
  // The probe's slab of the budget's size went back; the budget's pages stay.
  EXPECT_EQ(pool.physical_bytes(), 8 * page);
  EXPECT_EQ(vmm.create_calls() - creates0, 1u + 8u) << "the refused arena handle, then one per page";
  ASSERT_EQ(a.size(), 3u);
  for (const auto& m : a) {
    EXPECT_TRUE(m.whole());
    EXPECT_EQ(m.bytes(), page);
  }
  EXPECT_EQ(pool.in_use_bytes(), 3 * page);
  // Mapped end to end: one map per page, one set-access, data round trip.
  CUdeviceptr va = 0;
  ASSERT_EQ(api.cuMemAddressReserve(&va, 5 * page, page, 0, 0), CUDA_SUCCESS);
  const uint64_t maps0 = vmm.map_calls(), calls0 = vmm.vmm_calls();
  ASSERT_EQ(pool.map(va, a), CUDA_SUCCESS);
  EXPECT_EQ(vmm.map_calls() - maps0, 3u);
  EXPECT_EQ(vmm.vmm_calls() - calls0, 4u) << "three maps and one cuMemSetAccess";
  std::vector<unsigned char> fill(3 * page), back(3 * page, 0);
  for (size_t i = 0; i < fill.size(); ++i) fill[i] = static_cast<unsigned char>(i * 131 + (i >> 21));
  ASSERT_EQ(api.cuMemcpyHtoD(va, fill.data(), fill.size()), CUDA_SUCCESS);
  ASSERT_EQ(api.cuMemcpyDtoH(back.data(), va, back.size()), CUDA_SUCCESS);
  EXPECT_EQ(back, fill);
  const uint64_t calls1 = vmm.vmm_calls();
  pool.unmap(va, a);
  EXPECT_EQ(vmm.vmm_calls() - calls1, 1u) << "one cuMemUnmap for the run";
  pool.give_back(a);
  EXPECT_EQ(pool.in_use_bytes(), 0u);
  // Runs of other sizes from the same pages: no create.
  const uint64_t creates1 = vmm.create_calls();
  ASSERT_EQ(pool.acquire(5 * page, b), CUDA_SUCCESS);
  ASSERT_EQ(pool.acquire(page, c), CUDA_SUCCESS);
  EXPECT_EQ(vmm.create_calls(), creates1);
  EXPECT_EQ(b.size(), 5u);
  EXPECT_TRUE(pool.has_cached(2 * page));
  EXPECT_FALSE(pool.has_cached(3 * page)) << "two pages left of eight";
  // The same VA maps again: the run's one unmap took down all three pages.
  ASSERT_EQ(pool.map(va, b), CUDA_SUCCESS);
  ASSERT_EQ(api.cuMemcpyHtoD(va + 4 * page, fill.data(), page), CUDA_SUCCESS);
  pool.unmap(va, b);
  pool.give_back(b);
  pool.give_back(c);
  // Past the budget, the rest comes from new pages (released once idle).
  StagingPieces big;
  ASSERT_EQ(pool.acquire(10 * page, big), CUDA_SUCCESS);
  EXPECT_EQ(vmm.create_calls() - creates1, 2u);
  EXPECT_EQ(pool.physical_bytes(), 10 * page);
  pool.release(big);
  EXPECT_EQ(pool.physical_bytes(), 8 * page) << "the pages beyond the budget went back";
  // A run's pages given back still mapped (a handover) serve the next run;
  // the old mapping goes in one call when the handover settles.
  ASSERT_EQ(pool.acquire(3 * page, a), CUDA_SUCCESS);
  ASSERT_EQ(pool.map(va, a), CUDA_SUCCESS);
  nz::rt::GivenMapping given;
  pool.give_back_mapped(a, given);
  EXPECT_EQ(pool.in_use_bytes(), 0u);
  ASSERT_EQ(pool.acquire(8 * page, b), CUDA_SUCCESS) << "the handed-over pages count as free";
  EXPECT_EQ(vmm.create_calls(), creates1 + 2);
  const uint64_t calls2 = vmm.vmm_calls();
  pool.unmap_given(va, given);
  EXPECT_EQ(vmm.vmm_calls() - calls2, 1u);
  pool.give_back(b);
  // The arena's pages go back all together or not at all: a part would
  // leave an arena too small for its runs (and every later run creating).
  ASSERT_EQ(pool.acquire(8 * page, a), CUDA_SUCCESS);
  ASSERT_EQ(pool.acquire(2 * page, c), CUDA_SUCCESS);  // beyond the arena: two new pages
  pool.give_back(a);
  EXPECT_EQ(pool.physical_bytes(), 10 * page);
  pool.trim(7 * page);
  EXPECT_EQ(pool.physical_bytes(), 2 * page) << "all eight idle arena pages went, not one";
  const uint64_t creates2 = vmm.create_calls();
  ASSERT_EQ(pool.acquire(8 * page, a), CUDA_SUCCESS);
  EXPECT_EQ(vmm.create_calls() - creates2, 8u) << "the arena made again, whole";
  EXPECT_EQ(a.size(), 8u);
  pool.give_back(a);
  pool.give_back(c);
  pool.trim(0);
  EXPECT_EQ(pool.physical_bytes(), 0u) << "every page idle: the arena goes as one";
  EXPECT_EQ(api.cuMemAddressFree(va, 5 * page), CUDA_SUCCESS);
}

// On a driver that maps whole handles only (the H200's driver 580 answers
// CUDA_ERROR_NOT_SUPPORTED to a slice, even at offset 0), the arena's probe
// at its first use turns it off: every run gets a handle of exactly its size,
// which maps, and an idle one is reused by the next run of that size (unless
// NEUZIP_STAGING_HANDLES=pages asks for the granular arena, test above).
TEST_F(RuntimeE2E, StagingOnWholeHandleDriverUsesExactHandles) {
  using nz::rt::StagingPieces;
  const auto& api = d->real().base;
  nz::rt::VmmAllocator vmm;
  ASSERT_TRUE(vmm.init(0));
  const size_t page = vmm.page_size();
  if (driver_maps_slices(vmm)) GTEST_SKIP() << "this driver maps slices of a handle";
  ASSERT_FALSE(HasFailure());
  nz::rt::StagingPool pool(vmm);
  pool.set_arena_bytes(8 * page);
  ASSERT_TRUE(pool.arena());
  StagingPieces a, b;
  ASSERT_EQ(pool.acquire(3 * page, a), CUDA_SUCCESS);
  EXPECT_FALSE(pool.arena()) << "the probe turned the arena off";
  ASSERT_EQ(a.size(), 1u);
  EXPECT_TRUE(a[0].whole());
  EXPECT_EQ(a[0].bytes(), 3 * page);
  EXPECT_EQ(pool.physical_bytes(), 3 * page) << "the arena's handle went back";
  CUdeviceptr va = 0;
  ASSERT_EQ(api.cuMemAddressReserve(&va, 3 * page, page, 0, 0), CUDA_SUCCESS);
  ASSERT_EQ(pool.map(va, a), CUDA_SUCCESS);
  std::vector<unsigned char> fill(3 * page, 0x5A), back(3 * page, 0);
  ASSERT_EQ(api.cuMemcpyHtoD(va, fill.data(), fill.size()), CUDA_SUCCESS);
  ASSERT_EQ(api.cuMemcpyDtoH(back.data(), va, back.size()), CUDA_SUCCESS);
  EXPECT_EQ(back, fill);
  pool.unmap(va, a);
  const CUmemGenericAllocationHandle first = a[0].get();
  pool.give_back(a);
  const uint64_t creates = vmm.create_calls();
  ASSERT_EQ(pool.acquire(3 * page, b), CUDA_SUCCESS);
  EXPECT_EQ(vmm.create_calls(), creates) << "an idle handle of the size is reused";
  EXPECT_EQ(b[0].get(), first);
  ASSERT_EQ(pool.map(va, b), CUDA_SUCCESS);
  pool.unmap(va, b);
  pool.give_back(b);
  EXPECT_EQ(api.cuMemAddressFree(va, 3 * page), CUDA_SUCCESS);
  pool.trim(0);
  EXPECT_EQ(pool.physical_bytes(), 0u);
}

// The fixed budget's arena (staging_pool.h): runs carved from one handle at
// offsets, next fit, pieces when fragmented, a slab of its own only for
// what no hole holds, and the accounting the budget relies on.
TEST_F(RuntimeE2E, StagingArenaPlacesRunsWithoutCreating) {
  using nz::rt::StagingPieces;
  const auto& api = d->real().base;
  nz::rt::VmmAllocator vmm;
  ASSERT_TRUE(vmm.init(0));
  const size_t page = vmm.page_size();
  ASSERT_EQ(page, 2 * kMiB);
  // A driver that maps whole handles only (the simulator's default, as the
  // H200's): the pool's probe turns the arena off (previous test).
  if (!driver_maps_slices(vmm)) GTEST_SKIP() << "the driver maps whole handles only (NZSIM_MAP_OFFSETS=1 runs this)";
  nz::rt::StagingPool pool(vmm);
  pool.set_arena_bytes(4 * page);
  ASSERT_TRUE(pool.arena());
  EXPECT_TRUE(pool.has_cached(4 * page)) << "the arena is made at its first use";
  const uint64_t creates0 = vmm.create_calls();
  StagingPieces a, b, c, e;
  ASSERT_EQ(pool.acquire(page, a), CUDA_SUCCESS);
  ASSERT_EQ(pool.acquire(page, b), CUDA_SUCCESS);
  ASSERT_EQ(pool.acquire(page, c), CUDA_SUCCESS);
  ASSERT_EQ(pool.acquire(page, e), CUDA_SUCCESS);
  EXPECT_EQ(vmm.create_calls() - creates0, 1u) << "one handle for the whole budget";
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].offset(), 0u);
  EXPECT_EQ(b[0].offset(), page);
  EXPECT_EQ(c[0].offset(), 2 * page);
  EXPECT_EQ(e[0].get(), a[0].get());
  EXPECT_EQ(pool.in_use_bytes(), 4 * page);
  EXPECT_FALSE(pool.has_cached(page));
  // Holes at pages 0 and 2: a two-page run gets them as two pieces.
  pool.give_back(a);
  pool.give_back(c);
  EXPECT_EQ(pool.in_use_bytes(), 2 * page);
  EXPECT_TRUE(pool.has_cached(page));
  EXPECT_FALSE(pool.has_cached(2 * page));
  StagingPieces two;
  ASSERT_EQ(pool.acquire(2 * page, two), CUDA_SUCCESS);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(vmm.create_calls() - creates0, 1u);
  EXPECT_EQ(two[0].offset() + two[1].offset(), 2 * page) << "pages 0 and 2, in some order";
  // Mapped end to end, the pieces really are those pages of the handle:
  // write through the run's VA, read through a mapping of the whole handle.
  CUdeviceptr run = 0, whole = 0;
  ASSERT_EQ(api.cuMemAddressReserve(&run, 2 * page, page, 0, 0), CUDA_SUCCESS);
  ASSERT_EQ(api.cuMemAddressReserve(&whole, 4 * page, page, 0, 0), CUDA_SUCCESS);
  ASSERT_EQ(pool.map(run, two), CUDA_SUCCESS);
  std::vector<unsigned char> fill(page, 0x11);
  ASSERT_EQ(api.cuMemcpyHtoD(run, fill.data(), page), CUDA_SUCCESS);
  std::fill(fill.begin(), fill.end(), 0x22);
  ASSERT_EQ(api.cuMemcpyHtoD(run + page, fill.data(), page), CUDA_SUCCESS);
  ASSERT_EQ(vmm.map(whole, 4 * page, two[0].get(), 0), CUDA_SUCCESS);
  unsigned char first = 0, second = 0;
  ASSERT_EQ(api.cuMemcpyDtoH(&first, whole + two[0].offset() + page - 1, 1), CUDA_SUCCESS);
  ASSERT_EQ(api.cuMemcpyDtoH(&second, whole + two[1].offset(), 1), CUDA_SUCCESS);
  EXPECT_EQ(first, 0x11);
  EXPECT_EQ(second, 0x22);
  EXPECT_EQ(vmm.unmap(whole, 4 * page), CUDA_SUCCESS);
  pool.unmap(run, two);
  // Full: what no hole holds comes from a slab of its own, released once idle.
  StagingPieces extra;
  ASSERT_EQ(pool.acquire(page, extra), CUDA_SUCCESS);
  EXPECT_EQ(vmm.create_calls() - creates0, 2u);
  EXPECT_NE(extra[0].get(), b[0].get());
  EXPECT_EQ(pool.physical_bytes(), 5 * page);
  pool.give_back(extra);
  EXPECT_EQ(pool.trim(0, page), page) << "the overflow slab goes, the arena stays while a run is coming";
  EXPECT_EQ(pool.physical_bytes(), 4 * page);
  // A range made resident keeps its slice: no longer staging, not in the budget.
  pool.detach(two);
  EXPECT_EQ(pool.in_use_bytes(), 2 * page);
  EXPECT_EQ(pool.physical_bytes(), 2 * page);
  pool.release(two);  // its range was freed: back to the arena (the primary stays)
  EXPECT_EQ(pool.physical_bytes(), 4 * page);
  EXPECT_EQ(pool.cached_bytes(), 2 * page);
  pool.give_back(b);
  pool.give_back(e);
  EXPECT_EQ(pool.in_use_bytes(), 0u);
  EXPECT_EQ(pool.trim(0), 4 * page) << "trim(0): memory is short, the idle arena goes too";
  EXPECT_EQ(pool.physical_bytes(), 0u);
  EXPECT_EQ(api.cuMemAddressFree(run, 2 * page), CUDA_SUCCESS);
  EXPECT_EQ(api.cuMemAddressFree(whole, 4 * page), CUDA_SUCCESS);
}

// Without the arena (adaptive budget, or a driver that maps from offset 0
// only): a slab of exactly each run's size, reused by the next run of it.
TEST_F(RuntimeE2E, StagingPoolWithoutArenaReusesExactSizes) {
  nz::rt::VmmAllocator vmm;
  ASSERT_TRUE(vmm.init(0));
  const size_t page = vmm.page_size();
  nz::rt::StagingPool pool(vmm);
  pool.set_arena_bytes(4 * page);
  pool.refuse_offsets();
  EXPECT_FALSE(pool.arena());
  const uint64_t creates0 = vmm.create_calls();
  nz::rt::StagingPieces a, b;
  ASSERT_EQ(pool.acquire(2 * page, a), CUDA_SUCCESS);
  pool.give_back(a);
  EXPECT_TRUE(pool.has_cached(2 * page));
  EXPECT_FALSE(pool.has_cached(page));
  ASSERT_EQ(pool.acquire(2 * page, b), CUDA_SUCCESS);
  EXPECT_EQ(vmm.create_calls() - creates0, 1u);
  EXPECT_EQ(b[0].offset(), 0u);
  ASSERT_EQ(pool.acquire(page, a), CUDA_SUCCESS);
  EXPECT_EQ(vmm.create_calls() - creates0, 2u) << "another size: another handle";
  pool.give_back(a);
  pool.give_back(b);
  EXPECT_EQ(pool.trim(0), 3 * page);
}

TEST_F(RuntimeE2E, ExplicitTagAndUntag) {
  auto w = bf16_weights(2 * kMiB, 6);
  CUdeviceptr p = d->alloc(w.size() * 2);
  // Filled by a plain copy the runtime is not told about: no automatic tag.
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(p, w.data(), w.size() * 2), CUDA_SUCCESS);
  const auto s0 = stats();
  EXPECT_EQ(nz_tag(p, w.size() * 2, NZ_TAG_BF16), NZ_RT_OK);
  Runtime::get().compress_pending(true);
  EXPECT_EQ(stats().bytes_original_compressed, s0.bytes_original_compressed + w.size() * 2);
  EXPECT_EQ(nz_untag(p, w.size() * 2), NZ_RT_OK);
  EXPECT_EQ(stats().bytes_original_compressed, s0.bytes_original_compressed);
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  EXPECT_EQ(nz_tag(result + (1ull << 40), 16, 0), NZ_RT_NOT_MANAGED);
  EXPECT_EQ(nz_tag(p, 0, 0), NZ_RT_INVALID);
  EXPECT_EQ(nz_tag(p, 16, 9), NZ_RT_INVALID);
  d->free(p);
}

// A weight untagged in its middle is still one tensor to the kernels that
// read it whole from its base: the compressed part after the hole must be
// staged for them. (The random programs with untag found it: the remaining
// pieces, more than a cluster gap apart, each reached only their own units,
// and a read from the base met the unmapped pages after the hole.)
TEST_F(RuntimeE2E, ReadAcrossAnUntaggedMiddleStagesWhatFollows) {
  auto w = bf16_weights(4 * kMiB, 61);  // 8 MiB: four units
  // Out of the middle: unaligned, covering units 1 and 2 (made resident).
  const size_t hole_begin = 2 * kMiB + 0x77f28, hole_end = 4 * kMiB + 0x95f20;
  // From the base (the first piece), from inside the hole, from the hole's
  // first byte and from the last piece: each read runs to the weight's end,
  // on a weight of its own whose units 0 and 3 are compressed.
  for (size_t from : {size_t{0}, size_t{0x1000}, size_t{3 * kMiB}, hole_begin, hole_end}) {
    CUdeviceptr p = load_weights(w);
    ASSERT_EQ(nz_untag(p + hole_begin, hole_end - hole_begin), NZ_RT_OK);
    const size_t n = w.size() - from / 2;
    EXPECT_EQ(device_sum(p + from, n), host_sum(w.data() + from / 2, n)) << "from byte " << from;
    ASSERT_EQ(d->real().base.cuCtxSynchronize(), CUDA_SUCCESS) << "from byte " << from;
    d->free(p);
  }
}

TEST_F(RuntimeE2E, PartlyTaggedPagesStayResident) {
  std::vector<uint16_t> w = bf16_weights(2 * kMiB - 256, 7);  // [512, 4 MiB) of a 4 MiB allocation
  CUdeviceptr p = d->alloc(4 * kMiB);
  const auto s0 = stats();
  ASSERT_EQ(d->htod(p + 512, w.data(), w.size() * 2), CUDA_SUCCESS);
  Runtime::get().compress_pending(true);
  const auto s1 = stats();
  EXPECT_EQ(s1.bytes_tagged - s0.bytes_tagged, w.size() * 2);
  EXPECT_EQ(s1.bytes_compressible - s0.bytes_compressible, 2 * kMiB);  // page 0 starts untagged, page 1 is whole
  EXPECT_EQ(s1.bytes_original_compressed - s0.bytes_original_compressed, 2 * kMiB);
  std::vector<uint16_t> back(w.size());
  ASSERT_EQ(d->dtoh(back.data(), p + 512, back.size() * 2), CUDA_SUCCESS);
  EXPECT_EQ(back, w);
  d->free(p);
}

// Several threads, each with its own stream and weights, plus weights shared by
// all (read-only): random reads, writes, copies and evictions, checked against
// a host model of every buffer.
TEST_F(RuntimeE2E, RandomisedMultiThreadedAgainstHostModel) {
  constexpr int kThreads = 3, kOps = 40;
  auto shared = bf16_weights(kMiB, 100);
  CUdeviceptr shared_p = load_weights(shared);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      d->real().base.cuCtxSetCurrent(d->context());
      CUstream s = nullptr;
      d->real().base.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
      std::mt19937 rng(1234 + t);
      auto w = bf16_weights(kMiB + 4096 * t, 200 + t);  // ends inside a page: its last page stays resident
      CUdeviceptr p = d->alloc(w.size() * 2);
      CUdeviceptr out = d->alloc(64);
      d->htod(p, w.data(), w.size() * 2, s, true);
      auto delta = bf16_weights(w.size(), 300 + t, 0.001f);
      CUdeviceptr dp = d->alloc(delta.size() * 2);
      d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2);
      for (int op = 0; op < kOps; ++op) {
        uint64_t n = w.size();
        switch (rng() % 5) {
          case 0: {  // read own weights
            uint64_t got = 0;
            d->launch(f_sum, {&p, &n, &out}, s);
            d->dtoh(&got, out, 8, s, true);
            d->real().base.cuStreamSynchronize(s);
            if (got != host_sum(w.data(), w.size())) ++failures;
            break;
          }
          case 1: {  // write own weights
            d->launch(f_add, {&p, &dp, &n}, s);
            for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(w[i] + delta[i]);
            break;
          }
          case 2: {  // read the shared weights
            uint64_t got = 0, sn = shared.size();
            d->launch(f_sum, {&shared_p, &sn, &out}, s);
            d->dtoh(&got, out, 8, s, true);
            d->real().base.cuStreamSynchronize(s);
            if (got != host_sum(shared.data(), shared.size())) ++failures;
            break;
          }
          case 3:
            Runtime::get().evict_idle();
            break;
          default:
            Runtime::get().compress_pending(false);
            break;
        }
      }
      std::vector<uint16_t> back(w.size());
      d->dtoh(back.data(), p, back.size() * 2, s, true);
      d->real().base.cuStreamSynchronize(s);
      if (back != w) ++failures;
      d->free(p);
      d->free(dp);
      d->free(out);
      d->real().base.cuStreamDestroy(s);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  d->free(shared_p);
}

// Where the unit holding `p` stands (state and pin count).
struct UnitView {
  UnitState state = UnitState::kResident;
  int pins = -1;
};
UnitView unit_at(CUdeviceptr p) {
  UnitView v;
  EXPECT_TRUE(Runtime::get().debug_unit_of(p, v.state, v.pins)) << "no unit at " << p;
  return v;
}

// A range written at every step (LOMO's weights) keeps being recompressed
// under a fixed staging budget: the "changed 3x in a row → resident for
// good" rule applies only to the adaptive budget with memory to spare
// (rewrite_policy.cpp). Without a budget (runtime-e2e) it still retires.
TEST_F(RuntimeE2E, RewrittenRangesStayCompressedUnderABudget) {
  const bool budget = std::getenv("NEUZIP_STAGING_MB") != nullptr;
  auto w = bf16_weights(2 * kMiB, 31), delta = bf16_weights(2 * kMiB, 32, 0.001f);
  CUdeviceptr p = load_weights(w);
  CUdeviceptr dp = d->alloc(delta.size() * 2);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2), CUDA_SUCCESS);  // untagged
  const uint64_t units = (w.size() * 2 + nz::rt::detail::kMaxUnitBytes - 1) / nz::rt::detail::kMaxUnitBytes;
  uint64_t n = w.size();
  for (int step = 0; step < 5; ++step) {
    const auto before = stats();
    ASSERT_EQ(d->launch(f_add, {&p, &dp, &n}), CUDA_SUCCESS);  // an optimizer step
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(w[i] + delta[i]);
    Runtime::get().evict_idle();
    const auto after = stats();
    if (budget || step < 2) {
      EXPECT_EQ(after.recompressions, before.recompressions + units) << "step " << step;
      EXPECT_EQ(unit_at(p).state, UnitState::kCompressed) << "step " << step;
    } else {
      EXPECT_EQ(after.recompressions, before.recompressions) << "adaptive, memory plentiful: resident";
    }
  }
  std::vector<uint16_t> back(w.size());
  ASSERT_EQ(d->dtoh(back.data(), p, back.size() * 2), CUDA_SUCCESS);
  EXPECT_EQ(back, w);
  d->free(p);
  d->free(dp);
}

// A weight read in one phase of every step (the forward pass) and rewritten
// in the next (its update), evicted after each: the read's staging keeps its
// store (dropped at eviction, nothing encoded), the update's eviction
// encodes. Before the expectation looked one iteration back
// (rewrite_policy.h ChangeHistory), each staging expected what the other had
// just found: the read's staging gave its store up and was encoded again
// unchanged, every step, and the update's kept a store it made stale.
TEST_F(RuntimeE2E, RangeReadThenRewrittenEachStepEncodesOnlyAfterTheWrite) {
  // One unit: it fits runtime-e2e-rewrite-budget's 2 MiB (a call over a
  // fixed budget gives every store up, whatever is expected of it).
  auto w = bf16_weights(kMiB, 33), delta = bf16_weights(kMiB, 34, 0.001f);
  CUdeviceptr p = load_weights(w);
  CUdeviceptr dp = d->alloc(delta.size() * 2);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2), CUDA_SUCCESS);  // untagged
  std::vector<uint8_t> batch(4096, 1);
  CUdeviceptr bp = d->alloc(batch.size());
  const uint64_t units = (w.size() * 2 + nz::rt::detail::kMaxUnitBytes - 1) / nz::rt::detail::kMaxUnitBytes;
  uint64_t n = w.size();
  for (int step = 0; step < 6; ++step) {
    // Host data after launches: the program's next iteration.
    ASSERT_EQ(d->htod(bp, batch.data(), batch.size()), CUDA_SUCCESS);
    const auto before = stats();
    const uint64_t reencodes_before = Runtime::get().debug_reencodes();
    EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size())) << "step " << step;
    Runtime::get().evict_idle();
    const auto read = stats();
    ASSERT_EQ(d->launch(f_add, {&p, &dp, &n}), CUDA_SUCCESS);
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(w[i] + delta[i]);
    Runtime::get().evict_idle();
    const auto written = stats();
    if (step >= 2) {
      EXPECT_EQ(Runtime::get().debug_reencodes(), reencodes_before) << "step " << step;
      EXPECT_EQ(read.drops, before.drops + units) << "step " << step;
      EXPECT_EQ(written.recompressions, read.recompressions + units) << "step " << step;
    }
  }
  std::vector<uint16_t> back(w.size());
  ASSERT_EQ(d->dtoh(back.data(), p, back.size() * 2), CUDA_SUCCESS);
  EXPECT_EQ(back, w);
  d->free(p);
  d->free(dp);
  d->free(bp);
}

// A read-only weight of two units read under a fixed budget of one
// (runtime-e2e-store-copies: 2 MiB): every read stages it past the budget,
// which gives its stores up, and every eviction finds it unchanged. Its
// stores come back from their host copies (store_copies.cpp) instead of
// being encoded again; with NEUZIP_KEEP_STORES_MB=0
// (runtime-e2e-store-copies-off) they are encoded again, as before. The
// content read back through either path must be the weight's.
TEST_F(RuntimeE2E, StoresGivenUpOverABudgetComeBackFromHostCopies) {
  if (std::getenv("NEUZIP_STAGING_MB") == nullptr) GTEST_SKIP() << "needs a fixed budget (runtime-e2e-store-copies)";
  const char* keep = std::getenv("NEUZIP_KEEP_STORES_MB");
  const bool copies = keep == nullptr || std::string(keep) != "0";
  auto w = bf16_weights(2 * kMiB, 35);  // 4 MiB: two units
  CUdeviceptr p = load_weights(w);
  const uint64_t units = 2;
  for (int step = 0; step < 4; ++step) {
    const uint64_t restored = Runtime::get().debug_stores_restored(), reencoded = Runtime::get().debug_reencodes();
    const auto before = stats();
    EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size())) << "step " << step;
    Runtime::get().evict_idle();
    const auto after = stats();
    EXPECT_EQ(after.decompressions, before.decompressions + units) << "step " << step;
    EXPECT_EQ(after.recompressions, before.recompressions) << "step " << step;
    EXPECT_EQ(Runtime::get().debug_stores_restored(), restored + (copies ? units : 0)) << "step " << step;
    EXPECT_EQ(Runtime::get().debug_reencodes(), reencoded + (copies ? 0 : units)) << "step " << step;
    EXPECT_EQ(unit_at(p).state, UnitState::kCompressed) << "step " << step;
  }
  // Rewritten while staged (a read, then an update, then the eviction): the
  // copies describe old content and go; the new content is encoded.
  auto delta = bf16_weights(2 * kMiB, 36, 0.001f);
  CUdeviceptr dp = d->alloc(delta.size() * 2);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2), CUDA_SUCCESS);  // untagged
  uint64_t n = w.size();
  const uint64_t restored = Runtime::get().debug_stores_restored();
  const auto before = stats();
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  ASSERT_EQ(d->launch(f_add, {&p, &dp, &n}), CUDA_SUCCESS);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(w[i] + delta[i]);
  Runtime::get().evict_idle();
  EXPECT_EQ(stats().recompressions, before.recompressions + units);
  EXPECT_EQ(Runtime::get().debug_stores_restored(), restored);
  EXPECT_EQ(device_sum(p, w.size()), host_sum(w.data(), w.size()));
  Runtime::get().evict_idle();
  std::vector<uint16_t> back(w.size());
  ASSERT_EQ(d->dtoh(back.data(), p, back.size() * 2), CUDA_SUCCESS);
  EXPECT_EQ(back, w);
  d->free(p);
  d->free(dp);
}

// Two weights of two units each read in turn over a one-unit budget. Each
// read evicts the other weight, found unchanged with its stores given up,
// and its stores come back from their host copies only once that weight's
// pages went (restore_due_stores); restored first, each 1.4 MB store met its
// still-mapped pages (issue 13's peaks). A restore keeps the copy, and from
// the third read on each read's own stores go before its staging and its
// two units are decoded from those copies (decode_from_host_copies): the
// store never meets its pages either. So a read costs no device memory
// beyond what was in use before it; every byte stays as loaded. With
// NEUZIP_KEEP_STORES_MB=0 (runtime-e2e-store-copies-off): none of it.
TEST_F(RuntimeE2E, HostCopiesRestoredAfterThePagesAndDecodedFrom) {
  if (std::getenv("NEUZIP_STAGING_MB") == nullptr) GTEST_SKIP() << "needs a fixed budget (runtime-e2e-store-copies)";
  const char* keep = std::getenv("NEUZIP_KEEP_STORES_MB");
  const bool copies = keep == nullptr || std::string(keep) != "0";
  auto reset_peak = reinterpret_cast<nzsim_reset_peak_fn>(d->symbol("nzsim_reset_peak"));
  nzsim_stats probe{};
  if (reset_peak == nullptr || !d->sim_stats(probe)) GTEST_SKIP() << "needs the simulator's peak";
  auto wa = bf16_weights(2 * kMiB, 41), wb = bf16_weights(2 * kMiB, 42);
  CUdeviceptr a = load_weights(wa), b = load_weights(wb);
  const std::vector<uint16_t>* w[2] = {&wa, &wb};
  const CUdeviceptr p[2] = {a, b};
  // Slack for the runtime's small allocations (events, status words).
  constexpr uint64_t kSlack = 256 * 1024;
  for (int step = 0; step < 8; ++step) {
    const int i = step % 2;
    nzsim_stats before{}, after{};
    ASSERT_TRUE(d->sim_stats(before));
    reset_peak();
    const uint64_t restored = Runtime::get().debug_stores_restored();
    const uint64_t from_copies = Runtime::get().debug_decodes_from_host_copies();
    EXPECT_EQ(device_sum(p[i], w[i]->size()), host_sum(w[i]->data(), w[i]->size())) << "step " << step;
    ASSERT_TRUE(d->sim_stats(after));
    EXPECT_EQ(Runtime::get().debug_decodes_from_host_copies() - from_copies, copies && step >= 2 ? 2u : 0u)
        << "step " << step;
    if (!copies || step == 0) continue;  // nothing was staged before the first read
    EXPECT_EQ(Runtime::get().debug_stores_restored(), restored + 2) << "step " << step;
    EXPECT_LE(after.peak_physical_bytes, before.physical_bytes + kSlack)
        << "step " << step << ": a store was held beside its pages";
  }
  Runtime::get().evict_idle();
  for (int i = 0; i < 2; ++i) {
    std::vector<uint16_t> back(w[i]->size());
    ASSERT_EQ(d->dtoh(back.data(), p[i], back.size() * 2), CUDA_SUCCESS);
    EXPECT_EQ(back, *w[i]);
  }
  d->free(a);
  d->free(b);
}

// A stream held by a host function until release() (or 10 s, so that a
// wait on it in the runtime shows as a failure, not as a hung test): work
// queued on it stays queued meanwhile, as behind a busy GPU.
class HeldStream {
 public:
  explicit HeldStream(HookedDriver& d) : d_(d) {
    using HostFn = CUresult (*)(CUstream, CUhostFn, void*);
    auto launch_host_func = reinterpret_cast<HostFn>(d.symbol("cuLaunchHostFunc"));
    if (launch_host_func == nullptr || d.real().base.cuStreamCreate(&s_, CU_STREAM_NON_BLOCKING) != CUDA_SUCCESS)
      return;
    watchdog_ = std::thread([this] {
      for (int i = 0; i < 1000 && !go_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      go_.store(true);
    });
    held_ = launch_host_func(s_, [](void* flag) {
      while (!static_cast<std::atomic<bool>*>(flag)->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }, &go_) == CUDA_SUCCESS;
  }
  ~HeldStream() {
    release();
    if (s_ != nullptr) {
      d_.real().base.cuStreamSynchronize(s_);
      d_.real().base.cuStreamDestroy(s_);
    }
  }
  bool held() const { return held_; }
  // Still held (not let go by the watchdog).
  bool holding() const { return !go_.load(); }
  CUstream get() const { return s_; }
  void release() {
    go_.store(true);
    if (watchdog_.joinable()) watchdog_.join();
    if (timer_.joinable()) timer_.join();
  }
  // Lets go from another thread after `ms` (while this one may wait on it).
  void release_after(int ms) {
    timer_ = std::thread([this, ms] {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      go_.store(true);
    });
  }

 private:
  HookedDriver& d_;
  CUstream s_ = nullptr;
  std::atomic<bool> go_{false};
  std::thread watchdog_, timer_;
  bool held_ = false;
};

// A weight decoded from its stores' host copies, its decode still queued
// (its stream held by a host function), is untagged: its stores and their
// copies go, but only after the decode read them. Given back at once, the
// next copy of another store could be written there first, and the decode
// read those bytes (a checksum trap: a sticky error in the program's
// context). The untag waits for the decode (the unit is untracked after
// it: no launch would), and only then do the copies' room come back.
TEST_F(RuntimeE2E, HostCopiesOutliveTheDecodesThatReadThem) {
  if (std::getenv("NEUZIP_STAGING_MB") == nullptr) GTEST_SKIP() << "needs a fixed budget (runtime-e2e-store-copies)";
  const char* keep = std::getenv("NEUZIP_KEEP_STORES_MB");
  if (keep != nullptr && std::string(keep) == "0") GTEST_SKIP() << "no host copies";
  auto wa = bf16_weights(2 * kMiB, 45), wb = bf16_weights(2 * kMiB, 46);
  CUdeviceptr a = load_weights(wa), b = load_weights(wb);
  // Read in turn: from the third read on, each read decodes from host copies.
  for (int step = 0; step < 4; ++step) {
    const bool is_a = step % 2 == 0;
    EXPECT_EQ(device_sum(is_a ? a : b, wa.size()), host_sum(is_a ? wa.data() : wb.data(), wa.size()));
  }
  ASSERT_EQ(unit_at(a).state, UnitState::kCompressed);
  HeldStream s(*d);
  if (!s.held()) GTEST_SKIP() << "no cuLaunchHostFunc in this driver";
  const uint64_t from_copies = Runtime::get().debug_decodes_from_host_copies();
  uint64_t n = wa.size();
  ASSERT_EQ(d->launch(f_sum, {&a, &n, &result}, s.get()), CUDA_SUCCESS);
  EXPECT_EQ(Runtime::get().debug_decodes_from_host_copies(), from_copies + 2) << "not decoded from the host copies";
  const size_t kept = Runtime::get().debug_kept_store_bytes();
  EXPECT_GE(kept, 2 * kMiB) << "a's two copies (~1.4 MB each) and b's";
  // Resident now: its stores and their copies go. Untracked, no launch
  // would wait for its decode any more: the untag waits for it (the
  // stream is let go meanwhile), and the copies' room comes back after it.
  s.release_after(200);
  EXPECT_EQ(nz_untag(a, wa.size() * 2), NZ_RT_OK);
  EXPECT_FALSE(s.holding()) << "untracked before its decode ran";
  s.release();
  ASSERT_EQ(d->real().base.cuStreamSynchronize(s.get()), CUDA_SUCCESS);
  uint64_t sum = 0;
  ASSERT_EQ(d->dtoh(&sum, result, 8), CUDA_SUCCESS);
  EXPECT_EQ(sum, host_sum(wa.data(), wa.size()));
  EXPECT_LT(Runtime::get().debug_kept_store_bytes(), kept) << "the copies' room never came back";
  std::vector<uint16_t> back(wa.size());
  ASSERT_EQ(d->dtoh(back.data(), a, back.size() * 2), CUDA_SUCCESS);
  EXPECT_EQ(back, wa);
  EXPECT_EQ(device_sum(b, wb.size()), host_sum(wb.data(), wb.size()));
  d->free(a);
  d->free(b);
}

// The same for a store in device memory: a weight staged for a launch whose
// stream is held (its decode queued) is untagged; its store must be freed
// only after that decode read it. Freed at once (on the runtime's store
// stream, which waits for nothing), the memory went back to the allocator
// and the queued decode read freed memory (the simulator faults there; on a
// GPU the next store allocated there would make it trap).
TEST_F(RuntimeE2E, StoresOutliveTheDecodesThatReadThemWhenRetired) {
  auto w = bf16_weights(kMiB, 47);  // one unit
  CUdeviceptr a = load_weights(w);
  ASSERT_EQ(unit_at(a).state, UnitState::kCompressed);
  HeldStream s(*d);
  if (!s.held()) GTEST_SKIP() << "no cuLaunchHostFunc in this driver";
  uint64_t n = w.size();
  ASSERT_EQ(d->launch(f_sum, {&a, &n, &result}, s.get()), CUDA_SUCCESS);  // its decode waits behind the host function
  s.release_after(200);
  EXPECT_EQ(nz_untag(a, w.size() * 2), NZ_RT_OK);
  EXPECT_FALSE(s.holding()) << "untracked before its decode ran";
  // Work on the runtime's streams meanwhile (a free there completes at once).
  auto other = bf16_weights(kMiB, 48);
  CUdeviceptr b = load_weights(other);
  s.release();
  ASSERT_EQ(d->real().base.cuStreamSynchronize(s.get()), CUDA_SUCCESS) << "the queued decode failed";
  uint64_t sum = 0;
  ASSERT_EQ(d->dtoh(&sum, result, 8), CUDA_SUCCESS);
  EXPECT_EQ(sum, host_sum(w.data(), w.size()));
  std::vector<uint16_t> back(w.size());
  ASSERT_EQ(d->dtoh(back.data(), a, back.size() * 2), CUDA_SUCCESS);
  EXPECT_EQ(back, w);
  EXPECT_EQ(device_sum(b, other.size()), host_sum(other.data(), other.size()));
  d->free(a);
  d->free(b);
}

// An eviction for a program's allocation (on_out_of_memory) leaves the
// stores it found unchanged due (restore_due_stores); the next launch
// brings them back at its end, whatever it staged itself. Here that launch
// stages nothing (its one weight is staged and decoded: no driver call of
// its own) and runs while another stream captures in global mode: the
// restore's allocation, copy and synchronization must be relaxed like the
// hook's other driver calls, or that capture is invalidated.
TEST_F(RuntimeE2E, DueRestoresFromHostCopiesLeaveAnotherStreamsCaptureIntact) {
  if (std::getenv("NEUZIP_STAGING_MB") == nullptr) GTEST_SKIP() << "needs a fixed budget (runtime-e2e-store-copies)";
  const char* keep = std::getenv("NEUZIP_KEEP_STORES_MB");
  if (keep != nullptr && std::string(keep) == "0") GTEST_SKIP() << "no host copies";
  const GraphApi g = GraphApi::load(*d);
  if (!g.usable()) GTEST_SKIP() << "no graph API in this driver";
  auto wa = bf16_weights(2 * kMiB, 43);  // two units
  auto wb = bf16_weights(kMiB, 44);      // one unit
  CUdeviceptr a = load_weights(wa), b = load_weights(wb);
  // b staged for good: a graph that reads it pins it (no eviction takes it).
  CUstream s0 = nullptr, s2 = nullptr, s3 = nullptr;
  CUgraph graph = nullptr;
  CUgraphExec exec = nullptr;
  capture_sum_on_new_stream(g, s0, b, wb.size(), graph, exec);
  if (HasFatalFailure()) return;
  ASSERT_EQ(d->real().base.cuStreamCreate(&s2, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  ASSERT_EQ(d->real().base.cuStreamCreate(&s3, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  // Its decode seen complete: later launches on it make no driver call.
  EXPECT_EQ(device_sum(b, wb.size(), s2), host_sum(wb.data(), wb.size()));
  // a past the budget gives its stores up (host copies kept)...
  EXPECT_EQ(device_sum(a, wa.size()), host_sum(wa.data(), wa.size()));
  EXPECT_EQ(unit_at(a).state, UnitState::kStaged);
  // ...and an eviction for a program's allocation finds it unchanged.
  const uint64_t restored = Runtime::get().debug_stores_restored();
  ASSERT_TRUE(nz::rt::on_out_of_memory(2 * kMiB));
  EXPECT_EQ(unit_at(a).state, UnitState::kCompressed);
  EXPECT_EQ(Runtime::get().debug_stores_restored(), restored) << "restored by the eviction itself";
  ASSERT_EQ(g.begin(s3, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  nz::rt::on_capture_begin(s3);
  EXPECT_EQ(device_sum(b, wb.size(), s2), host_sum(wb.data(), wb.size()));
  CUgraph empty = nullptr;
  EXPECT_EQ(g.end(s3, &empty), CUDA_SUCCESS) << "the restore invalidated another stream's capture";
  nz::rt::on_capture_end(s3, empty);
  EXPECT_EQ(Runtime::get().debug_stores_restored(), restored + 2);
  if (empty != nullptr) {
    nz::rt::on_graph_destroy(empty);
    g.destroy(empty);
  }
  destroy_graph_and_exec(g, graph, exec);
  EXPECT_EQ(device_sum(a, wa.size()), host_sum(wa.data(), wa.size()));
  for (CUstream s : {s0, s2, s3}) d->real().base.cuStreamDestroy(s);
  d->free(a);
  d->free(b);
}

// The look-ahead stager (runtime-e2e-lookahead: NEUZIP_LOOKAHEAD_MB=auto, a
// fixed budget of two units) follows the order the weights are used in and
// makes room for the next one by evicting the least recently used, settling
// it (hash, encode of a changed range) with the runtime lock dropped
// (eviction_ahead.cpp); the launching thread hands the evictions it needs to
// the stager as well (defer_eviction). Six one-unit weights, each rewritten
// by its launch every step (LOMO's weights): every step's content must come
// back, and evictions must have been settled by the stager, encodes included.
// Under ThreadSanitizer this is the stager's race test.
TEST_F(RuntimeE2E, LookaheadStagerEvictsRewrittenWeightsOffTheLock) {
  if (std::getenv("NEUZIP_LOOKAHEAD_MB") == nullptr || std::getenv("NEUZIP_STAGING_MB") == nullptr)
    GTEST_SKIP() << "needs NEUZIP_LOOKAHEAD_MB and NEUZIP_STAGING_MB (runtime-e2e-lookahead)";
  constexpr int kWeights = 6, kSteps = 8;
  const size_t elements = kMiB;  // 2 MiB of bf16: one unit each
  std::vector<std::vector<uint16_t>> w;
  std::vector<CUdeviceptr> p;
  for (int i = 0; i < kWeights; ++i) {
    w.push_back(bf16_weights(elements, 60 + i));
    p.push_back(load_weights(w.back()));
  }
  auto delta = bf16_weights(elements, 59, 0.001f);
  CUdeviceptr dp = d->alloc(delta.size() * 2);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(dp, delta.data(), delta.size() * 2), CUDA_SUCCESS);  // untagged
  uint64_t n = elements;
  const uint64_t ahead_before = Runtime::get().debug_evicted_ahead();
  const uint64_t encoded_before = Runtime::get().debug_encoded_ahead();
  const uint64_t deferred_before = Runtime::get().debug_evictions_deferred();
  for (int step = 0; step < kSteps; ++step) {
    for (int i = 0; i < kWeights; ++i) {
      ASSERT_EQ(d->launch(f_add, {&p[i], &dp, &n}), CUDA_SUCCESS) << "step " << step << " weight " << i;
      for (size_t k = 0; k < elements; ++k) w[i][k] = static_cast<uint16_t>(w[i][k] + delta[k]);
    }
    // Every weight's content as of this step, read back through the runtime
    // (a copy stages what is compressed).
    if (step % 3 == 2) {
      for (int i = 0; i < kWeights; ++i) {
        std::vector<uint16_t> back(elements);
        ASSERT_EQ(d->dtoh(back.data(), p[i], back.size() * 2), CUDA_SUCCESS);
        ASSERT_EQ(back, w[i]) << "step " << step << " weight " << i;
      }
    }
  }
  for (int i = 0; i < kWeights; ++i) {
    std::vector<uint16_t> back(elements);
    ASSERT_EQ(d->dtoh(back.data(), p[i], back.size() * 2), CUDA_SUCCESS);
    EXPECT_EQ(back, w[i]) << "weight " << i;
  }
  const uint64_t evicted = Runtime::get().debug_evicted_ahead() - ahead_before;
  const uint64_t encoded = Runtime::get().debug_encoded_ahead() - encoded_before;
  EXPECT_GT(evicted, 0u) << "the stager settled no eviction with the lock dropped";
  EXPECT_GT(encoded, 0u) << "no rewritten weight was encoded by the stager";
  // With exact handles (no NZSIM_MAP_OFFSETS) the launching thread hands the
  // runs it has to evict to the stager (defer_eviction) instead of encoding them.
  if (std::getenv("NZSIM_MAP_OFFSETS") == nullptr) {
    EXPECT_GT(Runtime::get().debug_evictions_deferred() - deferred_before, 0u) << "no eviction was handed to the stager";
  }
  for (auto q : p) d->free(q);
  d->free(dp);
}

// Encode handovers (handoff_encode.cpp; runtime-e2e-encode-handoff with
// exact handles, -arena with the arena, -off without; a 16 MiB budget, so a
// quarter of it holds two unsettled one-unit handovers): a weight rewritten
// every step is evicted without the launching thread waiting: the device
// encodes it after its last use into a buffer of its last encoding's size,
// and the guard adopts the encoding or, when it does not fit, copies the
// bytes to host memory. Ten one-unit weights, eight steps; at step 4 every
// weight is rewritten with random bits (the rescue path).
TEST_F(RuntimeE2E, EncodeHandoffsReencodeRewrittenWeightsOnTheDevice) {
  const char* budget = std::getenv("NEUZIP_STAGING_MB");
  if (budget == nullptr) GTEST_SKIP() << "needs a fixed budget (runtime-e2e-encode-handoff*)";
  const uint64_t encoded_before = Runtime::get().debug_encode_handoffs();
  const uint64_t rescued_before = Runtime::get().debug_encode_rescues();
  rewrite_every_step(std::vector<size_t>(10, kMiB), 8, 4);  // 2 MiB of bf16: one unit each
  if (HasFatalFailure()) return;
  if (std::getenv("NEUZIP_ENCODE_HANDOFF") != nullptr) {
    EXPECT_EQ(Runtime::get().debug_encode_handoffs(), encoded_before) << "NEUZIP_ENCODE_HANDOFF=0 is off";
  } else if (std::atoi(budget) >= 16) {
    EXPECT_GT(Runtime::get().debug_encode_handoffs() - encoded_before, 0u) << "no weight was encoded on the device";
    EXPECT_GT(Runtime::get().debug_encode_rescues() - rescued_before, 0u)
        << "no random weight's encoding was caught not fitting the buffer sized by its last encoding";
  }
}

// With exact handles a run's handle serves only a run of its size; a
// rewritten victim of another size is still encoded on the device, its pages
// kept by the handover (mapped: queued work may read them) until it is
// settled, within a quarter of the budget (runtime-e2e-encode-handoff-mixed:
// 32 MiB budget; weights of one and two units alternate, 45 MiB in all).
TEST_F(RuntimeE2E, EncodeHandoffsKeepPagesOfAnotherSize) {
  const char* budget = std::getenv("NEUZIP_STAGING_MB");
  if (budget == nullptr) GTEST_SKIP() << "needs a fixed budget (runtime-e2e-encode-handoff*)";
  const uint64_t held_before = Runtime::get().debug_encode_handoffs_held();
  std::vector<size_t> sizes;
  for (int i = 0; i < 15; ++i) sizes.push_back(i % 2 ? 2 * kMiB : kMiB);
  // Under ThreadSanitizer (tools/test-tsan.sh: a race test, every byte
  // still checked) the simulated device lags so far that the path is taken
  // in about half the runs, with the library of 88cca5b as with the next
  // (docs/RESULTS.md §4.9.21): not asked there.
#if defined(__SANITIZE_THREAD__)
  constexpr bool kDeviceKeepsUp = false;
#else
  constexpr bool kDeviceKeepsUp = true;
#endif
  const bool expect_held = kDeviceKeepsUp && std::getenv("NZSIM_MAP_OFFSETS") == nullptr &&
                           std::getenv("NEUZIP_ENCODE_HANDOFF") == nullptr && std::atoi(budget) >= 32;
  // Whether a victim takes this path depends on how far the simulated
  // device lags (the allowance for unsettled handovers): in 1 of 6 CI runs
  // on a loaded host (77ec352) none did. Up to three runs, each checking
  // every byte; the path must be taken in one of them.
  for (int attempt = 0; attempt < 3; ++attempt) {
    rewrite_every_step(sizes, 6, 3);
    if (HasFatalFailure()) return;
    if (!expect_held || Runtime::get().debug_encode_handoffs_held() > held_before) break;
  }
  if (expect_held) {
    EXPECT_GT(Runtime::get().debug_encode_handoffs_held() - held_before, 0u)
        << "no victim of another size was encoded on the device";
  }
}

// A launch captured into a graph stages its ranges at capture time and pins
// them for as long as the graph or an exec made from it lives: replays (which
// the runtime never sees) find the data mapped, even while other ranges are
// staged under a budget too small for both (runtime-e2e-graph-budget). Once
// both are destroyed the ranges are ordinary staged ranges again: the next
// eviction takes them.
TEST_F(RuntimeE2E, CapturedGraphPinsItsRanges) {
  const GraphApi g = GraphApi::load(*d);
  if (!g.usable()) GTEST_SKIP() << "no graph API in this driver";
  const bool budget = std::getenv("NEUZIP_STAGING_MB") != nullptr;
  auto w = bf16_weights(2 * kMiB, 9);       // 4 MiB: two units
  auto other = bf16_weights(2 * kMiB, 10);  // ranges that compete for staging
  auto third = bf16_weights(2 * kMiB, 11);
  CUdeviceptr p = load_weights(w);
  CUdeviceptr q = load_weights(other);
  CUdeviceptr r = load_weights(third);
  const CUdeviceptr p_units[] = {p, p + 2 * kMiB};
  CUstream s = nullptr;
  ASSERT_EQ(d->real().base.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  CUresult began = g.begin(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
  if (began == CUDA_ERROR_NOT_SUPPORTED) {  // a driver that only exports the unversioned name
    began = reinterpret_cast<decltype(g.begin)>(d->symbol("cuStreamBeginCapture"))(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
  }
  if (began == CUDA_ERROR_NOT_SUPPORTED) {
    d->real().base.cuStreamDestroy(s);
    for (CUdeviceptr x : {p, q, r}) d->free(x);
    GTEST_SKIP() << "this driver does not support stream capture";
  }
  ASSERT_EQ(began, CUDA_SUCCESS);
  CUgraph graph = nullptr;
  CUgraphExec exec = nullptr;
  capture_sum(g, s, p, w.size(), graph, exec);
  if (HasFatalFailure()) return;
  for (CUdeviceptr u : p_units) {
    EXPECT_EQ(unit_at(u).state, UnitState::kStaged);
    EXPECT_EQ(unit_at(u).pins, 2) << "one pin for the graph, one for the exec";
  }
  // As a framework does: the exec is all it keeps.
  nz::rt::on_graph_destroy(graph);
  ASSERT_EQ(g.destroy(graph), CUDA_SUCCESS);
  for (CUdeviceptr u : p_units) EXPECT_EQ(unit_at(u).pins, 1);
  for (int replay = 0; replay < 3; ++replay) {
    Runtime::get().evict_idle();  // must not take the pinned range away
    // Other ranges staged in between (over the budget, when one is set).
    EXPECT_EQ(device_sum(replay % 2 ? r : q, w.size(), s), host_sum((replay % 2 ? third : other).data(), w.size()));
    for (CUdeviceptr u : p_units) EXPECT_EQ(unit_at(u).state, UnitState::kStaged) << "replay " << replay;
    EXPECT_EQ(replay_result(exec, s, g.launch), host_sum(w.data(), w.size())) << "replay " << replay;
  }
  nz::rt::on_graph_exec_destroy(exec);
  ASSERT_EQ(g.destroy_exec(exec), CUDA_SUCCESS);
  for (CUdeviceptr u : p_units) {
    EXPECT_EQ(unit_at(u).pins, 0);
    EXPECT_EQ(unit_at(u).state, UnitState::kStaged) << "unpinning alone evicts nothing";
  }
  // Now evictable: staging another range under the budget takes them (the
  // least recently used); without a budget the explicit eviction does.
  const auto before = stats();
  EXPECT_EQ(device_sum(q, w.size(), s), host_sum(other.data(), w.size()));
  EXPECT_EQ(device_sum(r, w.size(), s), host_sum(third.data(), w.size()));
  if (!budget) Runtime::get().evict_idle();
  for (CUdeviceptr u : p_units) EXPECT_EQ(unit_at(u).state, UnitState::kCompressed);
  EXPECT_GE(stats().drops - before.drops, 2u) << "unchanged: dropped, not encoded again";
  // And staged again, intact, when used.
  EXPECT_EQ(device_sum(p, w.size(), s), host_sum(w.data(), w.size()));
  d->real().base.cuStreamDestroy(s);
  for (CUdeviceptr x : {p, q, r}) d->free(x);
}

// A capture forked into a second stream (an event recorded in the capturing
// stream and waited for by the other, which is joined back before the end),
// as PyTorch's side streams and collectives in a captured step are: the
// forked stream's uses belong to the capture (the driver's sequence id ties
// them to it), so their pins go with its graph and exec. (Before, a use on
// a stream with no capture of its own was pinned for good: those ranges
// were never compressed again.)
TEST_F(RuntimeE2E, ForkedCaptureStreamPinsForItsGraphOnly) {
  const GraphApi g = GraphApi::load(*d);
  if (!g.usable()) GTEST_SKIP() << "no graph API in this driver";
  const auto& api = d->real().base;
  auto w = bf16_weights(2 * kMiB, 21);  // 4 MiB: two units
  CUdeviceptr p = load_weights(w);
  const CUdeviceptr p_units[] = {p, p + 2 * kMiB};
  CUstream s = nullptr, t = nullptr;
  ASSERT_EQ(api.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  ASSERT_EQ(api.cuStreamCreate(&t, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  CUevent fork = nullptr, join = nullptr;
  ASSERT_EQ(api.cuEventCreate(&fork, CU_EVENT_DISABLE_TIMING), CUDA_SUCCESS);
  ASSERT_EQ(api.cuEventCreate(&join, CU_EVENT_DISABLE_TIMING), CUDA_SUCCESS);
  ASSERT_EQ(g.begin(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_SUCCESS);
  nz::rt::on_capture_begin(s);
  ASSERT_EQ(api.cuEventRecord(fork, s), CUDA_SUCCESS);
  ASSERT_EQ(api.cuStreamWaitEvent(t, fork, 0), CUDA_SUCCESS);
  uint64_t n = w.size();
  ASSERT_EQ(d->launch(f_sum, {&p, &n, &result}, t), CUDA_SUCCESS);  // on the forked stream
  ASSERT_EQ(api.cuEventRecord(join, t), CUDA_SUCCESS);
  ASSERT_EQ(api.cuStreamWaitEvent(s, join, 0), CUDA_SUCCESS);
  CUgraph graph = nullptr;
  ASSERT_EQ(g.end(s, &graph), CUDA_SUCCESS);
  nz::rt::on_capture_end(s, graph);
  CUgraphExec exec = nullptr;
  ASSERT_EQ(g.instantiate(&exec, graph, 0), CUDA_SUCCESS);
  nz::rt::on_graph_instantiate(exec, graph);
  for (CUdeviceptr u : p_units) EXPECT_EQ(unit_at(u).pins, 2) << "one pin for the graph, one for the exec";
  Runtime::get().evict_idle();  // must not take the pinned range away
  EXPECT_EQ(replay_result(exec, s, g.launch), host_sum(w.data(), w.size()));
  destroy_graph_and_exec(g, graph, exec);
  for (CUdeviceptr u : p_units) EXPECT_EQ(unit_at(u).pins, 0) << "the forked stream's pins went with its graph";
  Runtime::get().evict_idle();
  for (CUdeviceptr u : p_units) EXPECT_EQ(unit_at(u).state, UnitState::kCompressed);
  EXPECT_EQ(device_sum(p, w.size(), s), host_sum(w.data(), w.size()));
  api.cuEventDestroy(fork);
  api.cuEventDestroy(join);
  api.cuStreamDestroy(t);
  api.cuStreamDestroy(s);
  d->free(p);
}

// Two threads capture on their per-thread default streams at once (one
// handle, CU_STREAM_PER_THREAD, naming a different stream in each thread),
// as a program built with --default-stream per-thread captures a graph per
// worker thread. Each capture's pins belong to its own graph. With one
// record for both, the second begin dropped the first capture's bookkeeping
// (its range pinned for good, never compressed again) and the first graph
// took the second's range (evictable once that graph went, while the second
// capture was still open).
TEST_F(RuntimeE2E, PerThreadDefaultStreamCapturesInTwoThreadsPinForTheirOwnGraphs) {
  const GraphApi g = GraphApi::load(*d);
  if (!g.usable()) GTEST_SKIP() << "no graph API in this driver";
  auto wa = bf16_weights(kMiB, 31), wb = bf16_weights(kMiB, 32);  // one unit each
  CUdeviceptr pa = load_weights(wa), pb = load_weights(wb);
  std::atomic<int> step{0};
  auto at = [&](int k) {
    while (step.load() != k) std::this_thread::yield();
  };
  CUgraph ga = nullptr, gb = nullptr;
  // A: begin, launch on its weight (steps 0-1); B: the same (2-3); A: end
  // (4); the pins checked here (5); B: end (6).
  auto worker = [&](CUdeviceptr p, size_t n_elems, int first, int end_step, CUgraph& out) {
    uint64_t n = n_elems;
    EXPECT_EQ(d->real().base.cuCtxSetCurrent(d->context()), CUDA_SUCCESS);  // (no ASSERT: the others would wait)
    at(first);
    EXPECT_EQ(g.begin(CU_STREAM_PER_THREAD, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), CUDA_SUCCESS);
    nz::rt::on_capture_begin(CU_STREAM_PER_THREAD);
    step.store(first + 1);
    at(first + 1);
    EXPECT_EQ(d->launch(f_sum, {&p, &n, &result}, CU_STREAM_PER_THREAD), CUDA_SUCCESS);
    step.store(first + 2);
    at(end_step);
    EXPECT_EQ(g.end(CU_STREAM_PER_THREAD, &out), CUDA_SUCCESS);
    nz::rt::on_capture_end(CU_STREAM_PER_THREAD, out);
    step.store(end_step + 1);
  };
  std::thread a(worker, pa, wa.size(), 0, 4, std::ref(ga));
  std::thread b(worker, pb, wb.size(), 2, 6, std::ref(gb));
  // Between A's end and B's: A's graph holds A's range, B's open capture B's.
  at(5);
  EXPECT_EQ(unit_at(pa).pins, 1) << "A's graph";
  EXPECT_EQ(unit_at(pb).pins, 1) << "B's open capture";
  step.store(6);
  a.join();
  b.join();
  ASSERT_NE(ga, nullptr);
  ASSERT_NE(gb, nullptr);
  nz::rt::on_graph_destroy(ga);
  ASSERT_EQ(g.destroy(ga), CUDA_SUCCESS);
  EXPECT_EQ(unit_at(pa).pins, 0) << "A's pins went with A's graph";
  EXPECT_EQ(unit_at(pb).pins, 1) << "B's graph still holds B's range";
  nz::rt::on_graph_destroy(gb);
  ASSERT_EQ(g.destroy(gb), CUDA_SUCCESS);
  EXPECT_EQ(unit_at(pb).pins, 0);
  Runtime::get().evict_idle();
  for (CUdeviceptr p : {pa, pb}) EXPECT_EQ(unit_at(p).state, UnitState::kCompressed) << "nothing pinned for good";
  EXPECT_EQ(device_sum(pa, wa.size()), host_sum(wa.data(), wa.size()));
  EXPECT_EQ(device_sum(pb, wb.size()), host_sum(wb.data(), wb.size()));
  d->free(pa);
  d->free(pb);
}

// A graph reads a range; the range is then untagged (its units retired) and
// tagged again (new units for the same memory), as a framework that
// re-registers its weights does. The new units must be pinned by the graph
// as the old ones were: compressed, they left the graph's replay reading
// unmapped (a GPU's illegal address) or undecoded pages (zeros: the random
// programs of runtime_random_program_test.cpp found it, two threads, a small
// lazy device).
TEST_F(RuntimeE2E, ARangeTaggedAgainStaysPinnedByItsGraph) {
  const GraphApi g = GraphApi::load(*d);
  if (!g.usable()) GTEST_SKIP() << "no graph API in this driver";
  // One unit: staged as a run of its own, whose handle a retired unit keeps
  // (a unit remade over it can be compressed again; two units sharing one
  // run's handle stay resident).
  auto w = bf16_weights(kMiB, 12);
  CUdeviceptr p = load_weights(w);
  CUstream s = nullptr;
  CUgraph graph = nullptr;
  CUgraphExec exec = nullptr;
  capture_sum_on_new_stream(g, s, p, w.size(), graph, exec);
  if (HasFatalFailure()) return;
  nz::rt::on_graph_destroy(graph);
  ASSERT_EQ(g.destroy(graph), CUDA_SUCCESS);
  // Registered again: the old units go back to resident memory, new ones are made.
  ASSERT_EQ(nz_untag(p, w.size() * 2), NZ_RT_OK);
  ASSERT_EQ(nz_tag(p, w.size() * 2, NZ_TAG_BF16), NZ_RT_OK);
  EXPECT_EQ(unit_at(p).pins, 1) << "the exec's pin, taken over";
  Runtime::get().compress_pending(true);
  Runtime::get().evict_idle();
  EXPECT_NE(unit_at(p).state, UnitState::kCompressed) << "under a live graph";
  for (int replay = 0; replay < 2; ++replay) {
    EXPECT_EQ(replay_result(exec, s, g.launch), host_sum(w.data(), w.size())) << "replay " << replay;
  }
  // The exec gone, the new units are ordinary ones: compressed, and intact.
  nz::rt::on_graph_exec_destroy(exec);
  ASSERT_EQ(g.destroy_exec(exec), CUDA_SUCCESS);
  EXPECT_EQ(unit_at(p).pins, 0);
  Runtime::get().compress_pending(true);
  Runtime::get().evict_idle();
  EXPECT_EQ(device_sum(p, w.size(), s), host_sum(w.data(), w.size()));
  d->real().base.cuStreamDestroy(s);
  d->free(p);
}

// Run alone (it poisons the context): a corrupted store must trap the decode.
TEST_F(RuntimeE2E, DISABLED_CorruptStoreTrapsAndIsReported) {
  auto w = bf16_weights(2 * kMiB, 8);
  CUdeviceptr p = load_weights(w);
  CUdeviceptr store = 0;
  size_t bytes = 0;
  ASSERT_TRUE(Runtime::get().debug_store_of(p, store, bytes));
  std::vector<uint8_t> junk(256, 0x5a);
  ASSERT_EQ(d->real().base.cuMemcpyHtoD(store + bytes - 512, junk.data(), junk.size()), CUDA_SUCCESS);
  uint64_t n = w.size();
  d->launch(f_sum, {&p, &n, &result});
  EXPECT_EQ(d->real().base.cuCtxSynchronize(), CUDA_ERROR_LAUNCH_FAILED);
  EXPECT_GE(stats().checksum_failures, 1u);
  d = nullptr;  // the context is gone: skip TearDown's checks
}

}  // namespace
}  // namespace nz::rt::test
