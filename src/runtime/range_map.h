// range_map.h: the hot-path lookup "does this address fall in a tracked range?".
//
// Readers copy the shared pointer to an immutable sorted snapshot (a moment
// under a small lock, no search inside it) and binary-search it. Writers
// (rare: a range appears or disappears) take a mutex, copy the snapshot, edit
// it and publish the copy. `empty()` is one atomic load, so a launch while
// nothing is tracked costs a few nanoseconds. That load acquires what the
// publication released: a launch that finds the map empty (and so takes no
// snapshot and no lock) still sees everything the writer did before it
// emptied the map. The look-ahead stager retires the last tracked range
// after waiting for the encode that read it; a launch that then writes the
// range must be ordered after that wait, not only later in time
// (ThreadSanitizer saw the encode's read and the launch's write unordered
// while this load was relaxed, docs/RESULTS.md §4.9.24). On x86 the acquire
// is the same instruction.
//
// (Not std::atomic<std::shared_ptr>: libstdc++ 12's load reads the pointer
// under a lock bit it releases with a relaxed store, so a writer's next
// store is not ordered after that read — ThreadSanitizer reports it, as
// google/sanitizers#1558 does for any program on GCC 12; found when two random
// programs wrote pointer arrays while the other launched. The lock costs what
// that load's lock bit did: one atomic read-modify-write per snapshot.)
#pragma once

#include <cuda.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace nz::rt {

template <typename Value>
class RangeMap {
 public:
  struct Entry {
    CUdeviceptr begin;
    CUdeviceptr end;  // exclusive
    std::shared_ptr<Value> value;
  };
  using Snapshot = std::vector<Entry>;

  RangeMap() : snapshot_(std::make_shared<const Snapshot>()) {}
  RangeMap(const RangeMap&) = delete;
  RangeMap& operator=(const RangeMap&) = delete;

  bool empty() const noexcept { return count_.load(std::memory_order_acquire) == 0; }
  size_t size() const noexcept { return count_.load(std::memory_order_acquire); }

  std::shared_ptr<const Snapshot> snapshot() const noexcept {
    std::lock_guard lock(snapshot_mutex_);
    return snapshot_;
  }

  // The entry containing `address`, or null.
  static const Entry* find(const Snapshot& s, CUdeviceptr address) noexcept {
    size_t lo = 0, hi = s.size();
    while (lo < hi) {  // first entry with begin > address
      const size_t mid = (lo + hi) / 2;
      if (s[mid].begin <= address) lo = mid + 1;
      else hi = mid;
    }
    if (lo == 0) return nullptr;
    const Entry& e = s[lo - 1];
    return address < e.end ? &e : nullptr;
  }

  // Calls fn(entry) for every entry overlapping [begin, end).
  template <typename Fn>
  static void for_each_overlapping(const Snapshot& s, CUdeviceptr begin, CUdeviceptr end, Fn&& fn) {
    size_t lo = 0, hi = s.size();
    while (lo < hi) {  // first entry with end > begin
      const size_t mid = (lo + hi) / 2;
      if (s[mid].end <= begin) lo = mid + 1;
      else hi = mid;
    }
    for (size_t i = lo; i < s.size() && s[i].begin < end; ++i) fn(s[i]);
  }

  // Entries must not overlap existing ones (the caller guarantees it).
  void insert(CUdeviceptr begin, CUdeviceptr end, std::shared_ptr<Value> value) {
    std::lock_guard lock(write_mutex_);
    auto next = std::make_shared<Snapshot>(*snapshot());
    Entry e{begin, end, std::move(value)};
    auto pos = std::lower_bound(next->begin(), next->end(), begin,
                                [](const Entry& x, CUdeviceptr b) { return x.begin < b; });
    next->insert(pos, std::move(e));
    publish(std::move(next));
  }

  // Replaces every entry inside [begin, end) with `entries` (sorted, inside
  // [begin, end), not overlapping): one publication for a whole allocation.
  void replace(CUdeviceptr begin, CUdeviceptr end, std::vector<Entry> entries) {
    std::lock_guard lock(write_mutex_);
    auto current = snapshot();
    auto next = std::make_shared<Snapshot>();
    next->reserve(current->size() + entries.size());
    bool inserted = false;
    for (const Entry& e : *current) {
      if (e.begin >= begin && e.end <= end) continue;
      if (!inserted && e.begin >= end) {
        for (auto& n : entries) next->push_back(std::move(n));
        inserted = true;
      }
      next->push_back(e);
    }
    if (!inserted) for (auto& n : entries) next->push_back(std::move(n));
    publish(std::move(next));
  }

  // Removes the entry that starts at `begin`; returns false if none.
  bool erase(CUdeviceptr begin) {
    std::lock_guard lock(write_mutex_);
    auto next = std::make_shared<Snapshot>(*snapshot());
    auto pos = std::lower_bound(next->begin(), next->end(), begin,
                                [](const Entry& x, CUdeviceptr b) { return x.begin < b; });
    if (pos == next->end() || pos->begin != begin) return false;
    next->erase(pos);
    publish(std::move(next));
    return true;
  }

 private:
  void publish(std::shared_ptr<Snapshot> next) {
    std::shared_ptr<const Snapshot> old;  // released after the lock (its destructor may free a large vector)
    {
      std::lock_guard lock(snapshot_mutex_);
      const size_t count = next->size();
      old = std::exchange(snapshot_, std::shared_ptr<const Snapshot>(std::move(next)));
      // After the snapshot: a reader that sees the new count finds the new
      // snapshot (or a newer one), never an older one.
      count_.store(count, std::memory_order_release);
    }
  }

  std::mutex write_mutex_;
  mutable std::mutex snapshot_mutex_;  // guards snapshot_ itself, not what it points to
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<size_t> count_{0};
};

}  // namespace nz::rt
