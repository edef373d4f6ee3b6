// threading.h: run a job per chunk on a few threads (the caller's included).
// Threads are created per call: the codec keeps no global state, and a call
// with threads == 1 never creates one.
#pragma once

#include <cstdint>
#include <functional>

namespace nz::codec {

// 0 = hardware concurrency; never more than `jobs`, never less than 1.
uint32_t effective_threads(uint32_t requested, uint64_t jobs);

// Calls job(i) for every i in [0, count) on up to `threads` threads, each
// taking the next index from a shared counter. A job returning false stops
// the hand-out of further indices. If a thread cannot be created the work
// continues on the threads that exist.
void parallel_for(uint32_t threads, uint64_t count, const std::function<bool(uint64_t)>& job);

}  // namespace nz::codec
