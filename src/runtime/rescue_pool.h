// rescue_pool.h: page-locked host memory for the change test of staging pages
// handed over on the device (handoff.h). Every handover reserves room for a
// copy of the ranges it gives up (and their flags); the guard kernel writes
// the copy only if a range changed after all, which the runtime learned to
// expect never (it found the range unchanged at its last eviction). So the
// memory is reserved, rarely written, and bounds how far the host may run
// ahead of the device with handovers not yet checked: when it is full, the
// runtime waits on the host as it did before handovers existed.
//
// With unified addressing (every 64-bit CUDA platform) memory from
// cuMemAllocHost is device-accessible at its host address, as the runtime's
// status word already relies on.
//
// Not thread-safe: used under the runtime mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>

#include "runtime/driver_objects.h"

namespace nz::rt {

class RescuePool;

// A reservation: `bytes` at `host` (device address: the same). Destroying it
// gives the room back.
class RescueSlot {
 public:
  RescueSlot(RescuePool& pool, size_t offset, size_t bytes, unsigned char* host)
      : pool_(&pool), offset_(offset), bytes_(bytes), host_(host) {}
  RescueSlot(const RescueSlot&) = delete;
  RescueSlot& operator=(const RescueSlot&) = delete;
  ~RescueSlot();
  unsigned char* host() const noexcept { return host_; }
  CUdeviceptr device() const noexcept { return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(host_)); }
  size_t bytes() const noexcept { return bytes_; }

 private:
  RescuePool* pool_;
  size_t offset_, bytes_;
  unsigned char* host_;
};

class RescuePool {
 public:
  // Bytes of page-locked memory to use (allocated at the first take()); 0: none.
  void set_capacity(size_t bytes) noexcept { capacity_ = bytes; }
  // What the memory is for, in the one line logged if it cannot be had.
  void set_purpose(const char* purpose) noexcept { purpose_ = purpose; }
  size_t capacity() const noexcept { return capacity_; }
  // Room for `bytes`, or null (full, or no page-locked memory to be had).
  // The pool must outlive the slots.
  std::shared_ptr<RescueSlot> take(size_t bytes) noexcept;
  size_t in_use() const noexcept { return in_use_; }
  // The memory goes back to the driver (every slot must be gone).
  void release() noexcept;

 private:
  friend class RescueSlot;
  void give_back(size_t offset, size_t bytes) noexcept;

  size_t capacity_ = 0;
  const char* purpose_ = "the change test of handed-over staging: evictions wait on the host";
  bool failed_ = false;  // the allocation failed once: do not retry on every handover
  UniqueHostMemory memory_;
  std::map<size_t, size_t> free_;  // offset -> length, coalesced
  size_t in_use_ = 0;
};

}  // namespace nz::rt
