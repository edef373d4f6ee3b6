// caching_allocator.cpp: see caching_allocator.h for the policy.
#include "caching_allocator.h"

#include <algorithm>

namespace minifw {

struct CachingAllocator::Block {
  CUdeviceptr ptr = 0;
  size_t size = 0;
  bool allocated = false;
  bool segment_head = false;  // first block of a segment (its cuMemAlloc address)
  FreeSet* pool = nullptr;
  Block* prev = nullptr;  // neighbours within the same segment
  Block* next = nullptr;
  bool dead = false;      // merged away or released; its object awaits reuse
};

bool CachingAllocator::BySizeThenAddress::operator()(const Block* a, const Block* b) const {
  if (a->size != b->size) return a->size < b->size;
  return a->ptr < b->ptr;
}

CachingAllocator::CachingAllocator(SegmentSource source) : source_(std::move(source)) {}

CachingAllocator::~CachingAllocator() {
  for (const auto& block : blocks_) {
    if (!block->dead && block->segment_head) source_.release(block->ptr);
  }
}

size_t CachingAllocator::round_size(size_t bytes) {
  if (bytes < kAlignment) return kAlignment;
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

size_t CachingAllocator::segment_size_for(size_t rounded_bytes) {
  if (rounded_bytes <= kSmallRequestMax) return kSmallSegment;
  if (rounded_bytes < kLargeRequestMin) return kLargeSegment;
  return (rounded_bytes + kHugeRounding - 1) / kHugeRounding * kHugeRounding;
}

CachingAllocator::FreeSet& CachingAllocator::pool_for(size_t rounded_bytes) {
  return rounded_bytes <= kSmallRequestMax ? small_free_ : large_free_;
}

CachingAllocator::Block* CachingAllocator::take_cached(FreeSet& pool, size_t rounded_bytes) {
  Block key;
  key.size = rounded_bytes;
  key.ptr = 0;
  auto it = pool.lower_bound(&key);  // smallest block that fits, lowest address first
  if (it == pool.end()) return nullptr;
  Block* block = *it;
  pool.erase(it);
  return block;
}

CachingAllocator::Block* CachingAllocator::new_segment(FreeSet& pool, size_t rounded_bytes,
                                                       CUresult& result) {
  const size_t segment = segment_size_for(rounded_bytes);
  CUdeviceptr ptr = 0;
  result = source_.allocate(&ptr, segment);
  if (result == CUDA_ERROR_OUT_OF_MEMORY) {
    // Like PyTorch: give cached memory back and try once more.
    const CUresult released = release_free_segments();
    if (released != CUDA_SUCCESS) {
      result = released;
      return nullptr;
    }
    result = source_.allocate(&ptr, segment);
  }
  if (result != CUDA_SUCCESS) return nullptr;
  blocks_.push_back(std::make_unique<Block>());
  Block* block = blocks_.back().get();
  block->ptr = ptr;
  block->size = segment;
  block->segment_head = true;
  block->pool = &pool;
  stats_.segment_bytes += segment;
  stats_.peak_segment_bytes = std::max(stats_.peak_segment_bytes, stats_.segment_bytes);
  ++stats_.segments_created;
  return block;
}

void CachingAllocator::split(Block* block, size_t rounded_bytes) {
  const size_t rest = block->size - rounded_bytes;
  const bool small = block->pool == &small_free_;
  const bool worth_keeping = small ? rest >= kAlignment : rest > kSmallRequestMax;
  if (!worth_keeping) return;
  blocks_.push_back(std::make_unique<Block>());
  Block* remainder = blocks_.back().get();
  remainder->ptr = block->ptr + rounded_bytes;
  remainder->size = rest;
  remainder->pool = block->pool;
  remainder->prev = block;
  remainder->next = block->next;
  if (block->next != nullptr) block->next->prev = remainder;
  block->next = remainder;
  block->size = rounded_bytes;
  block->pool->insert(remainder);
}

CachingAllocator::Result CachingAllocator::allocate(size_t bytes) {
  std::lock_guard lock(mutex_);
  const size_t rounded = round_size(bytes);
  FreeSet& pool = pool_for(rounded);
  Block* block = take_cached(pool, rounded);
  if (block != nullptr) {
    ++stats_.cache_hits;
  } else {
    CUresult result = CUDA_SUCCESS;
    block = new_segment(pool, rounded, result);
    if (block == nullptr) {
      return Result{result == CUDA_ERROR_OUT_OF_MEMORY ? Status::out_of_memory : Status::driver_error,
                    0, result};
    }
  }
  split(block, rounded);
  block->allocated = true;
  live_.emplace(block->ptr, block);
  stats_.allocated_bytes += block->size;
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  return Result{Status::ok, block->ptr, CUDA_SUCCESS};
}

bool CachingAllocator::free(CUdeviceptr ptr) {
  std::lock_guard lock(mutex_);
  auto it = live_.find(ptr);
  if (it == live_.end()) return false;
  Block* block = it->second;
  live_.erase(it);
  block->allocated = false;
  stats_.allocated_bytes -= block->size;
  // Merge with free neighbours of the same segment.
  if (Block* next = block->next; next != nullptr && !next->allocated) {
    block->pool->erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next != nullptr) next->next->prev = block;
    next->dead = true;
  }
  if (Block* prev = block->prev; prev != nullptr && !prev->allocated) {
    block->pool->erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next != nullptr) block->next->prev = prev;
    block->dead = true;
    block = prev;
  }
  block->pool->insert(block);
  // Merged-away objects are not reused; drop them now and then so a long run
  // does not accumulate them.
  if (blocks_.size() > 4096) {
    std::erase_if(blocks_, [](const std::unique_ptr<Block>& b) { return b->dead; });
  }
  return true;
}

CUresult CachingAllocator::release_free_segments() {
  for (FreeSet* pool : {&small_free_, &large_free_}) {
    for (auto it = pool->begin(); it != pool->end();) {
      Block* block = *it;
      if (block->segment_head && block->next == nullptr) {  // the whole segment is free
        const CUresult r = source_.release(block->ptr);
        if (r != CUDA_SUCCESS) return r;
        stats_.segment_bytes -= block->size;
        ++stats_.segments_released;
        block->dead = true;
        it = pool->erase(it);
      } else {
        ++it;
      }
    }
  }
  return CUDA_SUCCESS;
}

CUresult CachingAllocator::empty_cache() {
  std::lock_guard lock(mutex_);
  return release_free_segments();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace minifw
