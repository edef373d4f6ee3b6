#include "runtime/reuse_forecast.h"

#include <algorithm>

namespace nz::rt {

void ReuseForecast::on_iteration() noexcept {
  length_before_ = last_length_;
  last_length_ = clock_ - iteration_begin_;
  iteration_begin_ = clock_;
  ++iteration_;
}

bool ReuseForecast::regular() const noexcept {
  if (last_length_ == 0 || length_before_ == 0) return false;
  const uint64_t hi = std::max(last_length_, length_before_), lo = std::min(last_length_, length_before_);
  // This iteration running past the last one by more than that is not the
  // loop any more (a program reading its weights back after the last step:
  // every range looked overdue, so needed at once).
  return hi - lo <= hi / 8 && clock_ - iteration_begin_ <= last_length_ + last_length_ / 8;
}

void ReuseForecast::on_use(UseHistory& h) const noexcept {
  if (h.iteration != iteration_) {
    // This iteration's first use: the previous one's uses become the pattern
    // (or none, if it was not used in the iteration just before).
    const bool previous = h.iteration + 1 == iteration_;
    h.last_iteration = previous ? h.iteration : ~uint64_t{0};
    h.last_count = previous ? h.count : 0;
    h.last_uses = previous ? h.uses : 0;
    std::copy(h.at, h.at + UseHistory::kKept, h.last_at);
    h.iteration = iteration_;
    h.count = 0;
    h.uses = 0;
    h.last_call = ~uint32_t{0};
  }
  const uint32_t call = call_in_iteration();
  if (h.last_call == call) return;  // one call, one use (also past the kKept recorded)
  h.last_call = call;
  if (h.uses < UINT8_MAX) ++h.uses;
  if (h.count < UseHistory::kKept) h.at[h.count++] = call;
}

uint64_t ReuseForecast::calls_until_use(const UseHistory& h) const noexcept {
  if (!regular()) return kUnknown;
  const uint64_t now = clock_ - iteration_begin_;
  const uint32_t* pattern = nullptr;
  int pattern_count = 0, pattern_uses = 0, used = 0;
  if (h.iteration == iteration_) {
    if (h.last_iteration + 1 == iteration_) {
      pattern = h.last_at;
      pattern_count = h.last_count;
      pattern_uses = h.last_uses;
    }
    used = h.uses;
  } else if (h.iteration + 1 == iteration_) {
    pattern = h.at;  // not used yet in this iteration
    pattern_count = h.count;
    pattern_uses = h.uses;
  }
  if (pattern_count == 0) return kNotSoon;
  // Its next use in this iteration, matched by count: overdue means now.
  if (used < pattern_count) return pattern[used] > now ? pattern[used] - now : 1;
  // Past the recorded uses of an iteration that had more: still in this
  // one, about one mean gap of the recorded uses away.
  if (used < pattern_uses && used < UINT8_MAX) {
    const uint64_t span = pattern[pattern_count - 1] - pattern[0];
    return pattern_count > 1 ? std::max<uint64_t>(1, span / (pattern_count - 1)) : 1;
  }
  // Used as often as last time (or more than kKept times): next iteration's first.
  const uint64_t rest = last_length_ > now ? last_length_ - now : 1;
  return rest + pattern[0];
}

}  // namespace nz::rt
