// handoff.h: evicting a staged run without waiting for the device.
//
// Under a fixed budget the host usually runs ahead of the device, so the run
// an eviction picks is often still to be read by queued work; unmapping it
// means waiting for that work (cuMemUnmap does not wait), and the change test
// (hash, drop if unchanged) waits for a hash kernel too. A handover lets the
// device order the reuse instead:
//
//  1. on the runtime's guard stream: wait for the run's last uses, then the
//     guard kernel (kernel_abi.h GuardBatchArgs) hashes each unit and, only if
//     it changed after all, copies it to page-locked host memory (RescuePool);
//  2. the run's pages go back to the arena at once, while the old mapping
//     stays: queued work still reads them there;
//  3. whatever is staged into those pages next waits (cuStreamWaitEvent) for
//     the guard event before its decode writes them;
//  4. once the guard event completed (polled at hooks, waited for only when
//     one of the units is needed again or its memory is freed) the old mapping
//     is unmapped and the flags read: unchanged units are plain compressed
//     units again; a changed one keeps its copy and is staged from it (not
//     from its stale store) next time, then encoded again at eviction.
//
// Only runs the runtime has seen unchanged at their last eviction are handed
// over (weights at inference); rewritten ones (training) keep the host path,
// which encodes them before their pages can go. No kernel ever meets an
// unmapped page: the old mapping outlives every use queued before the handover,
// and a unit is mapped again only after its handover settled.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "runtime/driver_objects.h"
#include "runtime/rescue_pool.h"
#include "runtime/staging_pool.h"

namespace nz::rt {

struct Unit;

struct Handoff {
  SharedEvent done;                    // after the guard kernels
  std::shared_ptr<RescueSlot> slot;    // flags (u32 per unit), then the units' copies
  CUdeviceptr va = 0;                  // the old mapping, unmapped once done
  GivenMapping mapping;
  std::vector<std::weak_ptr<Unit>> units;
  std::vector<size_t> offsets;         // where each unit's copy goes in the slot
  bool settled = false;
  // Encode handovers (handoff_encode.cpp): each unit's new encoding, and
  // where in the slot its result words (length, hash, header copy of at most
  // header_caps bytes) are.
  bool encoded = false;
  std::vector<UniqueDeviceMemory> encodings;
  std::vector<size_t> results;
  std::vector<size_t> header_caps;
  // An encode handover whose pages the next run could not take (exact
  // handles of another size): they stay with it, mapped, until it is settled,
  // then are unmapped and go back to the pool. Empty otherwise.
  StagingPieces held;
  size_t held_bytes = 0;
  size_t encoded_bytes = 0;  // the run's bytes (Runtime::encode_handoff_bytes_ until settled)
};

}  // namespace nz::rt
