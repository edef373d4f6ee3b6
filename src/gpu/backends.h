// backends.h: the two DeviceCodec implementations, created by DeviceCodec::create.
#pragma once

#include <memory>
#include <string>

#include "gpu/device_codec.h"
#include "kernel_abi.h"

namespace nz::gpu {

// The CUDA kernels embedded in this library. Null + error when the library
// was built without nvcc or the fatbin has no code for this device.
std::unique_ptr<DeviceCodec> create_cuda_codec(const DriverApi& api, CUdevice device, std::string& error);

// The same backend on another module image with the same kernels. Tests use
// it to run the CUDA backend's host code on the simulator, with the kernels'
// code emulated on the CPU (tests/gpu/emu).
std::unique_ptr<DeviceCodec> create_cuda_codec_from_image(const DriverApi& api, CUdevice device, const void* image,
                                                          std::string& error);

// The simulator's host-kernel module (kernels/sim), found by
// find_sim_module_path().
std::unique_ptr<DeviceCodec> create_sim_codec(const DriverApi& api, std::string& error);

// NEUZIP_SIM_MODULE if set, else libnzsim_codec.so next to the library that
// holds this code, then in ../kernels/sim/ and ../../kernels/sim/ from there.
// Empty when none exists.
std::string find_sim_module_path();

// Copies `jobs` (1..kMaxBatch of them) into the batch kernel's arguments;
// false when there are none or too many.
bool fill_batch_args(std::span<const DeviceCodec::DecodeJob> jobs, CUdeviceptr status_word,
                     kernels::DecodeBatchArgs& out);

// The same for a guard batch (GuardBatchArgs).
bool fill_guard_args(std::span<const DeviceCodec::GuardJob> jobs, CUdeviceptr flags, kernels::GuardBatchArgs& out);

// True when the build embedded GPU kernels.
bool built_with_gpu_kernels();

}  // namespace nz::gpu
