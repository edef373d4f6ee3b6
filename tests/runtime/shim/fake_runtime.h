// fake_runtime.h: what the stand-in runtime (fake_runtime.cpp) records, for the
// shim's tests. Exported from the test build of the shim as nz_fake_runtime_state.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>

struct FakeRuntimeState {
  int initialised;              // on_driver_initialised calls
  int real_cuinit_present;      // the table it received had a real cuInit
  int launches;                 // before_launch calls
  int after_launches;
  int transfers;                // before_transfer calls
  int allocs;                   // mem_alloc calls
  int frees;                    // mem_free calls
  int tensor_maps;
  // The last launch
  void* last_func;
  void* last_kernel;
  CUstream last_launch_stream;
  bool last_launch_per_thread;
  char last_launch_api[32];
  // The last transfer
  size_t last_span_count;
  CUdeviceptr last_span_ptr[2];
  size_t last_span_bytes[2];
  int last_span_access[2];
  bool last_host_to_device;
  bool last_per_thread;
  bool last_is_async;
  char last_transfer_api[32];
};

extern "C" FakeRuntimeState* nz_fake_runtime_state();
