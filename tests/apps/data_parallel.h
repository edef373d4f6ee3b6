// data_parallel.h: `--dist ddp|fsdp`, what PyTorch's DistributedDataParallel
// and FullyShardedDataParallel ask of NCCL, for one rank (torchrun
// --nproc-per-node 1). NCCL (libnccl.so.2) is loaded at run time, as ctypes
// or vLLM's pynccl do, so minifw runs without it when --dist is not given.
//
//   ddp:  every parameter broadcast from rank 0 right after the load (in
//         place); each step the gradients all-reduced (average) in place
//         before the optimizer.
//   fsdp: the parameters' shards (all of each, with one rank) live in one
//         flat buffer (FSDP's FlatParameter; its own allocator segment once
//         above 10 MiB), filled by host-to-device copies (a sharded
//         checkpoint load); each step all-gathers the shards into the
//         parameters before the forward,
//         reduce-scatters the gradients in place, and after the optimizer
//         (which updates the gathered parameters here) reduce-scatters the
//         updated parameters into their shards, so a collective writes the
//         shards, as FSDP's sharded optimizer step does.
// With one rank each collective moves the data unchanged, so the digest of a
// --dist run equals that of the same run without it.
#pragma once

#include <cuda.h>

#include <memory>
#include <string>
#include <vector>

#include "caching_allocator.h"
#include "device_buffer.h"
#include "model.h"
#include "network.h"
#include "options.h"

namespace minifw {

class NcclLibrary;  // data_parallel.cpp: libnccl.so.2's entry points and one communicator

class DataParallel {
 public:
  // Loads NCCL and creates a one-rank communicator; FSDP also allocates and
  // fills the shards (from the loaded parameters, through the host) on `data`.
  DataParallel(DistMode mode, Model& model, CachingAllocator& allocator, CUstream data);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  void after_load(CUstream compute);                           // ddp: broadcast from rank 0
  void before_forward(CUstream compute);                       // fsdp: all-gather
  void reduce_gradients(Gradients& grads, CUstream compute);   // ddp: all-reduce, fsdp: reduce-scatter
  void after_optimizer(CUstream stream);                       // fsdp: parameters into their shards

 private:
  DistMode mode_;
  Model& model_;
  std::unique_ptr<NcclLibrary> nccl_;
  DeviceBuffer flat_shard_;           // fsdp: every parameter's shard
  std::vector<CUdeviceptr> shards_;   // fsdp: each parameter's shard in flat_shard_
};

}  // namespace minifw
