// fake_kernel.cpp: the test NCCL's device side, a simulator module
// (tests/sim/nzsim.h) built into libnccl.so.2 itself. One kernel runs every
// kind of work: it reads the descriptor from the address it is given, then
// moves the data between the buffers named there. With one rank every
// reduction of a single contribution is that contribution (sum, prod, max,
// min, and avg = x / 1), so each collective is a move of count x size bytes,
// in place or not; the bytes still go through the kernel, touching the
// buffers' pages as NCCL's kernels do. With more ranks (this process is rank
// 0; its peers are mirrors that make the same calls with the same data, and
// reductions are refused), each moving collective reads and writes every
// byte rank 0 would: all of an all-to-all's or a scatter root's sendbuff,
// every chunk of an all-gather's or a gather root's recvbuff.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>

#include "nccl_abi.h"
#include "nzsim.h"
#include "work.h"

namespace fake_nccl {
namespace {

// Moves `bytes` from src to dst; in place, NCCL still reads and writes every
// page (memmove may skip a copy onto itself).
void move(unsigned char* dst, const unsigned char* src, size_t bytes) {
  if (dst != src) {
    std::memmove(dst, src, bytes);
    return;
  }
  volatile unsigned char* p = dst;
  for (size_t i = 0; i < bytes; i += 4096) p[i] = p[i];
  if (bytes > 0) p[bytes - 1] = p[bytes - 1];
}

// Reads every page of [p, p + bytes), as a send to peers does.
void touch(const unsigned char* p, size_t bytes) {
  const volatile unsigned char* v = p;
  unsigned char sink = 0;
  for (size_t i = 0; i < bytes; i += 4096) sink = static_cast<unsigned char>(sink + v[i]);
  if (bytes > 0) sink = static_cast<unsigned char>(sink + v[bytes - 1]);
  (void)sink;
}

// A signal word, in host-pinned memory mapped for the device.
uint64_t* signal_word(const Work* w) { return reinterpret_cast<uint64_t*>(w->signal); }

int wait_signal(const Work* w) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (__atomic_load_n(signal_word(w), __ATOMIC_ACQUIRE) < w->target) {
    if (std::chrono::steady_clock::now() > deadline) return 1;  // a trap: no signal came
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return 0;
}

int run_work(const nzsim_launch* l) {
  const auto* w = *static_cast<const Work* const*>(l->params[0]);
  const size_t size = nz::nccl::type_size(static_cast<ncclDataType_t>(w->type));
  if (size == 0 || w->nranks == 0 || w->rank != 0) return 1;  // a trap: this process is rank 0
  const size_t bytes = w->count * size;
  const size_t n = w->nranks;
  const bool root = w->root == w->rank;
  auto* recv = reinterpret_cast<unsigned char*>(w->recv);
  const auto* send = reinterpret_cast<const unsigned char*>(w->send);
  switch (w->kind) {
    case WorkKind::all_reduce:
    case WorkKind::reduce:
    case WorkKind::broadcast:
    case WorkKind::send_recv:
      move(recv, send, bytes);
      return 0;
    case WorkKind::all_gather:  // recv[r] = peer r's send = ours
    case WorkKind::gather:      // the same, on the root only
      if (w->kind == WorkKind::gather && !root) {
        touch(send, bytes);
        return 0;
      }
      for (size_t r = 0; r < n; ++r) move(recv + r * bytes, send, bytes);
      return 0;
    case WorkKind::reduce_scatter:  // recv = send[rank]
      move(recv, send + w->rank * bytes, bytes);
      return 0;
    case WorkKind::all_to_all:  // send[r] goes to peer r; recv[r] = peer r's send[rank] = our send[rank]
      touch(send, n * bytes);
      for (size_t r = 0; r < n; ++r) move(recv + r * bytes, send + w->rank * bytes, bytes);
      return 0;
    case WorkKind::scatter:  // the root sends send[r] to peer r; each receives its chunk
      if (root) {
        touch(send, n * bytes);
        move(recv, send + w->rank * bytes, bytes);
      } else {
        std::memset(recv, kScatteredByte, bytes);  // the root's data is not in this process
      }
      return 0;
    case WorkKind::touch:
      touch(send, bytes);
      return 0;
    case WorkKind::put_signal:
      move(recv, send, bytes);
      __atomic_fetch_add(signal_word(w), 1, __ATOMIC_RELEASE);
      return 0;
    case WorkKind::signal:
      __atomic_fetch_add(signal_word(w), 1, __ATOMIC_RELEASE);
      return 0;
    case WorkKind::wait_signal:
      return wait_signal(w);
  }
  return 1;
}

const nzsim_param kParams[] = {{0, 8}};
const nzsim_kernel kKernels[] = {{kKernelName, 1, kParams, run_work}};

}  // namespace
}  // namespace fake_nccl

extern "C" [[gnu::visibility("default")]] const nzsim_kernel* NZSIM_MODULE_ENTRY(unsigned* count, unsigned* abi) {
  *count = 1;
  *abi = NZSIM_ABI_VERSION;
  return fake_nccl::kKernels;
}
