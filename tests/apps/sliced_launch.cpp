// sliced_launch.cpp: see sliced_launch.h. Threads are started per call: a
// new host thread each time is the harshest case for a runtime's per-thread
// state, and the cost is small next to the kernels.
#include "sliced_launch.h"

#include <algorithm>
#include <thread>

namespace minifw {

SlicedLauncher::SlicedLauncher(const PrimaryContext& context, int threads)
    : context_(context), threads_(std::max(1, threads)) {
  if (threads_ > 1) {
    for (int i = 0; i < threads_; ++i) {
      streams_.push_back(std::make_unique<Stream>());
      joins_.push_back(std::make_unique<Event>());
    }
  }
}

void SlicedLauncher::run(CUstream compute, int count,
                         const std::function<void(int, int, CUstream)>& launch) {
  const int parts = std::min(threads_, count);
  if (parts <= 1) {
    launch(0, count, compute);
    return;
  }
  fork_.record(compute);
  std::vector<std::thread> workers;
  workers.reserve(parts);
  for (int t = 0; t < parts; ++t) {
    const int begin = static_cast<int>(static_cast<int64_t>(count) * t / parts);
    const int end = static_cast<int>(static_cast<int64_t>(count) * (t + 1) / parts);
    workers.emplace_back([this, t, begin, end, &launch] {
      context_.make_current();
      CUstream stream = streams_[t]->get();
      fork_.wait_on(stream);
      launch(begin, end, stream);
      joins_[t]->record(stream);
    });
  }
  for (auto& w : workers) w.join();
  for (int t = 0; t < parts; ++t) joins_[t]->wait_on(compute);
}

}  // namespace minifw
