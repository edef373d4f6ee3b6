// work.h: the work descriptor of the test NCCL. As in the real NCCL, its
// kernel gets only the descriptor's address; the buffers it reads and writes
// are in the descriptor, in memory the kernel reads (here host-pinned memory
// mapped for the device, as NCCL's work FIFO is), never in the launch
// parameters. A launch-parameter scan therefore cannot see them.
#pragma once

#include <cstdint>

namespace fake_nccl {

enum class WorkKind : uint32_t {
  all_reduce, broadcast, reduce, all_gather, reduce_scatter, send_recv,
  touch,  // reads a registered buffer outside any collective (as peers may, through its registration)
  all_to_all, gather, scatter,  // NCCL 2.28
  put_signal,   // one-sided: local (send) into a window (recv), then one signal
  signal,       // one signal, no data
  wait_signal,  // spins until the signal word reaches `target`
};

struct Work {
  WorkKind kind;
  uint32_t type;    // ncclDataType_t
  uint32_t op;      // ncclRedOp_t
  uint32_t nranks;
  uint32_t rank;
  uint32_t pad = 0;
  uint64_t count;   // elements: per rank for all-gather (send) and reduce-scatter (recv)
  uint64_t send;    // device addresses
  uint64_t recv;
  uint64_t signal = 0;  // put_signal, signal, wait_signal: the signal word (host-pinned, mapped)
  uint64_t target = 0;  // wait_signal: the count to wait for
  uint32_t root = 0;    // gather, scatter
  uint32_t pad2 = 0;
};

// What a rank that is not a scatter's root receives (its root is a peer).
inline constexpr unsigned char kScatteredByte = 0x5a;

// Name of the one kernel in the module (libnccl.so.2 is its own simulator module).
inline constexpr const char* kKernelName = "fake_nccl_work";

}  // namespace fake_nccl
