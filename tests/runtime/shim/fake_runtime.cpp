// fake_runtime.cpp: a stand-in for src/runtime implementing hooks.h as
// pass-through plus counters, so the shim's routing can be tested on its own.
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "fake_runtime.h"
#include "neuzip/runtime.h"
#include "runtime/hooks.h"

namespace {
FakeRuntimeState g_state{};
std::mutex g_mutex;
bool g_active = false;
void copy_api(char* dst, const char* src) {
  std::strncpy(dst, src ? src : "", 31);
  dst[31] = 0;
}
}  // namespace

extern "C" FakeRuntimeState* nz_fake_runtime_state() { return &g_state; }

namespace nz::rt {

void on_driver_initialised(const RuntimeDriverApi& real) noexcept {
  std::lock_guard lock(g_mutex);
  ++g_state.initialised;
  g_state.real_cuinit_present = real.base.cuInit != nullptr;
  const char* v = std::getenv("NEUZIP");
  g_active = !(v && std::strcmp(v, "0") == 0);
}
bool active() noexcept { return g_active; }
CUresult mem_alloc(CUdeviceptr*, size_t, bool* handled) noexcept {
  ++g_state.allocs;
  *handled = false;
  return CUDA_SUCCESS;
}
CUresult mem_free(CUdeviceptr, bool* handled) noexcept {
  ++g_state.frees;
  *handled = false;
  return CUDA_SUCCESS;
}
void on_foreign_free(CUdeviceptr) noexcept {}
void on_unserved_alloc(UnservedKind, uint64_t, size_t) noexcept {}
void on_program_handle_release(CUmemGenericAllocationHandle) noexcept {}
void on_program_handle_retain(CUmemGenericAllocationHandle) noexcept {}
CUresult before_launch(const LaunchDesc& d) noexcept {
  std::lock_guard lock(g_mutex);
  ++g_state.launches;
  g_state.last_func = reinterpret_cast<void*>(d.func);
  g_state.last_kernel = reinterpret_cast<void*>(d.kernel);
  g_state.last_launch_stream = d.stream;
  g_state.last_launch_per_thread = d.per_thread_stream;
  copy_api(g_state.last_launch_api, d.api);
  return CUDA_SUCCESS;
}
void after_launch(const LaunchDesc&, CUresult) noexcept { ++g_state.after_launches; }
CUresult before_transfer(const TransferDesc& d) noexcept {
  std::lock_guard lock(g_mutex);
  ++g_state.transfers;
  g_state.last_span_count = d.span_count;
  for (size_t i = 0; i < d.span_count && i < 2; ++i) {
    g_state.last_span_ptr[i] = d.spans[i].ptr;
    g_state.last_span_bytes[i] = d.spans[i].bytes;
    g_state.last_span_access[i] = static_cast<int>(d.spans[i].access);
  }
  g_state.last_host_to_device = d.host_to_device;
  g_state.last_per_thread = d.per_thread_stream;
  g_state.last_is_async = d.is_async;
  copy_api(g_state.last_transfer_api, d.api);
  return CUDA_SUCCESS;
}
void after_transfer(const TransferDesc&, CUresult) noexcept {}
void after_event_record(CUevent, CUstream, bool) noexcept {}
void after_stream_wait_event(CUstream, bool, CUevent) noexcept {}
// NCCL hooks: the routing tests have no NCCL; the shim forwards untouched.
bool external_hooks_enabled() noexcept { return false; }
CUresult before_external(const TransferDesc&) noexcept { return CUDA_SUCCESS; }
void after_external(const TransferDesc&, ExternalOutcome) noexcept {}
void after_external_wait(CUstream) noexcept {}
void on_group_start() noexcept {}
void on_group_end(ExternalOutcome) noexcept {}
void pin_external(PinOwner, uintptr_t, CUdeviceptr, size_t, const char*) noexcept {}
void unpin_external(PinOwner, uintptr_t) noexcept {}
void on_capture_begin(CUstream) noexcept {}
void on_capture_end(CUstream, CUgraph) noexcept {}
void on_graph_instantiate(CUgraphExec, CUgraph) noexcept {}
void on_graph_exec_destroy(CUgraphExec) noexcept {}
void on_graph_destroy(CUgraph) noexcept {}
CUresult before_graph_launch(CUgraphExec, CUstream) noexcept { return CUDA_SUCCESS; }
void after_graph_launch(CUgraphExec, CUstream, bool) noexcept {}
CUresult on_graph_contents(CUgraph, const GraphContents&) noexcept { return CUDA_SUCCESS; }
CUresult on_exec_node_params(CUgraphExec, CUgraphNode, const GraphContents&) noexcept { return CUDA_SUCCESS; }
void note_graph_reads(CUgraph, CUgraphExec, const GraphContents&) noexcept {}
void on_tensor_map(const CUtensorMap*, CUdeviceptr, size_t) noexcept { ++g_state.tensor_maps; }
void on_tensor_map_replaced(const void*, const CUtensorMap*, CUdeviceptr) noexcept { ++g_state.tensor_maps; }
bool on_out_of_memory(size_t) noexcept { return false; }
bool address_range(CUdeviceptr, CUdeviceptr*, size_t*) noexcept { return false; }
bool pointer_attribute(void*, CUpointer_attribute, CUdeviceptr, CUresult*) noexcept { return false; }
bool is_managed(CUdeviceptr) noexcept { return false; }
bool set_pointer_attribute(const void*, CUpointer_attribute, CUdeviceptr, CUresult*) noexcept { return false; }
bool ipc_export(CUipcMemHandle*, CUdeviceptr, CUresult*) noexcept { return false; }
bool before_dmabuf_export(CUdeviceptr, size_t, CUresult*) noexcept { return false; }
bool ipc_open(CUdeviceptr*, const CUipcMemHandle&, unsigned, CUresult*) noexcept { return false; }
bool ipc_close(CUdeviceptr, CUresult*) noexcept { return false; }
void remember_driver_process() noexcept {}
CUresult mem_free_async(CUdeviceptr, CUstream, bool, bool* handled) noexcept {
  *handled = false;
  return CUDA_SUCCESS;
}
void on_module_unload(const void*) noexcept {}
void on_module_global(const void*, CUdeviceptr, size_t) noexcept {}
void on_context_destroy(CUcontext, CUdevice, bool) noexcept {}
void on_peer_access_enabled(CUcontext) noexcept {}
bool peer_copy_contexts(CUdeviceptr, CUdeviceptr, CUcontext*, CUcontext*) noexcept { return false; }
bool enter_served_context(CUdeviceptr, CUdeviceptr, CUstream, CUcontext*) noexcept { return false; }
void leave_served_context(CUcontext, bool, bool) noexcept {}
void note_stream_destroyed() noexcept {}
void on_graph_exec_update(CUgraphExec, CUgraph) noexcept {}
void on_sticky_error(CUresult, const char*) noexcept {}
void adjust_free_memory(size_t*, size_t) noexcept {}

}  // namespace nz::rt

extern "C" {
int nz_tag(uint64_t, size_t, int) { return NZ_RT_INACTIVE; }
int nz_untag(uint64_t, size_t) { return NZ_RT_INACTIVE; }
int nz_stats(nz_runtime_stats* out, size_t size_bytes) {
  if (!out || size_bytes < sizeof(nz_runtime_stats)) return NZ_RT_INVALID;
  std::memset(out, 0, sizeof(*out));
  out->launches_seen = static_cast<uint64_t>(g_state.launches);
  return NZ_RT_OK;
}
const char* nz_rt_error_string(int) { return "fake runtime"; }
}
