// gpu_codec_test: the device codec against the CPU codec, on whichever
// backend DeviceCodec::create picks (the simulator here, the CUDA kernels on a
// GPU: tools/gpu/one-try, docs/GPU.md). Without any driver or device every test skips.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <span>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gpu_test_env.h"
#include "test_weights.h"

namespace nz::gpu::test {
namespace {

uint32_t mantissa_bits(nz_dtype d) { return d == NZ_BF16 ? 7 : d == NZ_FP16 ? 10 : 23; }

const char* dtype_name(nz_dtype d) { return d == NZ_BF16 ? "bf16" : d == NZ_FP16 ? "fp16" : "fp32"; }

nz_options make_options(nz_dtype dtype, nz_mode mode = NZ_LOSSLESS, uint32_t kept = 0, uint32_t block = 0,
                        uint32_t chunk = 0) {
  nz_options o;
  nz_options_default(&o, dtype);
  o.mode = mode;
  o.kept_bits = kept;
  o.block_size = block;
  o.chunk_elems = chunk;
  return o;
}

// fp32 -> bf16 / fp16, round to nearest even (how people make 16-bit weights).
std::vector<uint8_t> cast_f32(const std::vector<uint8_t>& f32, nz_dtype to) {
  const size_t n = f32.size() / 4;
  std::vector<uint8_t> out(n * 2);
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &f32[i * 4], 4);
    uint16_t h;
    if (to == NZ_BF16) {
      h = static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    } else {
      _Float16 v = static_cast<_Float16>(std::bit_cast<float>(u));
      std::memcpy(&h, &v, 2);
    }
    std::memcpy(&out[i * 2], &h, 2);
  }
  return out;
}

// Every bit pattern of a 16-bit dtype, or for fp32 the special values
// (zeros, denormals, infinities, NaN payloads, extremes) mixed with random bits.
std::vector<uint8_t> adversarial(nz_dtype dtype, size_t count, uint64_t seed) {
  const size_t elem = nz_dtype_size(dtype);
  std::vector<uint8_t> out(count * elem);
  std::mt19937_64 rng(seed);
  static const uint32_t specials32[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x00800000u,
                                        0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F800000u, 0xFF800000u, 0x7FC00000u,
                                        0xFFC00001u, 0x7F800001u, 0x3F800000u, 0xBF800000u};
  for (size_t i = 0; i < count; ++i) {
    if (elem == 2) {
      uint16_t v = static_cast<uint16_t>((i * 40503u + seed) & 0xFFFFu);  // a permutation of all 65536 patterns
      std::memcpy(&out[i * 2], &v, 2);
    } else {
      uint32_t v = (i % 3 == 0) ? specials32[(i / 3) % std::size(specials32)] : static_cast<uint32_t>(rng());
      std::memcpy(&out[i * 4], &v, 4);
    }
  }
  return out;
}

// Small-magnitude "weights": what real exponents look like, so rANS chunks occur.
std::vector<uint8_t> weights_like(nz_dtype dtype, size_t count, uint64_t seed) {
  const size_t elem = nz_dtype_size(dtype);
  std::vector<uint8_t> out(count * elem);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  for (size_t i = 0; i < count; ++i) {
    float f = dist(rng);
    uint32_t u = std::bit_cast<uint32_t>(f);
    if (dtype == NZ_FP32) {
      std::memcpy(&out[i * 4], &u, 4);
    } else if (dtype == NZ_BF16) {
      uint16_t h = static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
      std::memcpy(&out[i * 2], &h, 2);
    } else {
      _Float16 v = static_cast<_Float16>(f);
      std::memcpy(&out[i * 2], &v, 2);
    }
  }
  return out;
}

// The heart of the suite: CPU encode -> device decode, device encode -> CPU
// decode, device bytes == CPU bytes, device round trip.
void check_both_ways(GpuEnv& env, const std::vector<uint8_t>& input, const nz_options& opts, const std::string& what) {
  SCOPED_TRACE(what);
  const uint64_t count = input.size() / nz_dtype_size(opts.dtype);
  nz_status cpu_status;
  std::vector<uint8_t> cpu = cpu_compress(input, count, opts, cpu_status);
  std::vector<uint8_t> dev;
  ASSERT_EQ(env.encode(input, count, opts, dev), CUDA_SUCCESS);
  if (cpu_status != NZ_OK) {
    EXPECT_TRUE(dev.empty()) << "the CPU refused (" << nz_error_string(cpu_status) << ") but the device encoded";
    return;
  }
  ASSERT_FALSE(dev.empty()) << "the device encoder wrote out_len 0";
  EXPECT_EQ(dev.size(), cpu.size());
  EXPECT_TRUE(dev == cpu) << "device-encoded bytes differ from the CPU encoder's";

  // Reference output: what the CPU decoder makes of the CPU's buffer.
  nz_status st;
  std::vector<uint8_t> expected = cpu_decompress(cpu, st);
  ASSERT_EQ(st, NZ_OK) << nz_error_string(st);
  if (opts.mode == NZ_LOSSLESS) {
    ASSERT_TRUE(expected == input) << "CPU lossless round trip failed";
  }
  // CPU-encoded -> device decode.
  std::vector<uint8_t> out;
  uint32_t status = 0;
  ASSERT_EQ(env.decode(cpu, expected.size(), out, status), CUDA_SUCCESS) << "status word " << status;
  EXPECT_EQ(status, 0u);
  EXPECT_TRUE(out == expected) << "device decode of the CPU buffer differs";
  // Device-encoded -> CPU decode.
  std::vector<uint8_t> from_dev = cpu_decompress(dev, st);
  ASSERT_EQ(st, NZ_OK) << nz_error_string(st);
  EXPECT_TRUE(from_dev == expected) << "CPU decode of the device buffer differs";
  // Device -> device.
  ASSERT_EQ(env.decode(dev, expected.size(), out, status), CUDA_SUCCESS) << "status word " << status;
  EXPECT_TRUE(out == expected);
}

TEST(GpuCodec, BackendIsKnown) {
  NZ_REQUIRE_GPU_ENV(env);
  const bool sim_backend = env->simulator() && !env->emulated_cuda();
  EXPECT_EQ(env->codec().backend(), sim_backend ? Backend::kSimulator : Backend::kCuda);
  std::printf("[ info ] backend: %s\n", sim_backend ? "simulator" : env->emulated_cuda() ? "CUDA (emulated kernels)" : "CUDA");
}

TEST(GpuCodec, RealBf16WeightsLossless) {
  NZ_REQUIRE_GPU_ENV(env);
  std::vector<uint8_t> w = real_tensor_bytes("gpt-neo-125m-attn-bf16.safetensors", "BF16", 16);
  ASSERT_FALSE(w.empty());
  check_both_ways(*env, w, make_options(NZ_BF16), "gpt-neo bf16 lossless");
  nz_status st;
  std::vector<uint8_t> cpu = cpu_compress(w, w.size() / 2, make_options(NZ_BF16), st);
  EXPECT_LT(static_cast<double>(cpu.size()) / w.size(), 0.70);
}

TEST(GpuCodec, RealBf16WeightsLossy) {
  NZ_REQUIRE_GPU_ENV(env);
  std::vector<uint8_t> w = real_tensor_bytes("gpt-neo-125m-attn-bf16.safetensors", "BF16", 2);
  for (uint32_t k : {0u, 1u, 3u, 6u}) {
    for (uint32_t block : {0u, 512u}) {
      check_both_ways(*env, w, make_options(NZ_BF16, NZ_LOSSY, k, block), fmt::format("bf16 K={} B={}", k, block));
    }
  }
}

TEST(GpuCodec, RealFp32AndCasts) {
  NZ_REQUIRE_GPU_ENV(env);
  std::vector<uint8_t> f32 = real_tensor_bytes("gpt2-small-attn-f32.safetensors", "F32", 2);
  ASSERT_FALSE(f32.empty());
  check_both_ways(*env, f32, make_options(NZ_FP32), "gpt2 fp32 lossless");
  check_both_ways(*env, f32, make_options(NZ_FP32, NZ_LOSSY, 7, 512), "gpt2 fp32 lossy K=7 B=512");
  std::vector<uint8_t> f16 = cast_f32(f32, NZ_FP16);
  check_both_ways(*env, f16, make_options(NZ_FP16), "gpt2 as fp16 lossless");
  check_both_ways(*env, f16, make_options(NZ_FP16, NZ_LOSSY, 3, 64), "gpt2 as fp16 lossy K=3 B=64");
  check_both_ways(*env, cast_f32(f32, NZ_BF16), make_options(NZ_BF16), "gpt2 as bf16 lossless");
}

TEST(GpuCodec, EveryBitPatternEveryMode) {
  NZ_REQUIRE_GPU_ENV(env);
  for (nz_dtype dtype : {NZ_BF16, NZ_FP16, NZ_FP32}) {
    std::vector<uint8_t> data = adversarial(dtype, 65536 + 77, 1);
    check_both_ways(*env, data, make_options(dtype, NZ_LOSSLESS, 0, 0, 4096), fmt::format("{} lossless", dtype_name(dtype)));
    const uint32_t M = mantissa_bits(dtype);
    for (uint32_t k : {0u, 1u, M - 1}) {
      for (uint32_t block : {0u, 2u, 32u, 2048u}) {
        // K = 0 with NaNs present: both encoders must refuse (out_len 0).
        check_both_ways(*env, data, make_options(dtype, NZ_LOSSY, k, block, 4096),
                        fmt::format("{} lossy K={} B={}", dtype_name(dtype), k, block));
      }
    }
  }
}

TEST(GpuCodec, SizesFromOneElement) {
  NZ_REQUIRE_GPU_ENV(env);
  for (nz_dtype dtype : {NZ_BF16, NZ_FP16, NZ_FP32}) {
    for (size_t n : {size_t{1}, size_t{2}, size_t{31}, size_t{32}, size_t{33}, size_t{1023}, size_t{1024},
                     size_t{1025}, size_t{65535}, size_t{65536}, size_t{65537}, size_t{300001}}) {
      std::vector<uint8_t> data = weights_like(dtype, n, n);
      check_both_ways(*env, data, make_options(dtype), fmt::format("{} n={}", dtype_name(dtype), n));
      check_both_ways(*env, data, make_options(dtype, NZ_LOSSLESS, 0, 0, 1024),
                      fmt::format("{} n={} chunk=1024", dtype_name(dtype), n));
      check_both_ways(*env, data, make_options(dtype, NZ_LOSSY, 2, 128), fmt::format("{} n={} lossy", dtype_name(dtype), n));
    }
  }
}

TEST(GpuCodec, ProbabilityBitsRange) {
  NZ_REQUIRE_GPU_ENV(env);
  std::vector<uint8_t> data = weights_like(NZ_BF16, 100000, 7);
  for (uint32_t p : {8u, 12u, 13u, 15u}) {
    nz_options o = make_options(NZ_BF16);
    o.prob_bits = p;
    check_both_ways(*env, data, o, fmt::format("bf16 P={}", p));
  }
}

TEST(GpuCodec, HashEqualsCpu) {
  NZ_REQUIRE_GPU_ENV(env);
  std::vector<uint8_t> data = adversarial(NZ_FP32, 300000, 3);
  DeviceBuffer d = env->upload(data);
  for (size_t offset : {size_t{0}, size_t{1}, size_t{3}, size_t{4}}) {
    for (size_t len : {size_t{0}, size_t{1}, size_t{5}, size_t{4096}, size_t{1000003}}) {
      EXPECT_EQ(env->hash(d.get() + offset, len), nz_hash(data.data() + offset, len))
          << "offset " << offset << " len " << len;
    }
  }
}

TEST(GpuCodec, EmptyBuffer) {
  NZ_REQUIRE_GPU_ENV(env);
  check_both_ways(*env, {}, make_options(NZ_BF16), "empty bf16");
}

TEST(GpuCodec, EncoderRejectsBadOptions) {
  NZ_REQUIRE_GPU_ENV(env);
  nz_options o = make_options(NZ_BF16, NZ_LOSSY, 7);  // K must be < M
  DeviceBuffer src = env->alloc(64), dst = env->alloc(4096), len = env->alloc(8);
  EXPECT_EQ(env->codec().encode(env->stream(), src.get(), 16, o, dst.get(), 4096, len.get(), 0, 0),
            CUDA_ERROR_INVALID_VALUE);
}

// A batched decode (the staging of a run of ranges in one launch) writes
// exactly what one decode per buffer writes: buffers of every dtype, lossy
// and lossless, odd sizes, packed next to each other; a batch of one; and a
// batch too large or empty is refused without a launch.
TEST(GpuCodec, BatchedDecodeEqualsSingleDecodes) {
  NZ_REQUIRE_GPU_ENV(env);
  struct Case {
    nz_dtype dtype;
    size_t count;
    bool lossy;
  };
  const std::vector<Case> cases = {{NZ_BF16, 200000, false}, {NZ_FP32, 70001, false}, {NZ_FP16, 1, false},
                                   {NZ_BF16, 131072, true},  {NZ_FP16, 99999, false}, {NZ_BF16, 8192, false}};
  std::vector<DeviceBuffer> stores, outs;
  std::vector<std::vector<uint8_t>> expected;
  std::vector<DeviceCodec::DecodeJob> jobs;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    nz_options o = make_options(c.dtype);
    if (c.lossy) {
      o.mode = NZ_LOSSY;
      o.kept_bits = 3;
    }
    nz_status st;
    std::vector<uint8_t> input = weights_like(c.dtype, c.count, 40 + i);
    std::vector<uint8_t> comp = cpu_compress(input, c.count, o, st);
    ASSERT_EQ(st, NZ_OK) << nz_error_string(st);
    expected.push_back(cpu_decompress(comp, st));
    ASSERT_EQ(st, NZ_OK);
    stores.push_back(env->upload(comp));
    outs.push_back(env->alloc(expected.back().size()));
    jobs.push_back({stores.back().get(), comp.size(), outs.back().get(), expected.back().size()});
  }
  DeviceBuffer status = env->alloc(4);
  ASSERT_EQ(env->api().cuMemsetD8Async(status.get(), 0, 4, env->stream()), CUDA_SUCCESS);
  ASSERT_EQ(env->codec().decode_batch(env->stream(), jobs, status.get()), CUDA_SUCCESS);
  ASSERT_EQ(env->api().cuStreamSynchronize(env->stream()), CUDA_SUCCESS);
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_TRUE(env->download(outs[i].get(), expected[i].size()) == expected[i]) << "job " << i;
  }
  // One job alone, into a cleared buffer.
  ASSERT_EQ(env->api().cuMemsetD8Async(outs[0].get(), 0, expected[0].size(), env->stream()), CUDA_SUCCESS);
  ASSERT_EQ(env->codec().decode_batch(env->stream(), std::span(jobs).first(1), status.get()), CUDA_SUCCESS);
  ASSERT_EQ(env->api().cuStreamSynchronize(env->stream()), CUDA_SUCCESS);
  EXPECT_TRUE(env->download(outs[0].get(), expected[0].size()) == expected[0]);
  EXPECT_EQ(env->download(status.get(), 4), std::vector<uint8_t>(4, 0));
  // Too many jobs, or none: refused before any launch.
  std::vector<DeviceCodec::DecodeJob> many(DeviceCodec::kMaxBatch + 1, jobs[0]);
  EXPECT_EQ(env->codec().decode_batch(env->stream(), many, status.get()), CUDA_ERROR_INVALID_VALUE);
  EXPECT_EQ(env->codec().decode_batch(env->stream(), {}, status.get()), CUDA_ERROR_INVALID_VALUE);
  // The full batch of 64 (the same job repeated) also decodes.
  std::vector<DeviceCodec::DecodeJob> full(DeviceCodec::kMaxBatch, jobs[2]);
  ASSERT_EQ(env->codec().decode_batch(env->stream(), full, status.get()), CUDA_SUCCESS);
  ASSERT_EQ(env->api().cuStreamSynchronize(env->stream()), CUDA_SUCCESS);
  EXPECT_TRUE(env->download(outs[2].get(), expected[2].size()) == expected[2]);
}

// The runtime re-encodes a range into a buffer of the size it last encoded to
// (CompressedStore's size_hint): the encoder must fill exactly that much when
// it fits, and write out_len 0 without a byte past the capacity when it does
// not (the runtime then encodes again with the bound).
TEST(GpuCodec, EncodeIntoBuffersOfTheExpectedSize) {
  NZ_REQUIRE_GPU_ENV(env);
  std::vector<uint8_t> w = real_tensor_bytes("gpt-neo-125m-attn-bf16.safetensors", "BF16", 2);
  const uint64_t count = w.size() / 2;
  const nz_options o = make_options(NZ_BF16);
  std::vector<uint8_t> reference;
  ASSERT_EQ(env->encode(w, count, o, reference), CUDA_SUCCESS);
  ASSERT_FALSE(reference.empty());
  const size_t exact = reference.size();
  ASSERT_LT(exact, nz_compress_bound(count, &o));
  DeviceBuffer input = env->upload(w);
  const size_t ws_bytes = env->codec().encode_workspace_bytes(count, o);
  DeviceBuffer ws = env->alloc(ws_bytes), len = env->alloc(8);
  constexpr size_t kGuard = 4096;
  for (const size_t cap : {exact, exact - 1, exact / 2}) {
    SCOPED_TRACE(cap);
    std::vector<uint8_t> sentinel(cap + kGuard, 0xA5);
    DeviceBuffer dst = env->upload(sentinel);
    ASSERT_EQ(env->api().cuMemsetD8Async(len.get(), 0xFF, 8, env->stream()), CUDA_SUCCESS);
    ASSERT_EQ(env->codec().encode(env->stream(), input.get(), count, o, dst.get(), cap, len.get(), ws.get(), ws_bytes),
              CUDA_SUCCESS);
    ASSERT_EQ(env->api().cuStreamSynchronize(env->stream()), CUDA_SUCCESS);
    uint64_t n = 0;
    ASSERT_EQ(env->api().cuMemcpyDtoH(&n, len.get(), 8), CUDA_SUCCESS);
    const std::vector<uint8_t> after = env->download(dst.get(), cap + kGuard);
    EXPECT_TRUE(std::all_of(after.begin() + static_cast<std::ptrdiff_t>(cap), after.end(),
                            [](uint8_t b) { return b == 0xA5; }))
        << "the encoder wrote past its capacity";
    if (cap == exact) {
      EXPECT_EQ(n, exact);
      EXPECT_TRUE(std::equal(reference.begin(), reference.end(), after.begin())) << "not the bound-sized encoding";
    } else {
      EXPECT_EQ(n, 0u) << "a result that does not fit must read as length 0";
    }
  }
}

// Page-locked host memory the device writes (the guard's flags, rescue
// copies and result words), zeroed.
struct PinnedBytes {
  GpuEnv* env;
  uint8_t* p = nullptr;
  PinnedBytes(GpuEnv* e, size_t n) : env(e) {
    void* v = nullptr;
    if (env->api().cuMemAllocHost(&v, n) == CUDA_SUCCESS) {
      p = static_cast<uint8_t*>(v);
      std::memset(p, 0, n);
    }
  }
  ~PinnedBytes() {
    if (p) env->api().cuMemFreeHost(p);
  }
  CUdeviceptr device(size_t offset = 0) const { return reinterpret_cast<uintptr_t>(p + offset); }
};

// The change test of handed-over pages (kGuardCompare): unchanged bytes
// leave the rescue memory alone; changed ones are copied there.
TEST(GpuCodec, GuardComparesAndRescues) {
  NZ_REQUIRE_GPU_ENV(env);
  if (!env->codec().has_guard()) GTEST_SKIP() << "module without the guard kernel";
  const std::vector<uint8_t> w = weights_like(NZ_BF16, 40000, 7);  // not a multiple of 16 bytes: the byte path
  DeviceBuffer data = env->upload(w);
  const uint64_t hash = env->hash(data.get(), w.size());
  PinnedBytes host(env, 256 + 2 * w.size());
  ASSERT_NE(host.p, nullptr);
  std::vector<DeviceCodec::GuardJob> jobs(2);
  jobs[0] = {data.get(), w.size(), hash, host.device(256)};
  jobs[1] = {data.get(), w.size(), hash ^ 1, host.device(256 + w.size())};
  ASSERT_EQ(env->codec().guard_batch(env->stream(), jobs, host.device()), CUDA_SUCCESS);
  ASSERT_EQ(env->api().cuStreamSynchronize(env->stream()), CUDA_SUCCESS);
  const auto* flags = reinterpret_cast<const uint32_t*>(host.p);
  EXPECT_EQ(flags[0], DeviceCodec::kGuardUnchanged);
  EXPECT_EQ(flags[1], DeviceCodec::kGuardRescued);
  EXPECT_TRUE(std::all_of(host.p + 256, host.p + 256 + w.size(), [](uint8_t b) { return b == 0; }));
  EXPECT_TRUE(std::equal(w.begin(), w.end(), host.p + 256 + w.size())) << "the rescue copy differs";
  std::vector<DeviceCodec::GuardJob> too_many(DeviceCodec::kMaxGuardBatch + 1, jobs[0]);
  EXPECT_EQ(env->codec().guard_batch(env->stream(), too_many, host.device()), CUDA_ERROR_INVALID_VALUE);
}

// Encode handovers (kGuardEncoded, kGuardEncodedOrSame): the guard adopts
// an encoding only if it is whole (length within the buffer, header and
// tables within the copy's room, header checksum right); anything else
// rescues the bytes, so a range's content is never lost with its pages.
TEST(GpuCodec, GuardAdoptsOnlyWholeEncodings) {
  NZ_REQUIRE_GPU_ENV(env);
  if (!env->codec().has_guard()) GTEST_SKIP() << "module without the guard kernel";
  const uint64_t count = 65536;
  const std::vector<uint8_t> w = weights_like(NZ_BF16, count, 11);
  const nz_options o = make_options(NZ_BF16);
  std::vector<uint8_t> reference;
  ASSERT_EQ(env->encode(w, count, o, reference), CUDA_SUCCESS);
  ASSERT_FALSE(reference.empty());
  const size_t exact = reference.size();
  const size_t header = NZ_HEADER_BYTES + (reference[28] | reference[29] << 8) +
                        24 * static_cast<size_t>(reference[24] | reference[25] << 8 | reference[26] << 16);
  ASSERT_LT(header, exact);
  DeviceBuffer data = env->upload(w);
  const uint64_t hash = env->hash(data.get(), w.size());
  const size_t ws_bytes = env->codec().encode_workspace_bytes(count, o);
  DeviceBuffer ws = env->alloc(ws_bytes);
  constexpr size_t kResult = 8192, kHeaderRoom = kResult - DeviceCodec::kGuardResultHeader;
  ASSERT_LT(header, kHeaderRoom);

  struct Case {
    const char* what;
    size_t capacity;        // of the encode's buffer
    uint32_t mode;
    uint64_t expected;
    size_t header_cap;
    long corrupt_at;        // a byte of the encoding flipped before the guard (-1: none)
    uint32_t flag;          // what the guard must say
  };
  const Case cases[] = {
      {"whole encoding", exact, DeviceCodec::kGuardEncoded, 0, kHeaderRoom, -1, DeviceCodec::kGuardStored},
      {"did not fit", exact / 2, DeviceCodec::kGuardEncoded, 0, kHeaderRoom, -1, DeviceCodec::kGuardRescued},
      {"unchanged", exact, DeviceCodec::kGuardEncodedOrSame, hash, kHeaderRoom, -1, DeviceCodec::kGuardUnchanged},
      {"changed", exact, DeviceCodec::kGuardEncodedOrSame, hash ^ 1, kHeaderRoom, -1, DeviceCodec::kGuardStored},
      {"header checksum", exact, DeviceCodec::kGuardEncoded, 0, kHeaderRoom, NZ_HEADER_BYTES + 1,
       DeviceCodec::kGuardRescued},
      {"magic", exact, DeviceCodec::kGuardEncoded, 0, kHeaderRoom, 0, DeviceCodec::kGuardRescued},
      {"no room for the header", exact, DeviceCodec::kGuardEncoded, 0, NZ_HEADER_BYTES, -1,
       DeviceCodec::kGuardRescued},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    PinnedBytes host(env, 256 + w.size() + kResult);
    ASSERT_NE(host.p, nullptr);
    const size_t rescue = 256, result = 256 + w.size();
    DeviceBuffer store = env->alloc(c.capacity);
    ASSERT_EQ(env->codec().encode(env->stream(), data.get(), count, o, store.get(), c.capacity, host.device(result),
                                  ws.get(), ws_bytes),
              CUDA_SUCCESS);
    if (c.corrupt_at >= 0) {
      ASSERT_EQ(env->api().cuStreamSynchronize(env->stream()), CUDA_SUCCESS);
      std::vector<uint8_t> b = env->download(store.get() + c.corrupt_at, 1);
      ASSERT_EQ(env->api().cuMemsetD8Async(store.get() + c.corrupt_at, b[0] ^ 0x40, 1, env->stream()), CUDA_SUCCESS);
    }
    DeviceCodec::GuardJob job{data.get(), w.size(), c.expected, host.device(rescue)};
    job.store = store.get();
    job.store_cap = c.capacity;
    job.result = host.device(result);
    job.header_cap = c.header_cap;
    job.mode = c.mode;
    ASSERT_EQ(env->codec().guard_batch(env->stream(), std::span(&job, 1), host.device()), CUDA_SUCCESS);
    ASSERT_EQ(env->api().cuStreamSynchronize(env->stream()), CUDA_SUCCESS);
    uint32_t flag = 0;
    uint64_t words[2] = {};
    std::memcpy(&flag, host.p, 4);
    std::memcpy(words, host.p + result, sizeof words);
    EXPECT_EQ(flag, c.flag);
    EXPECT_EQ(words[1], hash) << "the guard reports the bytes' hash in every encoded mode";
    const uint8_t* copy = host.p + result + DeviceCodec::kGuardResultHeader;
    const bool rescued = std::equal(w.begin(), w.end(), host.p + rescue);
    if (c.flag == DeviceCodec::kGuardRescued) {
      EXPECT_TRUE(rescued) << "the rescue copy differs";
    } else {
      EXPECT_TRUE(std::all_of(host.p + rescue, host.p + rescue + w.size(), [](uint8_t b) { return b == 0; }));
    }
    if (c.flag == DeviceCodec::kGuardStored) {
      EXPECT_EQ(words[0], exact);
      EXPECT_TRUE(std::equal(reference.begin(), reference.begin() + static_cast<std::ptrdiff_t>(header), copy))
          << "the header copy differs";
      EXPECT_EQ(copy[header], 0) << "copied past the header and tables";
    } else {
      EXPECT_EQ(copy[0], 0) << "a header copied for an encoding not adopted";
    }
  }
}

// Large buffers (several GB) only on request: NZ_GPU_TEST_LARGE=1.
TEST(GpuCodec, LargeTiledWeights) {
  NZ_REQUIRE_GPU_ENV(env);
  const char* flag = std::getenv("NZ_GPU_TEST_LARGE");
  if (flag == nullptr || std::string(flag) != "1") GTEST_SKIP() << "set NZ_GPU_TEST_LARGE=1 for the multi-GB case";
  std::vector<uint8_t> w = real_tensor_bytes("gpt-neo-125m-attn-bf16.safetensors", "BF16", 16);
  const size_t target = size_t{3} << 30;
  const uint64_t count = target / 2;
  DeviceBuffer input = env->alloc(target);
  for (size_t at = 0; at < target; at += w.size()) {
    ASSERT_EQ(env->api().cuMemcpyHtoD(input.get() + at, w.data(), std::min(w.size(), target - at)), CUDA_SUCCESS);
  }
  nz_options o = make_options(NZ_BF16);
  const size_t cap = nz_compress_bound(count, &o);
  DeviceBuffer comp = env->alloc(cap), out = env->alloc(target), len = env->alloc(8);
  const size_t ws_bytes = env->codec().encode_workspace_bytes(count, o);
  DeviceBuffer ws = env->alloc(ws_bytes);
  ASSERT_EQ(env->codec().encode(env->stream(), input.get(), count, o, comp.get(), cap, len.get(), ws.get(), ws_bytes),
            CUDA_SUCCESS);
  ASSERT_EQ(env->api().cuStreamSynchronize(env->stream()), CUDA_SUCCESS);
  uint64_t n = 0;
  ASSERT_EQ(env->api().cuMemcpyDtoH(&n, len.get(), 8), CUDA_SUCCESS);
  ASSERT_GT(n, 0u);
  EXPECT_LT(static_cast<double>(n) / target, 0.70);
  DeviceBuffer status = env->alloc(4);
  ASSERT_EQ(env->api().cuMemsetD8Async(status.get(), 0, 4, env->stream()), CUDA_SUCCESS);
  ASSERT_EQ(env->codec().decode(env->stream(), comp.get(), n, out.get(), target, status.get()), CUDA_SUCCESS);
  ASSERT_EQ(env->api().cuStreamSynchronize(env->stream()), CUDA_SUCCESS);
  EXPECT_EQ(env->hash(out.get(), target), env->hash(input.get(), target));
}

// Corruption traps the kernel. On a real GPU that leaves the context
// unusable for good ("the process must be terminated and relaunched": the
// H200 refused cuDevicePrimaryCtxReset after it, 2026-12-04), so each case
// runs in a child process of its own (a gtest death test in the threadsafe
// style re-executes this binary: fresh CUDA state) and reports by exit code.
class GpuCodecCorrupt : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// 0 when the corrupted buffer trapped the decode with a corruption status.
int trap_case(GpuEnv& env, std::vector<uint8_t> buffer, size_t flip_at, const char* what) {
  buffer[flip_at] ^= 0x5A;
  nz_status cpu_status;
  cpu_decompress(buffer, cpu_status);
  if (cpu_status == NZ_OK) {
    std::fprintf(stderr, "%s: the CPU decoder accepted the corrupted buffer\n", what);
    return 2;
  }
  std::vector<uint8_t> out;
  uint32_t status = 0;
  CUresult r = env.decode(buffer, size_t{1} << 20, out, status);
  if (r != CUDA_ERROR_LAUNCH_FAILED) {
    std::fprintf(stderr, "%s: decode gave %s, not CUDA_ERROR_LAUNCH_FAILED\n", what, describe(env.api(), r).c_str());
    return 3;
  }
  if (!(status == NZ_ERR_CORRUPT_HEADER || status == NZ_ERR_CORRUPT_CHUNK || status == NZ_ERR_CHECKSUM ||
        status == NZ_ERR_TRUNCATED || status == NZ_ERR_BAD_MAGIC)) {
    std::fprintf(stderr, "%s: status word %u is not a corruption status\n", what, status);
    return 4;
  }
  std::fprintf(stderr, "[ info ] %s: device status %u, CPU status %d\n", what, status, static_cast<int>(cpu_status));
  return 0;
}

#define EXPECT_TRAP(env, buffer, at, what)                      \
  EXPECT_EXIT(                                                  \
      {                                                         \
        const int code = trap_case(env, buffer, at, what);      \
        std::fflush(stderr);                                    \
        std::_Exit(code); /* no CUDA teardown after a trap */   \
      },                                                        \
      ::testing::ExitedWithCode(0), "")                         \
      << what

// A decode reads a store in page-locked host memory at its host address
// (the runtime's stores moved to host memory, its decodes from host copies);
// one in pageable host memory is an illegal address on a GPU, and the
// simulator's codec module faults the same way (not the CUDA kernels
// emulated here: they run on the host without that check).
int pageable_source_case(GpuEnv& env, const std::vector<uint8_t>& compressed, size_t out_bytes) {
  void* status = nullptr;
  if (env.api().cuMemAllocHost(&status, sizeof(uint32_t)) != CUDA_SUCCESS) return 1;
  DeviceBuffer dst = env.alloc(out_bytes);
  CUresult r = env.codec().decode(env.stream(), reinterpret_cast<CUdeviceptr>(compressed.data()), compressed.size(),
                                  dst.get(), out_bytes, reinterpret_cast<CUdeviceptr>(status));
  if (r == CUDA_SUCCESS) r = env.api().cuStreamSynchronize(env.stream());
  (void)dst.release();  // the context is dead after a fault
  if (r != CUDA_ERROR_ILLEGAL_ADDRESS) {
    std::fprintf(stderr, "decode from pageable memory gave %s, not CUDA_ERROR_ILLEGAL_ADDRESS\n",
                 describe(env.api(), r).c_str());
    return 2;
  }
  return 0;
}

TEST_F(GpuCodecCorrupt, DecodesFromPageLockedHostMemoryOnly) {
  NZ_REQUIRE_GPU_ENV(env);
  if (!env->simulator() || env->emulated_cuda()) GTEST_SKIP() << "the simulator's codec module checks what it reaches";
  std::vector<uint8_t> w = weights_like(NZ_BF16, 100000, 5);
  nz_status st;
  std::vector<uint8_t> buf = cpu_compress(w, 100000, make_options(NZ_BF16), st);
  ASSERT_EQ(st, NZ_OK);
  void* pinned = nullptr;
  ASSERT_EQ(env->api().cuMemAllocHost(&pinned, buf.size()), CUDA_SUCCESS);
  std::memcpy(pinned, buf.data(), buf.size());
  DeviceBuffer dst = env->alloc(w.size());
  ASSERT_EQ(env->codec().decode(env->stream(), reinterpret_cast<CUdeviceptr>(pinned), buf.size(), dst.get(), w.size(), 0),
            CUDA_SUCCESS);
  ASSERT_EQ(env->api().cuStreamSynchronize(env->stream()), CUDA_SUCCESS);
  EXPECT_EQ(env->download(dst.get(), w.size()), w) << "decoded from page-locked host memory";
  EXPECT_EQ(env->api().cuMemFreeHost(pinned), CUDA_SUCCESS);
  EXPECT_EXIT(
      {
        const int code = pageable_source_case(*env, buf, w.size());
        std::fflush(stderr);
        std::_Exit(code);
      },
      ::testing::ExitedWithCode(0), "")
      << "a decode from pageable host memory did not fault";
}

TEST_F(GpuCodecCorrupt, FlippedBytesTrap) {
  NZ_REQUIRE_GPU_ENV(env);
  std::vector<uint8_t> w = weights_like(NZ_BF16, 200000, 11);
  nz_status st;
  std::vector<uint8_t> buf = cpu_compress(w, 200000, make_options(NZ_BF16), st);
  ASSERT_EQ(st, NZ_OK);
  nz_info info{};
  ASSERT_EQ(nz_inspect(buf.data(), buf.size(), &info), NZ_OK);
  ASSERT_GT(info.coded_chunks, 0u);
  const size_t payload_offset = buf.size() - 1 - 100;  // inside the last chunk's payload
  EXPECT_TRAP(*env, buf, payload_offset, "payload byte");
  EXPECT_TRAP(*env, buf, buf.size() / 2, "middle byte");
  EXPECT_TRAP(*env, buf, 70, "frequency table byte");
  EXPECT_TRAP(*env, buf, 0, "magic");
}

}  // namespace
}  // namespace nz::gpu::test
