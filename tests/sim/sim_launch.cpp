// Kernel launches: the parameters are copied into an owned packed buffer at
// launch time (as the driver does), and one call of the kernel's host
// function is queued on the stream (or recorded into its capture, where the
// kernel node's getters read the packed parameters back).
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "sim_cost.h"
#include "sim_graph_nodes.h"
#include "sim_launch.h"
#include "sim_memory.h"
#include "sim_module.h"
#include "sim_stream.h"
#include "sim_va.h"

using namespace nzsim;

namespace nzsim {

CUresult pack_launch(CUfunction fn, const unsigned grid[3], const unsigned block[3], unsigned shared,
                     void** params, void** extra, std::shared_ptr<KernelPayload>& out) {
  Kernel* k = as_kernel(fn);
  if (!k) return CUDA_ERROR_INVALID_HANDLE;
  const unsigned gx = grid[0], gy = grid[1], gz = grid[2], bx = block[0], by = block[1], bz = block[2];
  if (!gx || !gy || !gz || !bx || !by || !bz) return CUDA_ERROR_INVALID_VALUE;
  if (static_cast<uint64_t>(bx) * by * bz > 1024 || bz > 64) return CUDA_ERROR_INVALID_VALUE;
  if (gy > 65535 || gz > 65535) return CUDA_ERROR_INVALID_VALUE;

  auto p = std::make_shared<KernelPayload>();
  const nzsim_kernel* desc = k->desc;
  p->desc = desc;
  p->fn = fn;
  p->buffer.resize(k->param_bytes);
  if (params) {
    for (unsigned i = 0; i < desc->param_count; ++i) {
      if (!params[i]) return CUDA_ERROR_INVALID_VALUE;
      std::memcpy(p->buffer.data() + desc->params[i].offset, params[i], desc->params[i].size);
    }
  } else if (extra) {
    const void* buf = nullptr;
    size_t size = 0;
    for (size_t i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
      if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) buf = extra[i + 1];
      else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE) size = *static_cast<size_t*>(extra[i + 1]);
      else return CUDA_ERROR_INVALID_VALUE;
    }
    if (desc->param_count && (!buf || size < k->param_bytes)) return CUDA_ERROR_INVALID_VALUE;
    if (buf) std::memcpy(p->buffer.data(), buf, std::min(size, k->param_bytes));
  } else if (desc->param_count) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  p->pointers.resize(desc->param_count);
  for (unsigned i = 0; i < desc->param_count; ++i) p->pointers[i] = p->buffer.data() + desc->params[i].offset;
  p->launch.grid = {gx, gy, gz};
  p->launch.block = {bx, by, bz};
  p->launch.shared_bytes = shared;
  p->launch.params = p->pointers.data();
  out = std::move(p);
  return CUDA_SUCCESS;
}

WorkItem kernel_item(std::shared_ptr<KernelPayload> p) {
  WorkItem item;
  item.kind = ItemKind::kernel;
  item.label = p->desc->name;
  auto node = std::make_shared<NodeParams>();
  node->type = CU_GRAPH_NODE_TYPE_KERNEL;
  node->kernel = p;
  item.node = std::move(node);
  item.body = [p] {
    count_launch();
    // With several devices: a pointer argument into memory this kernel's
    // device may not reach faults, as on a GPU (sim_memory.h).
    if (config().devices > 1 && p->launch.stream != nullptr) {
      Context* ctx = static_cast<Stream*>(p->launch.stream)->ctx;
      for (unsigned i = 0; i < p->desc->param_count; ++i) {
        if (p->desc->params[i].size != sizeof(uintptr_t)) continue;
        uintptr_t v = 0;
        std::memcpy(&v, p->launch.params[i], sizeof v);
        const char* why = "";
        if (!va_contains(v) || reachable_from_context(ctx, v, &why)) continue;
        log_error("illegal address {:#x} in {} on device {}: {}", v, p->desc->name, static_cast<int>(ctx->device), why);
        count_fault();
        return CUDA_ERROR_ILLEGAL_ADDRESS;
      }
    }
    int rc = p->desc->fn(&p->launch);
    if (rc == NZSIM_KERNEL_ILLEGAL_ADDRESS) {
      // Memory a GPU would not have reached (nzsim_device_accessible): a fault.
      count_fault();
      return CUDA_ERROR_ILLEGAL_ADDRESS;
    }
    return rc == 0 ? CUDA_SUCCESS : CUDA_ERROR_LAUNCH_FAILED;
  };
  return item;
}

}  // namespace nzsim

namespace {

CUresult launch(CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                unsigned shared, CUstream h, void** params, void** extra) {
  charge(CostedCall::kLaunch);
  NZ_REQUIRE_INIT();
  const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
  std::shared_ptr<KernelPayload> p;
  if (CUresult r = pack_launch(fn, grid, block, shared, params, extra, p); r != CUDA_SUCCESS) return r;
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (CUresult r = s->ctx->sticky.load(); r != CUDA_SUCCESS) return r;
  // A module's CUfunction is its context's: on a stream of another device's
  // context the driver refuses it ("invalid resource handle").
  if (Kernel* k = as_function(fn); k != nullptr && k->module->ctx != nullptr && k->module->ctx->device != s->ctx->device)
    return CUDA_ERROR_INVALID_HANDLE;
  p->launch.stream = s;
  submit(s, kernel_item(std::move(p)));
  return CUDA_SUCCESS;
}

}  // namespace

extern "C" {

CUresult CUDAAPI cuLaunchKernel(CUfunction fn, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                                unsigned int by, unsigned int bz, unsigned int shared, CUstream h, void** params,
                                void** extra) {
  return launch(fn, gx, gy, gz, bx, by, bz, shared, h, params, extra);
}

CUresult CUDAAPI cuLaunchKernelEx(const CUlaunchConfig* config, CUfunction fn, void** params, void** extra) {
  NZ_REQUIRE_INIT();  // the driver asks for an initialised driver before it reads anything
  if (!config) return CUDA_ERROR_INVALID_VALUE;
  // Attributes (clusters, priorities, programmatic serialisation) do not change
  // the result of a host kernel, so they are accepted and ignored.
  return launch(fn, config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX, config->blockDimY,
                config->blockDimZ, config->sharedMemBytes, config->hStream, params, extra);
}

CUresult CUDAAPI cuLaunchCooperativeKernel(CUfunction fn, unsigned int gx, unsigned int gy, unsigned int gz,
                                           unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared,
                                           CUstream h, void** params) {
  return launch(fn, gx, gy, gz, bx, by, bz, shared, h, params, nullptr);
}

}  // extern "C"
