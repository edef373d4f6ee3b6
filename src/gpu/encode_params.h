// encode_params.h: nz_options -> the encoder's launch arguments and workspace
// layout, shared by both backends (the same defaults and checks as the CPU
// encoder, so both produce the same header).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernel_abi.h"
#include "neuzip/neuzip.h"

namespace nz::gpu {

// Fills everything in `args` except the device addresses (src, dst, dst_cap,
// out_len, ws.base, ws.bytes). Returns false with `error` on invalid options.
bool resolve_encode_params(uint64_t element_count, const nz_options& opts, kernels::EncodeArgs& args,
                           std::string& error);

// Workspace bytes the CUDA encoder needs for the resolved `args` (sets the
// ws.*_off fields and ws.scratch_words).
size_t plan_encode_workspace(kernels::EncodeArgs& args);

// The zeroed prefix of the workspace (histogram, table, control) the host
// clears before the first encode kernel.
size_t encode_workspace_zero_prefix(const kernels::EncodeArgs& args);

}  // namespace nz::gpu
