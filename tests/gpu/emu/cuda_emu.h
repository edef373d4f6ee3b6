// cuda_emu.h: just enough of the CUDA device environment to run the kernels'
// .cuh building blocks on the CPU, one std::thread per GPU thread.
//
// Why: there is no GPU in CI, and the simulator backend runs the CPU codec,
// not our kernels. This lets a test execute the real kernel code (warp
// shuffles, ballots, shared memory, barriers) and compare it bit for bit with
// the CPU codec. Blocks run one after another; the threads of a block run
// concurrently, every warp collective is a rendezvous of its 32 threads (so
// the kernels must call them warp-converged, as CUDA requires anyway), and
// __shared__ variables are function statics (one block at a time).
// It checks logic, not performance or the CUDA memory model.
#pragma once

#include <atomic>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define __device__
#define __host__
#define __global__
#define __noinline__
#define __forceinline__
#define __launch_bounds__(...)
#define __shared__ static

// CUDA's 16-byte vector type (the guard copies with it).
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

struct nz_emu_dim3 {
  unsigned x = 1, y = 1, z = 1;
};

struct EmuTrap;

namespace nz::emu {

struct Warp {
  std::barrier<> bar{32};
  uint64_t slots[32] = {};
};

struct Block {
  explicit Block(unsigned threads) : bar(threads), warps(threads / 32) {
    for (auto& w : warps) w = std::make_unique<Warp>();
  }
  std::barrier<> bar;
  std::vector<std::unique_ptr<Warp>> warps;
};

inline thread_local Block* current_block = nullptr;

}  // namespace nz::emu

inline thread_local nz_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace nz::emu {

inline Warp& my_warp() { return *current_block->warps[threadIdx.x / 32]; }
inline unsigned my_lane() { return threadIdx.x & 31u; }

// All 32 lanes publish a value, then each reads what it needs.
template <class T, class Read>
T exchange(T v, Read read) {
  Warp& w = my_warp();
  w.slots[my_lane()] = static_cast<uint64_t>(v);
  w.bar.arrive_and_wait();
  T r = read(w.slots);
  w.bar.arrive_and_wait();
  return r;
}

// Runs `body` on every thread of a grid of `grid` blocks of `block` threads.
template <class Body>
void launch(unsigned grid, unsigned block, Body body) {
  for (unsigned b = 0; b < grid; ++b) {
    Block state(block);
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; ++t) {
      threads.emplace_back([&, b, t] {
        threadIdx = {t, 0, 0};
        blockIdx = {b, 0, 0};
        blockDim = {block, 1, 1};
        gridDim = {grid, 1, 1};
        current_block = &state;
        try {
          body();
        } catch (const EmuTrap&) {
        }
      });
    }
    for (auto& th : threads) th.join();
  }
}

}  // namespace nz::emu

inline void __syncthreads() { nz::emu::current_block->bar.arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xFFFFFFFFu) { nz::emu::my_warp().bar.arrive_and_wait(); }
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}
// A trap ends the calling thread (not the grid, unlike a GPU): it leaves its
// warp's and block's barriers so the other threads are not left waiting, and
// is counted; callers check trapped().
inline std::atomic<unsigned> trap_count{0};
struct EmuTrap {};
[[noreturn]] inline void __trap() {
  trap_count.fetch_add(1);
  nz::emu::my_warp().bar.arrive_and_drop();
  nz::emu::current_block->bar.arrive_and_drop();
  throw EmuTrap{};
}
inline unsigned trapped() { return trap_count.load(); }

template <class T>
T __shfl_sync(unsigned, T v, int src) {
  return nz::emu::exchange(v, [&](const uint64_t* s) { return static_cast<T>(s[src & 31]); });
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int d) {
  unsigned lane = nz::emu::my_lane();
  return nz::emu::exchange(v, [&](const uint64_t* s) { return static_cast<T>(s[(lane ^ unsigned(d)) & 31u]); });
}
template <class T>
T __shfl_up_sync(unsigned, T v, unsigned d) {
  unsigned lane = nz::emu::my_lane();
  return nz::emu::exchange(v, [&](const uint64_t* s) { return lane >= d ? static_cast<T>(s[lane - d]) : v; });
}
template <class T>
T __shfl_down_sync(unsigned, T v, unsigned d) {
  unsigned lane = nz::emu::my_lane();
  return nz::emu::exchange(v, [&](const uint64_t* s) { return lane + d < 32 ? static_cast<T>(s[lane + d]) : v; });
}
inline unsigned __ballot_sync(unsigned, bool p) {
  return nz::emu::exchange(uint64_t{p}, [](const uint64_t* s) {
    uint64_t m = 0;
    for (unsigned i = 0; i < 32; ++i) m |= (s[i] ? 1ull : 0ull) << i;
    return m;
  });
}
inline bool __any_sync(unsigned m, bool p) { return __ballot_sync(m, p) != 0; }
inline unsigned __reduce_or_sync(unsigned, unsigned v) {
  return static_cast<unsigned>(nz::emu::exchange(uint64_t{v}, [](const uint64_t* s) {
    uint64_t r = 0;
    for (unsigned i = 0; i < 32; ++i) r |= s[i];
    return r;
  }));
}
inline unsigned __reduce_max_sync(unsigned, unsigned v) {
  return static_cast<unsigned>(nz::emu::exchange(uint64_t{v}, [](const uint64_t* s) {
    uint64_t r = 0;
    for (unsigned i = 0; i < 32; ++i) r = s[i] > r ? s[i] : r;
    return r;
  }));
}

inline unsigned __match_any_sync(unsigned, unsigned v) {
  unsigned lane = nz::emu::my_lane();
  return static_cast<unsigned>(nz::emu::exchange(uint64_t{v}, [&](const uint64_t* s) {
    uint64_t m = 0;
    for (unsigned i = 0; i < 32; ++i) m |= (s[i] == s[lane] ? 1ull : 0ull) << i;
    return m;
  }));
}
inline int __ffs(unsigned v) { return v ? std::countr_zero(v) + 1 : 0; }
inline int __popc(unsigned v) { return std::popcount(v); }
inline int __clz(unsigned v) { return v ? std::countl_zero(v) : 32; }
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned shift) {
  uint64_t v = (uint64_t{hi} << 32) | lo;
  return static_cast<unsigned>(v >> (shift & 31u));
}
template <class T>
T __ldg(const T* p) {
  return *p;
}

template <class T, class V>
T atomicAdd(T* p, V v) {
  return std::atomic_ref<T>(*p).fetch_add(static_cast<T>(v));
}
inline unsigned atomicCAS(unsigned* p, unsigned expected, unsigned desired) {
  std::atomic_ref<unsigned>(*p).compare_exchange_strong(expected, desired);
  return expected;
}
inline unsigned atomicExch(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).exchange(v); }

// The host build uses -ffp-contract=off and round-to-nearest: plain operators
// are the _rn intrinsics.
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }
inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
inline unsigned __float2uint_rn(float f) { return static_cast<unsigned>(std::nearbyint(f)); }
struct __half {
  uint16_t bits;
};
inline __half __float2half_rn(float f) {
  _Float16 h = static_cast<_Float16>(f);
  return {std::bit_cast<uint16_t>(h)};
}
inline unsigned short __half_as_ushort(__half h) { return h.bits; }

using std::isfinite;
using std::log2;
template <class T>
T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
T max(T a, T b) {
  return a < b ? b : a;
}
