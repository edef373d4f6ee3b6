// kernel_emulation_test: the CUDA kernels' own code (kernels/*.cuh), run on
// the CPU by tests/gpu/emu/cuda_emu.h, against the CPU codec: device-encoded
// bytes must equal the CPU encoder's, and the device decoder must reproduce
// the CPU decoder's output. The only pre-GPU check of the kernel logic;
// small inputs, since every GPU thread is an OS thread here.
#include "emu/cuda_emu.h"
// The kernel building blocks, compiled for the host through the emulator.
#include "decode_kernel.cuh"
#include "encode.cuh"
#include "hash.cuh"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gpu/encode_params.h"
#include "test_weights.h"

namespace {

using namespace nz::kernels;

template <class T>
uint64_t addr(T* p) {
  return reinterpret_cast<uint64_t>(p);
}

// 256-byte aligned host storage standing in for device memory.
struct AlignedBytes {
  explicit AlignedBytes(size_t n) : storage(n + 256, 0) {
    uintptr_t p = reinterpret_cast<uintptr_t>(storage.data());
    offset = ((p + 255) & ~uintptr_t{255}) - p;
  }
  uint8_t* data() { return storage.data() + offset; }
  std::vector<uint8_t> storage;
  size_t offset;
};

std::vector<uint8_t> emu_encode(const std::vector<uint8_t>& input, uint64_t count, const nz_options& opts) {
  EncodeArgs args;
  std::string error;
  EXPECT_TRUE(nz::gpu::resolve_encode_params(count, opts, args, error)) << error;
  const size_t ws_bytes = nz::gpu::plan_encode_workspace(args);
  AlignedBytes src(input.size()), dst(nz_compress_bound(count, &opts)), ws(ws_bytes), len(8);
  if (!input.empty()) std::memcpy(src.data(), input.data(), input.size());
  args.src = addr(src.data());
  args.dst = addr(dst.data());
  args.dst_cap = nz_compress_bound(count, &opts);
  args.out_len = addr(len.data());
  args.ws.base = addr(ws.data());
  args.ws.bytes = ws_bytes;
  const unsigned blocks = (args.chunk_count + kEncodeWarpsPerBlock - 1) / kEncodeWarpsPerBlock;
  const unsigned warp_threads = kEncodeWarpsPerBlock * 32;
  if (blocks) nz::emu::launch(blocks, warp_threads, [&] { encode_analyse(args); });
  nz::emu::launch(1, 256, [&] { encode_table(args); });
  if (blocks) nz::emu::launch(blocks, warp_threads, [&] { encode_rans(args); });
  nz::emu::launch(1, kLayoutThreads, [&] { encode_layout(args); });
  if (blocks) nz::emu::launch(blocks, warp_threads, [&] { encode_emit(args); });
  uint64_t n = 0;
  std::memcpy(&n, len.data(), 8);
  return std::vector<uint8_t>(dst.data(), dst.data() + n);
}

// `src_shift` / `dst_shift`: bytes past a 256-byte boundary, to run the
// decoder on buffers with only the alignment the kernel contract promises.
std::vector<uint8_t> emu_decode(const std::vector<uint8_t>& compressed, size_t out_bytes, unsigned grid,
                                uint32_t* status_out = nullptr, size_t src_shift = 0, size_t dst_shift = 0) {
  AlignedBytes src_store(compressed.size() + src_shift), dst_store(out_bytes + dst_shift), status(4);
  uint8_t* src = src_store.data() + src_shift;
  uint8_t* dst = dst_store.data() + dst_shift;
  const unsigned traps_before = trapped();
  std::memcpy(src, compressed.data(), compressed.size());
  DecodeArgs args{addr(src), compressed.size(), addr(dst), out_bytes, addr(status.data())};
  nz::emu::launch(grid, kDecodeWarpsPerBlock * 32, [&] { decode_buffer(args); });
  uint32_t st = 0;
  std::memcpy(&st, status.data(), 4);
  if (status_out) *status_out = st;
  else EXPECT_EQ(trapped(), traps_before) << "the emulated decoder trapped, status " << st;
  return std::vector<uint8_t>(dst, dst + out_bytes);
}

uint64_t emu_hash(const uint8_t* data, uint64_t len, unsigned grid) {
  uint64_t out = 0;
  HashArgs args{addr(data), len, addr(&out)};
  nz::emu::launch(grid, 64, [&] { hash_range(reinterpret_cast<const uint8_t*>(args.data), args.len,
                                             reinterpret_cast<uint64_t*>(args.out)); });
  return out;
}

nz_options options(nz_dtype dtype, nz_mode mode, uint32_t kept, uint32_t block, uint32_t chunk, uint32_t prob = 0) {
  nz_options o;
  nz_options_default(&o, dtype);
  o.mode = mode;
  o.kept_bits = kept;
  o.block_size = block;
  o.chunk_elems = chunk;
  o.prob_bits = prob;
  o.threads = 1;
  return o;
}

void check(const std::vector<uint8_t>& input, const nz_options& opts, const std::string& what) {
  SCOPED_TRACE(what);
  const uint64_t count = input.size() / nz_dtype_size(opts.dtype);
  std::vector<uint8_t> cpu(nz_compress_bound(count, &opts));
  size_t cpu_len = 0;
  nz_status st = nz_compress(input.data(), count, &opts, cpu.data(), cpu.size(), &cpu_len);
  std::vector<uint8_t> dev = emu_encode(input, count, opts);
  if (st != NZ_OK) {
    EXPECT_TRUE(dev.empty()) << "CPU refused with " << nz_error_string(st) << ", emulated GPU encoded";
    return;
  }
  cpu.resize(cpu_len);
  ASSERT_EQ(dev.size(), cpu.size());
  if (dev != cpu) {
    size_t i = 0;
    while (dev[i] == cpu[i]) ++i;
    ADD_FAILURE() << "encoded bytes differ first at byte " << i << " of " << cpu.size();
  }
  std::vector<uint8_t> expected(count * nz_dtype_size(opts.dtype));
  ASSERT_EQ(nz_decompress(cpu.data(), cpu.size(), expected.data(), expected.size(), 1), NZ_OK);
  std::vector<uint8_t> out = emu_decode(cpu, expected.size(), 2);
  if (out != expected) {
    size_t i = 0;
    while (out[i] == expected[i]) ++i;
    ADD_FAILURE() << "emulated decode differs from the CPU decoder first at byte " << i << " of " << out.size();
  }
}

// The first `elements` values of the first BF16 tensor of a real model.
std::vector<uint8_t> real_bf16(size_t elements) {
  std::vector<uint8_t> b = nz::gpu::test::real_tensor_bytes("gpt-neo-125m-attn-bf16.safetensors", "BF16", 1);
  EXPECT_GE(b.size(), elements * 2);
  b.resize(elements * 2);
  return b;
}

std::vector<uint8_t> patterns(nz_dtype dtype, size_t count) {
  size_t elem = nz_dtype_size(dtype);
  std::vector<uint8_t> out(count * elem);
  std::mt19937 rng(5);
  for (size_t i = 0; i < count; ++i) {
    uint32_t v = elem == 2 ? static_cast<uint32_t>((i * 40503u + 17u) & 0xFFFFu) : static_cast<uint32_t>(rng());
    if (elem == 4 && i % 5 == 0) v = (i % 2 ? 0x7F800000u : 0xFFC00123u) ^ (i % 3 == 0 ? 0x80000000u : 0);
    std::memcpy(&out[i * elem], &v, elem);
  }
  return out;
}

std::vector<uint8_t> small_weights(nz_dtype dtype, size_t count) {
  size_t elem = nz_dtype_size(dtype);
  std::vector<uint8_t> out(count * elem);
  std::mt19937 rng(9);
  std::normal_distribution<float> d(0.0f, 0.05f);
  for (size_t i = 0; i < count; ++i) {
    float f = d(rng);
    uint32_t u = std::bit_cast<uint32_t>(f);
    if (dtype == NZ_FP32) std::memcpy(&out[i * 4], &u, 4);
    else if (dtype == NZ_BF16) { uint16_t h = static_cast<uint16_t>(u >> 16); std::memcpy(&out[i * 2], &h, 2); }
    else { _Float16 h = static_cast<_Float16>(f); std::memcpy(&out[i * 2], &h, 2); }
  }
  return out;
}

TEST(KernelEmulation, HashMatchesCpu) {
  std::vector<uint8_t> data = patterns(NZ_FP32, 3001);
  for (size_t off : {0, 1, 2}) {
    for (size_t len : {0, 3, 4, 4097, 12000}) {
      EXPECT_EQ(emu_hash(data.data() + off, len, 3), nz_hash(data.data() + off, len)) << off << " " << len;
    }
  }
}

TEST(KernelEmulation, RealBf16Lossless) {
  check(real_bf16(5000), options(NZ_BF16, NZ_LOSSLESS, 0, 0, 1024), "bf16 real, chunk 1024");
  check(real_bf16(70000), options(NZ_BF16, NZ_LOSSLESS, 0, 0, 0), "bf16 real, default chunk");
  // 20 chunks over 2 blocks x 4 warps: each warp strides over several chunks.
  check(real_bf16(20000), options(NZ_BF16, NZ_LOSSLESS, 0, 0, 1024), "bf16 real, 20 chunks");
}

TEST(KernelEmulation, LosslessEveryDtype) {
  for (nz_dtype d : {NZ_BF16, NZ_FP16, NZ_FP32}) {
    check(small_weights(d, 3333), options(d, NZ_LOSSLESS, 0, 0, 1024), fmt::format("weights dtype {}", int(d)));
    check(patterns(d, 2500), options(d, NZ_LOSSLESS, 0, 0, 1024), fmt::format("patterns dtype {}", int(d)));
  }
}

TEST(KernelEmulation, SmallAndEmpty) {
  for (size_t n : {0, 1, 31, 33}) check(small_weights(NZ_BF16, n), options(NZ_BF16, NZ_LOSSLESS, 0, 0, 1024), fmt::format("n={}", n));
}

TEST(KernelEmulation, ProbBits) {
  for (uint32_t p : {8u, 13u, 15u}) check(real_bf16(3000), options(NZ_BF16, NZ_LOSSLESS, 0, 0, 1024, p), fmt::format("P={}", p));
  for (nz_dtype d : {NZ_FP16, NZ_FP32}) {
    for (uint32_t p : {9u, 14u}) {
      check(small_weights(d, 2200), options(d, NZ_LOSSLESS, 0, 0, 1024, p), fmt::format("dtype {} P={}", int(d), p));
    }
  }
}

TEST(KernelEmulation, Lossy) {
  for (nz_dtype d : {NZ_BF16, NZ_FP16, NZ_FP32}) {
    for (uint32_t k : {0u, 1u, 3u}) {
      for (uint32_t b : {0u, 2u, 64u}) {
        check(small_weights(d, 2100), options(d, NZ_LOSSY, k, b, 1024), fmt::format("weights d={} K={} B={}", int(d), k, b));
        check(patterns(d, 2100), options(d, NZ_LOSSY, k, b, 1024), fmt::format("patterns d={} K={} B={}", int(d), k, b));
      }
    }
  }
}

// The decoder's alignment contract: src 8-byte aligned, dst aligned to the
// element (2-byte dtypes with dst % 4 == 2 store u16s; the hash is unchanged).
TEST(KernelEmulation, MinimallyAlignedBuffers) {
  for (nz_dtype d : {NZ_BF16, NZ_FP16, NZ_FP32}) {
    const size_t count = 2501;  // odd: a lone last element
    std::vector<uint8_t> input = small_weights(d, count);
    nz_options o = options(d, NZ_LOSSLESS, 0, 0, 1024);
    std::vector<uint8_t> packed(nz_compress_bound(count, &o));
    size_t len = 0;
    ASSERT_EQ(nz_compress(input.data(), count, &o, packed.data(), packed.size(), &len), NZ_OK);
    packed.resize(len);
    const size_t elem = nz_dtype_size(d);
    for (size_t src_shift : {8u, 24u}) {
      for (size_t dst_shift : {elem, 2 * elem + 4}) {
        std::vector<uint8_t> out = emu_decode(packed, input.size(), 2, nullptr, src_shift, dst_shift);
        EXPECT_EQ(out, input) << "dtype " << int(d) << " src+" << src_shift << " dst+" << dst_shift;
      }
    }
    // Below the contract the kernel refuses (status, trap) instead of faulting.
    uint32_t status = 0;
    emu_decode(packed, input.size(), 2, &status, 4, 0);
    EXPECT_EQ(status, uint32_t(NZ_ERR_INVALID_ARGUMENT));
    if (elem == 4) {
      status = 0;
      emu_decode(packed, input.size(), 2, &status, 0, 2);
      EXPECT_EQ(status, uint32_t(NZ_ERR_INVALID_ARGUMENT));
    }
  }
}

}  // namespace

namespace {

// Corrupted buffers: the emulated decoder must report an error (status word)
// wherever the CPU decoder does.
TEST(KernelEmulation, CorruptionIsDetected) {
  std::vector<uint8_t> input = real_bf16(4500);
  nz_options o = options(NZ_BF16, NZ_LOSSLESS, 0, 0, 1024);
  std::vector<uint8_t> good(nz_compress_bound(4500, &o));
  size_t len = 0;
  ASSERT_EQ(nz_compress(input.data(), 4500, &o, good.data(), good.size(), &len), NZ_OK);
  good.resize(len);
  std::mt19937 rng(3);
  int detected = 0, tried = 0, same_code = 0;
  for (int i = 0; i < 40; ++i) {
    std::vector<uint8_t> bad = good;
    size_t at = i < 8 ? size_t(i) * 8 : rng() % bad.size();
    bad[at] ^= uint8_t(1u << (rng() % 8));
    std::vector<uint8_t> out(9000);
    nz_status cpu = nz_decompress(bad.data(), bad.size(), out.data(), out.size(), 1);
    if (cpu == NZ_OK) continue;  // a flip the format cannot see (none expected)
    ++tried;
    uint32_t status = 0;
    emu_decode(bad, 9000, 2, &status);
    EXPECT_NE(status, 0u) << "flip at byte " << at << " not detected (CPU: " << nz_error_string(cpu) << ")";
    detected += status != 0;
    same_code += status == uint32_t(cpu);
  }
  EXPECT_GT(tried, 30);
  EXPECT_EQ(detected, tried);
  // Which check fires first may differ (the GPU checks chunks in parallel),
  // so equal codes are reported, not required.
  std::printf("[ info ] %d of %d corruptions got the CPU's status code\n", same_code, tried);
}

}  // namespace
