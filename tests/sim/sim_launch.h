// sim_launch.h: a kernel launch packed for the queue, shared by launches and
// graph kernel nodes (sim_graph_nodes.cpp).
#pragma once

#include <memory>
#include <vector>

#include "nzsim.h"
#include "sim_stream.h"

namespace nzsim {

// A kernel and its parameters, copied into an owned buffer (as the driver
// does at launch time); `pointers` is the kernelParams array a node's getter
// hands back.
struct KernelPayload {
  nzsim_launch launch{};
  const nzsim_kernel* desc = nullptr;
  CUfunction fn = nullptr;
  std::vector<unsigned char> buffer;
  std::vector<void*> pointers;
};

// Validates a launch's shape and packs its parameters (kernelParams or the
// `extra` buffer) as cuLaunchKernel does; `stream` may be null (a node).
CUresult pack_launch(CUfunction fn, const unsigned grid[3], const unsigned block[3], unsigned shared,
                     void** params, void** extra, std::shared_ptr<KernelPayload>& out);
// The queue item that runs it (its node answers the kernel node getters).
WorkItem kernel_item(std::shared_ptr<KernelPayload> p);

}  // namespace nzsim
