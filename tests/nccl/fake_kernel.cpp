// fake_kernel.cpp: the test NCCL's device side, a simulator module
// (tests/sim/nzsim.h) built into libnccl.so.2 itself. One kernel runs every
// kind of work: it reads the descriptor from the address it is given, then
// moves the data between the buffers named there. With one rank every
// reduction of a single contribution is that contribution (sum, prod, max,
// min, and avg = x / 1), so each collective is a move of count x size bytes,
// in place or not; the bytes still go through the kernel, touching the
// buffers' pages as NCCL's kernels do.
#include <cstring>

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

int run_work(const nzsim_launch* l) {
  const auto* w = *static_cast<const Work* const*>(l->params[0]);
  const size_t size = nz::nccl::type_size(static_cast<ncclDataType_t>(w->type));
  if (size == 0 || w->nranks != 1 || w->rank != 0) return 1;  // a trap: this NCCL has one rank
  const size_t bytes = w->count * size;
  auto* recv = reinterpret_cast<unsigned char*>(w->recv);
  const auto* send = reinterpret_cast<const unsigned char*>(w->send);
  switch (w->kind) {
    case WorkKind::all_reduce:
    case WorkKind::reduce:
    case WorkKind::broadcast:
    case WorkKind::send_recv:
      move(recv, send, bytes);
      return 0;
    case WorkKind::all_gather:  // recv[rank] = send
      move(recv + w->rank * bytes, send, bytes);
      return 0;
    case WorkKind::reduce_scatter:  // recv = send[rank]
      move(recv, send + w->rank * bytes, bytes);
      return 0;
    case WorkKind::touch: {
      const volatile unsigned char* p = send;
      unsigned char sink = 0;
      for (size_t i = 0; i < bytes; i += 4096) sink = static_cast<unsigned char>(sink + p[i]);
      (void)sink;
      return 0;
    }
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
