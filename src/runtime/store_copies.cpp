// store_copies.cpp: host copies of the stores that staged ranges give up
// under pressure (release_store_if_pressed). Under a fixed budget every
// range a call stages past the budget gives its store up, and its eviction,
// finding it unchanged, used to encode it again: on the H200 the 64 MiB
// budget's inference made 27,573 such re-encodes, 14.7 s of its 20.7 s in
// hooks (RESULTS §6.8), and LoRA's read-only base is re-encoded at every
// eviction. A range expected back unchanged now copies its store to
// page-locked host memory before giving it up, and its eviction copies the
// bytes back: a copy each way over the bus instead of an encode.
//
// The copy is of the store's own bytes (header and tables included, with
// their checksums, which every decode checks): restored, it is the store
// it was, for the content whose hash the store still names; a range found
// changed encodes anew and the copy goes with the old store
// (StoredRange::host_copy).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "runtime/runtime.h"

#include "runtime/log.h"

namespace nz::rt {

// `s`: the stream the caller frees the store on next (in stream order after
// this copy), or one it waits for before freeing.
void Runtime::keep_store_copy(Unit& u, CUstream s) noexcept {
  if (u.changes.expect_change(generation_)) return;
  copy_store_to_host(u, s);
}

bool Runtime::copy_store_to_host(Unit& u, CUstream s) noexcept {
  if (!u.store.data || u.store.bytes == 0 || u.store.host_copy.slot) return false;
  auto slot = kept_stores_.take(u.store.bytes);
  if (!slot) return false;
  if (driver().base.cuMemcpyDtoHAsync(slot->host(), u.store.data.get(), u.store.bytes, s) != CUDA_SUCCESS) return false;
  SharedEvent copied = record_event(s);
  // No event to tell when it is done: wait for it here.
  if (!copied && driver().base.cuStreamSynchronize(s) != CUDA_SUCCESS) return false;
  u.store.host_copy = HostStoreCopy{std::move(slot), std::move(copied), u.store.bytes};
  return true;
}

// Waits for the copy to host memory; a copy that cannot be known whole goes.
bool Runtime::host_copy_ready(Unit& u) noexcept {
  HostStoreCopy& copy = u.store.host_copy;
  if (!copy.slot) return false;
  if (!copy.settle()) {
    copy = HostStoreCopy{};
    return false;
  }
  return true;
}

// The out-of-memory path's last resort before a staging fails: compressed
// ranges no launch is using move their stores to page-locked host memory,
// the ones needed again last first, until `need` bytes of device memory
// came back. Their decodes then read the store over the bus (slower, but
// the program runs on a device it did not fit); an eviction with memory to
// spare brings a store back (restore_store_copy). Host offload, counted
// apart (`stores in host memory`). True if any store moved.
bool Runtime::offload_stores(size_t need) noexcept {
  std::vector<std::pair<uint64_t, Unit*>> candidates;
  try {
    for (const auto& [base, a] : allocations_) {
      for (const auto& [begin, u] : a->units) {
        if (u->dead || u->state != UnitState::kCompressed || !u->store.data ||
            u->in_flight != 0 || u->pins != 0 || u->handoff || u->rescue || u->incoming ||
            CompressedStore::lossy_for(u->dtype, config_) || !event_done(u->ready))
          continue;
        candidates.emplace_back(forecast_.calls_until_use(u->uses_seen), u.get());
      }
    }
  } catch (...) {
    return false;
  }
  std::stable_sort(candidates.begin(), candidates.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  size_t freed = 0;
  const CUstream s = internal_.get();
  for (const auto& [due, u] : candidates) {
    if (freed >= need) break;
    // (A store restored earlier may have kept its copy: no copy to make.)
    if ((!u->store.host_copy.slot && !copy_store_to_host(*u, s)) || !host_copy_ready(*u)) continue;
    const size_t bytes = u->store.bytes;
    free_store_now(u->store.data, return_stream_.get());
    drop_store(*u);
    freed += bytes;
    stats_.stores_offloaded.add();
    emit("store_offload", u->begin, u->bytes(), fmt::format("\"compressed\":{}", bytes));
  }
  if (freed > 0) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      log(LogLevel::kInfo,
          "device short of memory: compressed stores moved to page-locked host memory and decoded from there");
  }
  return freed > 0;
}

// At an eviction that found `u` unchanged with its store given up: the
// store back from its host copy. False (the caller encodes it again) when
// there is no copy, or no device memory for it.
bool Runtime::restore_store_copy(Unit& u) noexcept {
  HostStoreCopy& copy = u.store.host_copy;
  if (!copy.slot || copy.bytes == 0 || u.store.data) return false;
  const auto start = TraceClock::now();
  if (!host_copy_ready(u)) return false;
  CUdeviceptr p = 0;
  // No memory: the copy stays for a later eviction (this one encodes or parks).
  if (store_alloc(&p, copy.bytes) != CUDA_SUCCESS) return false;
  UniqueDeviceMemory memory(p);
  const CUstream s = internal_.get();
  // Decodes on other streams read it next: the host waits for the copy.
  if (driver().base.cuMemcpyHtoDAsync(p, copy.slot->host(), copy.bytes, s) != CUDA_SUCCESS ||
      driver().base.cuStreamSynchronize(s) != CUDA_SUCCESS) {
    copy = HostStoreCopy{};
    return false;
  }
  const size_t bytes = copy.bytes;
  // The copy stays (it is this store's, for as long as the store is) while
  // half the host memory is free: the next give-up needs no copy, and a
  // staging past the budget decodes from it (decode_from_host_copies).
  if (kept_stores_.in_use() > kept_stores_.capacity() / 2) copy = HostStoreCopy{};
  u.store.data = std::move(memory);
  u.store.bytes = bytes;
  stats_.bytes_compressed.add(bytes);
  stats_.stores_restored.add();
  emit_timed("store_restore", u.begin, u.bytes(), start, fmt::format("\"compressed\":{}", bytes));
  return true;
}

void Runtime::restore_due_stores() noexcept {
  auto due = std::move(restores_due_);
  restores_due_.clear();
  for (const auto& u : due) {
    // Staged again, freed or rewritten meanwhile: nothing to restore (a
    // unit whose run stayed mapped keeps its copy for its next eviction).
    if (u->dead || u->state != UnitState::kCompressed || u->store.data || !u->store.host_copy.slot) continue;
    if (restore_store_copy(*u)) continue;
    // No device memory for it: decodes read it from host memory until an
    // eviction with memory to spare brings it back.
    stats_.stores_left_in_host.add();
    emit("store_in_host", u->begin, u->bytes());
  }
}

// A staging past a fixed budget gives the stores of its ranges up once they
// are decoded (release_store_if_pressed), so that for a moment each range
// held its store and its pages (lora's peak: a 2-unit run's two stores
// beside its new pages). Ranges whose store has a host copy give it up
// before the staging instead, and are decoded from the copy: the store and
// the pages never meet. Ranges staged already (a guess's) give theirs up
// too, once their decode completed. Host offload for those decodes: each
// crosses the bus (only past a budget smaller than the program's calls).
void Runtime::decode_from_host_copies(const std::vector<std::shared_ptr<Unit>>& units) noexcept {
  for (const auto& u : units) {
    if (u->dead || !u->store.data || !u->store.host_copy.slot || u->handoff || u->incoming || u->rescue ||
        CompressedStore::lossy_for(u->dtype, config_))
      continue;
    if (u->state == UnitState::kStaged && !event_done(u->ready)) continue;  // its decode may read the store
    if (!host_copy_ready(*u)) continue;  // no whole copy: the device store stays the only one
    if (u->state == UnitState::kCompressed) stats_.decodes_from_host_copies.add();
    give_store_up(*u);
  }
}

}  // namespace nz::rt
