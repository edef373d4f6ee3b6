// sliced_launch.h: runs the column slices of one layer's work from several
// host threads, each on its own stream, joined back into the compute
// stream with events: a multi-threaded driver client, like a framework with
// several CPU threads feeding several streams. With one thread the work
// goes straight onto the compute stream.
#pragma once

#include <cuda.h>

#include <functional>
#include <memory>
#include <vector>

#include "driver.h"

namespace minifw {

class SlicedLauncher {
 public:
  SlicedLauncher(const PrimaryContext& context, int threads);

  // Calls launch(begin, end, stream) for consecutive slices of [0, count)
  // (one per thread), ordered after the work already queued on `compute`,
  // and makes `compute` wait for all of them.
  void run(CUstream compute, int count, const std::function<void(int, int, CUstream)>& launch);
  int threads() const { return threads_; }

 private:
  const PrimaryContext& context_;
  int threads_;
  Event fork_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<Event>> joins_;
};

}  // namespace minifw
