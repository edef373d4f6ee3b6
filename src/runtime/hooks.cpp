// hooks.cpp: the entry points of hooks.h, forwarding to the Runtime singleton.
// Every function is noexcept: anything unexpected inside turns into pass-through.
#include "runtime/hooks.h"

#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

void on_driver_initialised(const RuntimeDriverApi& real) noexcept { Runtime::initialise(real); }

bool active() noexcept { return Runtime::is_active(); }

bool ipc_export(CUipcMemHandle* handle, CUdeviceptr p, CUresult* result) noexcept {
  if (!Runtime::is_active()) return false;
  bool handled = false;
  *result = Runtime::get().ipc_export(handle, p, &handled);
  return handled;
}

bool before_dmabuf_export(CUdeviceptr p, size_t bytes, CUresult* result) noexcept {
  if (!Runtime::is_active()) return false;
  bool handled = false;
  *result = Runtime::get().before_dmabuf_export(p, bytes, &handled);
  return handled;
}

CUresult mem_alloc(CUdeviceptr* dptr, size_t bytes, bool* handled) noexcept {
  *handled = false;
  if (!Runtime::is_active()) return CUDA_SUCCESS;
  return Runtime::get().mem_alloc(dptr, bytes, handled);
}

CUresult mem_free(CUdeviceptr dptr, bool* handled) noexcept {
  *handled = false;
  if (!Runtime::is_active()) return CUDA_SUCCESS;
  return Runtime::get().mem_free(dptr, handled);
}

void on_foreign_free(CUdeviceptr dptr) noexcept {
  if (Runtime::is_active()) Runtime::get().on_foreign_free(dptr);
}

void on_unserved_alloc(UnservedKind kind, uint64_t key, size_t bytes) noexcept {
  if (Runtime::is_active()) Runtime::get().on_unserved_alloc(kind, key, bytes);
}

void on_program_handle_release(CUmemGenericAllocationHandle handle) noexcept {
  if (Runtime::is_active()) Runtime::get().on_unserved_release(UnservedKind::kProgramVmm, handle);
}

void on_program_handle_retain(CUmemGenericAllocationHandle handle) noexcept {
  if (Runtime::is_active()) Runtime::get().on_unserved_retain(UnservedKind::kProgramVmm, handle);
}

CUresult before_launch(const LaunchDesc& d) noexcept {
  if (!Runtime::is_active()) return CUDA_SUCCESS;
  return Runtime::get().before_launch(d);
}

void after_launch(const LaunchDesc& d, CUresult launch_result) noexcept {
  if (Runtime::is_active()) Runtime::get().after_launch(d, launch_result);
}

CUresult before_transfer(const TransferDesc& d) noexcept {
  if (!Runtime::is_active()) return CUDA_SUCCESS;
  return Runtime::get().before_transfer(d);
}

void after_transfer(const TransferDesc& d, CUresult result) noexcept {
  if (Runtime::is_active()) Runtime::get().after_transfer(d, result);
}

void after_event_record(CUevent event, CUstream stream, bool per_thread_stream) noexcept {
  if (Runtime::is_active()) Runtime::get().after_event_record(event, stream, per_thread_stream);
}

void after_stream_wait_event(CUstream stream, bool per_thread_stream, CUevent event) noexcept {
  if (Runtime::is_active()) Runtime::get().after_stream_wait_event(stream, per_thread_stream, event);
}

bool external_hooks_enabled() noexcept {
  return Runtime::is_active() && Runtime::get().external_hooks_enabled();
}

CUresult before_external(const TransferDesc& d) noexcept {
  if (!Runtime::is_active()) return CUDA_SUCCESS;
  return Runtime::get().before_external(d);
}

void after_external(const TransferDesc& d, ExternalOutcome outcome) noexcept {
  if (Runtime::is_active()) Runtime::get().after_external(d, outcome);
}

void on_group_start() noexcept {
  if (Runtime::is_active()) Runtime::get().on_group_start();
}

void on_group_end(ExternalOutcome outcome) noexcept {
  if (Runtime::is_active()) Runtime::get().on_group_end(outcome);
}

void after_external_wait(CUstream stream) noexcept {
  if (Runtime::is_active()) Runtime::get().after_external_wait(stream);
}

void pin_external(PinOwner kind, uintptr_t owner, CUdeviceptr ptr, size_t bytes, const char* api) noexcept {
  if (Runtime::is_active()) Runtime::get().pin_external(kind, owner, ptr, bytes, api);
}

void unpin_external(PinOwner kind, uintptr_t owner) noexcept {
  if (Runtime::is_active()) Runtime::get().unpin_external(kind, owner);
}

void on_capture_begin(CUstream stream) noexcept {
  if (Runtime::is_active()) Runtime::get().on_capture_begin(stream);
}

void on_capture_end(CUstream stream, CUgraph graph) noexcept {
  if (Runtime::is_active()) Runtime::get().on_capture_end(stream, graph);
}

void on_graph_instantiate(CUgraphExec exec, CUgraph graph) noexcept {
  if (Runtime::is_active()) Runtime::get().on_graph_instantiate(exec, graph);
}

void on_graph_exec_destroy(CUgraphExec exec) noexcept {
  if (Runtime::is_active()) Runtime::get().on_graph_exec_destroy(exec);
}

void on_graph_destroy(CUgraph graph) noexcept {
  if (Runtime::is_active()) Runtime::get().on_graph_destroy(graph);
}

CUresult before_graph_launch(CUgraphExec exec, CUstream stream) noexcept {
  if (!Runtime::is_active()) return CUDA_SUCCESS;
  return Runtime::get().before_graph_launch(exec, stream);
}

void on_tensor_map(const CUtensorMap* map, CUdeviceptr global_address, size_t bytes) noexcept {
  if (Runtime::is_active()) Runtime::get().on_tensor_map(map, global_address, bytes);
}
void on_tensor_map_replaced(const void* before, const CUtensorMap* map, CUdeviceptr global_address) noexcept {
  if (Runtime::is_active()) Runtime::get().on_tensor_map_replaced(before, map, global_address);
}

bool on_out_of_memory(size_t bytes_wanted) noexcept {
  if (!Runtime::is_active()) return false;
  return Runtime::get().on_out_of_memory(bytes_wanted);
}

bool address_range(CUdeviceptr p, CUdeviceptr* base, size_t* size) noexcept {
  return Runtime::is_active() && Runtime::get().address_range(p, base, size);
}

bool pointer_attribute(void* data, CUpointer_attribute attribute, CUdeviceptr p, CUresult* result) noexcept {
  return Runtime::is_active() && Runtime::get().pointer_attribute(data, attribute, p, result);
}

bool set_pointer_attribute(const void* value, CUpointer_attribute attribute, CUdeviceptr p, CUresult* result) noexcept {
  return Runtime::is_active() && Runtime::get().set_pointer_attribute(value, attribute, p, result);
}

bool is_managed(CUdeviceptr p) noexcept { return Runtime::is_active() && Runtime::get().is_managed(p); }

CUresult mem_free_async(CUdeviceptr dptr, CUstream stream, bool per_thread, bool* handled) noexcept {
  *handled = false;
  if (!Runtime::is_active()) return CUDA_SUCCESS;
  return Runtime::get().mem_free_async(dptr, stream, per_thread, handled);
}

void on_module_unload(const void* module) noexcept {
  if (Runtime::is_active()) Runtime::get().on_module_unload(module);
}

void on_module_global(const void* module, CUdeviceptr begin, size_t bytes) noexcept {
  if (Runtime::is_active()) Runtime::get().on_module_global(module, begin, bytes);
}

void on_context_destroy(CUcontext ctx, CUdevice device, bool primary_reset) noexcept {
  if (Runtime::is_active()) Runtime::get().on_context_destroy(ctx, device, primary_reset);
  // After the runtime dropped the uses that held them. A reset primary
  // context keeps its handle.
  if (CUcontext gone = primary_reset ? active_primary_context(device) : ctx) forget_context_events(gone);
}

void on_peer_access_enabled(CUcontext peer) noexcept {
  if (Runtime::is_active()) Runtime::get().on_peer_access_enabled(peer);
}

bool peer_copy_contexts(CUdeviceptr dst, CUdeviceptr src, CUcontext* dctx, CUcontext* sctx) noexcept {
  return Runtime::is_active() && Runtime::get().peer_copy_contexts(dst, src, dctx, sctx);
}

bool enter_served_context(CUdeviceptr a, CUdeviceptr b, CUstream stream, CUcontext* restore) noexcept {
  return Runtime::is_active() && Runtime::get().enter_served_context(a, b, stream, restore);
}

void leave_served_context(CUcontext restore, bool drain, bool per_thread) noexcept {
  if (drain) {
    const detail::RelaxedCaptureScope relaxed;  // another thread's global capture stays valid
    driver().base.cuStreamSynchronize(per_thread ? CU_STREAM_PER_THREAD : CU_STREAM_LEGACY);
  }
  if (restore != nullptr) driver().base.cuCtxSetCurrent(restore);
}

void after_graph_launch(CUgraphExec exec, CUstream stream, bool per_thread_stream) noexcept {
  if (Runtime::is_active()) Runtime::get().after_graph_launch(exec, stream, per_thread_stream);
}

CUresult on_graph_contents(CUgraph graph, const GraphContents& c) noexcept {
  return Runtime::is_active() ? Runtime::get().on_graph_contents(graph, c) : CUDA_SUCCESS;
}

CUresult on_exec_node_params(CUgraphExec exec, CUgraphNode node, const GraphContents& c) noexcept {
  return Runtime::is_active() ? Runtime::get().on_exec_node_params(exec, node, c) : CUDA_SUCCESS;
}

void note_graph_reads(CUgraph graph, CUgraphExec exec, const GraphContents& c) noexcept {
  if (Runtime::is_active()) Runtime::get().note_graph_reads(graph, exec, c);
}

void on_graph_exec_update(CUgraphExec exec, CUgraph graph) noexcept {
  if (Runtime::is_active()) Runtime::get().on_graph_instantiate(exec, graph);
}

void on_sticky_error(CUresult result, const char* api) noexcept {
  if (Runtime::is_active()) Runtime::get().on_sticky_error(result, api);
}

void adjust_free_memory(size_t* free, size_t total) noexcept {
  if (Runtime::is_active()) Runtime::get().adjust_free_memory(free, total);
}

}  // namespace nz::rt
