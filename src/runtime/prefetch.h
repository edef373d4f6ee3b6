// prefetch.h: training and inference loops stage ranges in the same order
// every iteration, so the range staged after X last time is the best guess
// for what comes after X now. StagingOrder remembers that order; the runtime
// starts decoding the guess on a side stream while the current work runs.
#pragma once

#include <cstddef>
#include <memory>
#include <unordered_map>
#include <vector>

namespace nz::rt {

template <typename T>
class StagingOrder {
 public:
  // Records that `item` was just staged; returns what was staged right after
  // its previous staging (null if none, or if that item is gone).
  std::shared_ptr<T> record(const std::shared_ptr<T>& item) {
    std::shared_ptr<T> next;
    auto it = last_.find(item.get());
    if (it != last_.end() && it->second + 1 < order_.size()) next = order_[it->second + 1].lock();
    if (order_.size() >= kMaxHistory) {  // forget old iterations rather than grow forever
      order_.clear();
      last_.clear();
    }
    order_.push_back(item);
    last_[item.get()] = order_.size() - 1;
    return next == item ? nullptr : next;
  }

  // What was staged right after `item`'s last staging (null if nothing yet,
  // or if that is gone). Unlike record(), nothing is recorded: for an item
  // still staged since then, whose own guess was taken before its successor
  // was known (the last weight of the first iteration stays staged into the
  // second one).
  std::shared_ptr<T> after(const T* item) const {
    auto it = last_.find(item);
    if (it == last_.end() || it->second + 1 >= order_.size()) return nullptr;
    auto next = order_[it->second + 1].lock();
    return next.get() == item ? nullptr : next;
  }

 private:
  static constexpr size_t kMaxHistory = size_t{1} << 16;
  std::vector<std::weak_ptr<T>> order_;
  std::unordered_map<const T*, size_t> last_;
};

}  // namespace nz::rt
