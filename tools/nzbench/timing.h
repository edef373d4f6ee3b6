// timing.h: best-of-N wall-clock timing (the minimum is the least disturbed
// by other processes on a shared machine).
#pragma once

#include <chrono>
#include <limits>

namespace nzbench {

// Runs `fn` `repeat` times; returns the shortest duration in seconds, or a
// negative value as soon as `fn` returns false (a failure, already reported).
template <typename Fn>
double best_seconds(unsigned repeat, Fn&& fn) {
  double best = std::numeric_limits<double>::infinity();
  for (unsigned i = 0; i < (repeat ? repeat : 1); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = fn();
    const auto t1 = std::chrono::steady_clock::now();
    if (!ok) return -1.0;
    const double s = std::chrono::duration<double>(t1 - t0).count();
    if (s < best) best = s;
  }
  return best;
}

}  // namespace nzbench
