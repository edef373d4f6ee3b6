// config.h: the runtime's configuration, read once from the environment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "neuzip/neuzip.h"

namespace nz::rt {

struct Config {
  bool enabled = true;               // NEUZIP=0 turns the runtime into pure pass-through
  nz_mode mode = NZ_LOSSLESS;        // NEUZIP_MODE=lossless | lossy:K[:B]
  uint32_t lossy_kept_bits = 0;
  uint32_t lossy_block = NZ_DEFAULT_BLOCK;
  int htod_dtype = 0;                // NEUZIP_LOSSY_HTOD_DTYPE: NZ_TAG_* declared for HtoD tags
  std::optional<size_t> staging_bytes;  // NEUZIP_STAGING_MB; unset = adaptive
  // NEUZIP_LOOKAHEAD_MB: how far ahead of the launching thread, in bytes of the
  // learned staging order, the look-ahead stager thread keeps ranges staged;
  // `auto`: half a fixed staging budget, else about two layers. Unset or 0:
  // no stager thread (the launching thread decodes one range ahead).
  static constexpr size_t kLookaheadAuto = ~size_t{0};
  std::optional<size_t> lookahead_bytes;
  // NEUZIP_HANDOFF_MB: page-locked host memory for the change test of staging
  // handed over on the device (handoff.h): how far the host may run ahead of
  // the device evicting unchanged ranges without waiting. Unset: twice a fixed
  // budget; 0: never hand over (evictions wait on the host). Only with a fixed budget.
  std::optional<size_t> handoff_bytes;
  // NEUZIP_PARK_MB: page-locked host memory for ranges evicted when the
  // device has no room to encode them (Runtime::park), taken at the first
  // such eviction; 0: never park (they stay staged).
  size_t park_bytes = size_t{64} << 20;
  // NEUZIP_KEEP_STORES_MB: page-locked host memory for copies of the stores
  // that staged ranges expected to come back unchanged give up under
  // pressure (Runtime::keep_store_copy): their eviction copies a store back
  // instead of encoding the range again. Unset: twice a fixed budget (at
  // least 64 MiB), else 256 MiB, taken at the first such store; 0: never
  // (encoded again).
  std::optional<size_t> keep_store_bytes;
  // NEUZIP_STAGING_HANDLES=pages: on a driver that maps whole handles only
  // (the H200's), a fixed budget is made up front as one handle per page and
  // every run is mapped from them (staging_pool.h, the granular arena): no
  // cuMemCreate after the first step, at one cuMemMap per page. `runs` (the
  // default): a handle of each run's size, reused by runs of that size.
  bool staging_pages = false;
  // Rewritten runs are encoded on the device when evicted (handoff_encode.cpp);
  // NEUZIP_ENCODE_HANDOFF=0: on the host, as before.
  bool encode_handoffs = true;
  // NEUZIP_EVICT: `forecast` evicts the staged range needed again last
  // (reuse_forecast.h) while iterations are regular; `lru`: least recently
  // used, always (as before).
  bool evict_by_forecast = true;
  // NEUZIP_WAIT_PATIENCE_MS: how long an eviction waits on the host for the
  // queued uses of a staged range before it gives up on that range and stages
  // over the budget instead (Runtime::wait_run_uses). A stream can be blocked
  // on work the program has not launched yet (cuStreamWaitValue on a flag a
  // later launch sets, a kernel or host function spinning on one): waiting for
  // it from the launching thread would never end.
  uint64_t wait_patience_ms = 5000;
  size_t min_bytes = size_t{2} << 20;   // NEUZIP_MIN_BYTES: smallest cuMemAlloc served by VMM
  // The device whose memory is served (NEUZIP_DEVICE, else LOCAL_RANK as
  // torchrun, accelerate and DeepSpeed set it with WORLD_SIZE > 1: each rank
  // uses that device):
  // allocations on other devices before it pass through instead of claiming
  // the runtime (a stray 2 MiB tensor on device 0 before set_device would).
  // Ignored when the program sees fewer devices. Unset: the first that allocates.
  std::optional<int> device;
  const char* device_source = "";       // the variable it came from
  // This process's rank in a distributed run (RANK, else LOCAL_RANK, when
  // WORLD_SIZE > 1): nztrace names the process by it.
  std::optional<uint64_t> rank;
  // NEUZIP_LONG_LIVED: a range filled after the program started computing is
  // compressed once launches used it in this many iterations without it being
  // refilled (an iteration ends when the program copies from the host again).
  // A caching allocator recycles blocks, so each step's input batch lands in
  // memory that was tagged: it must not be compressed and decoded every step.
  // 0 = compress whatever is filled from the host as soon as it can be.
  // Ranges filled before the first launch (model loading) are compressed at
  // once, as are all ranges when memory runs short, with a fixed staging
  // budget, after nz_tag and at nz_flush.
  uint32_t long_lived_uses = 2;
  // NEUZIP_CHUNK_ELEMS: elements per independently decodable chunk of the
  // compressed store. A GPU decodes one chunk per warp, and a 2 MiB unit of
  // bf16 at the codec's default 64 Ki elements is only 16 chunks (16 warps):
  // far too few to fill a GPU. 8 Ki gives 128 warps per unit for about 1 % of
  // size (docs/KERNELS.md); to be tuned on an H100.
  uint32_t chunk_elems = 8192;
  int log_level = 0;                 // NEUZIP_LOG
  std::string trace_path;            // NEUZIP_TRACE
  bool trace_run = false;            // NEUZIP_TRACE_RUN=1 (nztrace): trace_path is this run's, fresh (Trace::open)
  bool report = false;               // NEUZIP_REPORT=1: summary line at exit
  // NEUZIP_FAULT_INJECT=store: every store is damaged right after it is
  // written (fault injection, for tests of the checksum path through the
  // real shim; never set it in production).
  bool corrupt_stores = false;
  // NEUZIP_OBSERVE=1: allocate, tag and trace as usual but never compress, so
  // that `nztrace --compare` measures the program without compression under
  // the same allocator and the same trace.
  bool observe = false;
  // NEUZIP_TMA_EXTENTS=1: a launch reaching a range only through a TMA
  // descriptor stages the descriptor's extent (tensor_maps.h), not the rest
  // of its cluster. Off until a GPU run has confirmed it (RESULTS §6.8).
  bool tma_extents = false;
  // NEUZIP_TAG_EXTENTS=1: a range declared by nz_tag is a tensor that
  // kernels read only within (an interior pointer reaches its units, not the
  // later tags of its cluster). The program's promise: a kernel reading
  // across declared tensors (an FSDP flat parameter read whole while its
  // views are declared) would meet unmapped pages. Opt-in.
  bool tag_extents = false;
  // NEUZIP_NCCL=0: NCCL's calls are forwarded untouched (no staging of the
  // buffers collectives read and write, no pins for registered buffers). A
  // collective that then reads a compressed buffer faults, as without
  // neuzip's NCCL hooks: the tests use it to prove they can fail.
  bool nccl_hooks = true;
  // NEUZIP_COMPRESS: comma-separated classes of buffers to compress.
  // `weights` (always on): ranges filled from the host. `optimizer` (opt-in):
  // also large allocations the host never filled that launches use in
  // `long_lived_uses` iterations (optimizer moments, fp32 master weights,
  // kept gradients), found without host-to-device tags; lossless always.
  bool compress_idle = false;
  // Smallest such allocation: smaller ones are a caching allocator's small
  // segments (activations, recycled every step).
  size_t idle_min_bytes = size_t{8} << 20;

  // Codec options for a range of `dtype`, lossy when `lossy` (and the mode is lossy).
  nz_options codec_options(nz_dtype dtype, bool lossy) const;
};

// Reads the variables through `getenv_fn` (so tests need not touch the real
// environment). A bad value logs one "neuzip:" line and keeps the default.
Config parse_config(const std::function<const char*(const char*)>& getenv_fn);
Config config_from_environment();

}  // namespace nz::rt
