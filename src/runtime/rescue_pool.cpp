// rescue_pool.cpp: first fit over one page-locked block (rescue_pool.h).
#include "runtime/rescue_pool.h"

#include <iterator>

#include "runtime/log.h"

namespace nz::rt {

namespace {
constexpr size_t kAlign = 256;  // the guard kernel copies 16 bytes at a time when it can
size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
}  // namespace

RescueSlot::~RescueSlot() { pool_->give_back(offset_, bytes_); }

std::shared_ptr<RescueSlot> RescuePool::take(size_t bytes) noexcept {
  if (capacity_ == 0 || failed_ || bytes == 0) return nullptr;
  bytes = align_up(bytes);
  if (!memory_) {
    void* p = nullptr;
    if (driver().base.cuMemAllocHost(&p, capacity_) != CUDA_SUCCESS || p == nullptr) {
      failed_ = true;
      log(LogLevel::kError, "no page-locked host memory ({} bytes) for {}", capacity_, purpose_);
      return nullptr;
    }
    memory_ = UniqueHostMemory(p);
    free_.clear();
    free_.emplace(0, capacity_ / kAlign * kAlign);
  }
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < bytes) continue;
    const size_t offset = it->first, rest = it->second - bytes;
    free_.erase(it);
    if (rest > 0) free_.emplace(offset + bytes, rest);
    in_use_ += bytes;
    try {
      return std::make_shared<RescueSlot>(*this, offset, bytes, static_cast<unsigned char*>(memory_.get()) + offset);
    } catch (...) {
      give_back(offset, bytes);
      return nullptr;
    }
  }
  return nullptr;
}

void RescuePool::give_back(size_t offset, size_t bytes) noexcept {
  in_use_ -= std::min(in_use_, bytes);
  size_t begin = offset, length = bytes;
  auto next = free_.lower_bound(offset);
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == begin) {
      begin = prev->first;
      length += prev->second;
      free_.erase(prev);
    }
  }
  if (next != free_.end() && begin + length == next->first) {
    length += next->second;
    free_.erase(next);
  }
  try {
    free_.emplace(begin, length);
  } catch (...) {
    // Lost room (no memory for a map node): the pool just holds less.
  }
}

void RescuePool::release() noexcept {
  memory_.reset();
  free_.clear();
  in_use_ = 0;
  failed_ = false;  // a new context may have the memory
}

}  // namespace nz::rt
