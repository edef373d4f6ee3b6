#include "codec/threading.h"

#include <atomic>
#include <system_error>
#include <thread>
#include <vector>

namespace nz::codec {

uint32_t effective_threads(uint32_t requested, uint64_t jobs) {
  uint64_t t = requested;
  if (t == 0) {
    t = std::thread::hardware_concurrency();
    if (t == 0) t = 1;
  }
  if (t > jobs) t = jobs;
  return t == 0 ? 1 : static_cast<uint32_t>(t);
}

void parallel_for(uint32_t threads, uint64_t count, const std::function<bool(uint64_t)>& job) {
  std::atomic<uint64_t> next{0};
  std::atomic<bool> stop{false};
  auto worker = [&] {
    while (!stop.load(std::memory_order_relaxed)) {
      uint64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= count) return;
      if (!job(i)) stop.store(true, std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> pool;
  if (threads > 1) {
    try {
      pool.reserve(threads - 1);
      for (uint32_t t = 1; t < threads; ++t) pool.emplace_back(worker);
    } catch (const std::system_error&) {
      // Fewer helpers than asked for: the remaining ones finish the work.
    } catch (const std::bad_alloc&) {
    }
  }
  worker();
  for (auto& th : pool) th.join();
}

}  // namespace nz::codec
