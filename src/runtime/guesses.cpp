// guesses.cpp: the launching thread's guesses. After a launch used a unit,
// the unit that followed it in the last iteration (prefetch.h) is staged on
// the prefetch stream as a whole weight, so that its own launch finds it
// staged; a guess never waits for the device and never evicts what is needed
// before it. (With NEUZIP_LOOKAHEAD_MB the stager thread looks further
// ahead instead: lookahead.cpp.)
#include <algorithm>
#include <string_view>

#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

using namespace detail;

// The first guess along the order from `from` that is still compressed,
// past guesses staged already (the weights that stayed staged between a
// forward and a backward pass): stopping at a staged guess left the next
// weight to be staged on its launch. At most half a fixed budget (or two
// of the largest calls' stagings) of staged ranges is passed over, and none
// staged ahead and not used yet: further ahead, making room would evict
// what is needed sooner.
std::shared_ptr<Unit> Runtime::first_compressed_guess(const Unit& from) noexcept {
  const size_t reach =
      config_.staging_bytes ? *config_.staging_bytes / 2 : std::max(size_t{8} << 20, 2 * launch_staging_peak_);
  size_t passed = 0;
  int hops = 0;  // the order may loop without coming back to `from`
  for (auto u = from.next_guess.lock(); u && !u->dead && u.get() != &from && ++hops <= 4096;
       u = u->next_guess.lock()) {
    if (u->state == UnitState::kCompressed) return u;  // start_prefetch tells whether it can be staged now
    // Staged ahead and not used yet: one guess in flight is enough (going
    // further made room by evicting ranges whose handovers had not settled
    // when they were needed again: inference 256/32 staged 79 % ahead, not 90).
    if (u->prefetched) break;
    passed += u->bytes();
    if (passed > reach) break;
  }
  return from.next_guess.lock();  // nothing to stage ahead (the trace says why)
}

// Whether a guess may stage `u`: compressed, and not one still handed over
// (staging it would wait for its change test) or found changed (staged from
// host memory, on demand only).
bool Runtime::guessable(const Unit& u) const noexcept {
  return u.tracked && !u.dead && u.state == UnitState::kCompressed && !u.incoming && u.in_flight == 0 &&
         u.pins == 0 && !u.handoff && !u.rescue;
}

// The compressed units of the tag holding `u`'s first byte (or of the
// tag `u` overlaps first), in address order: a guess is staged as a whole
// weight, one run, one mapping, one decode launch (staging only the guessed
// unit left the rest of a weight to a second run at its fault). Not the
// whole reach a fault stages (the later tags of its cluster): for tensors
// sharing a caching-allocator segment that would evict more than it saves.
std::vector<std::shared_ptr<Unit>> Runtime::compressed_tag_of(const std::shared_ptr<Unit>& u) {
  std::vector<std::shared_ptr<Unit>> out;
  Allocation* a = allocation_containing(u->begin);
  AddressWindow tag{0, 0};
  if (a != nullptr) {
    tag = a->tags.tag_at(u->begin);
    if (tag.begin == tag.end) tag = a->tags.tag_at(u->end - 1);
  }
  if (a != nullptr && tag.begin < tag.end) {
    auto it = a->units.upper_bound(tag.begin);
    // The unit holding the tag's first byte may begin before it.
    if (it != a->units.begin() && std::prev(it)->second->end > tag.begin) --it;
    for (; it != a->units.end() && it->second->begin < tag.end; ++it) {
      if (guessable(*it->second)) out.push_back(it->second);
    }
  }
  if (std::find(out.begin(), out.end(), u) == out.end()) out.assign(1, u);
  return out;
}

// Decodes `next` (the unit that followed the one just used, last time) and
// the rest of its tag on the side stream, if that fits without waiting for
// anything: a guess must never cost a wait.
bool Runtime::start_prefetch(const std::shared_ptr<Unit>& next,
                             std::vector<std::shared_ptr<Unit>>* given) noexcept {
  if (!handoffs_.empty()) reap_handoffs(false);
  if (!next || next->dead) return false;
  // Why a guess was not staged (the trace tells a wrong guess from a right
  // one that could not be staged yet).
  auto skipped = [&](std::string_view why) {
    if (trace_.enabled()) emit("guess_skipped", next->begin, next->bytes(), fmt::format("\"why\":\"{}\"", why));
    return false;
  };
  if (next->state != UnitState::kCompressed) return skipped("staged");
  // In use or handed over: both pass (a handover settles once the device
  // reached its guard), so worth asking again; a rescued range is staged
  // on demand only.
  if (next->in_flight > 0 || next->handoff || next->rescue)
    return !skipped("handed over or in use") && !next->rescue;
  // Under pressure a guess would evict idle ranges (and encode them again) for
  // a decode that may not be needed.
  if (!config_.staging_bytes && !memory_plentiful()) return skipped("memory short");
  std::vector<std::shared_ptr<Unit>> units;
  try {
    if (given != nullptr) {
      // Filtered again: reaping handovers above may have found one changed.
      units = std::move(*given);
      std::erase_if(units, [this](const auto& u) { return !guessable(*u); });
    } else {
      units = compressed_tag_of(next);
    }
  } catch (...) {
    return false;
  }
  if (units.empty()) return !skipped("handed over or in use");
  size_t bytes = 0;
  for (const auto& u : units) bytes += u->bytes();
  // Room only from ranges needed again after the guess (when the forecast
  // knows): making room from one needed sooner stages that one again first
  // (and at the end of a run, every weight read back evicted the next).
  const uint64_t due =
      config_.evict_by_forecast ? forecast_.calls_until_use(next->uses_seen) : ReuseForecast::kUnknown;
  if (due == ReuseForecast::kNotSoon) return skipped("not used last iteration");
  // Not `next` alone when the tag (or call) does not fit: that would split the
  // weight into two runs (two mappings, two decode launches) for nothing.
  const bool room = enforce_budget(bytes, false, due == ReuseForecast::kUnknown ? 0 : due);
  if (!room) {
    skipped("no room without waiting, or only from ranges needed sooner");
    return true;
  }
  try {
    if (stage_runs(runs_of(units), prefetch_stream_.get(), false, /*may_wait=*/false) != CUDA_SUCCESS)
      return skipped("staging failed");
  } catch (...) {
    return false;
  }
  for (const auto& u : units) {
    u->lru_tick = ++tick_;
    u->prefetched = true;  // recorded in the order when used (prepare)
    try {
      staged_.push_back(u);
    } catch (...) {
    }
    stats_.prefetches.add();
    emit("prefetch", u->begin, u->bytes());
  }
  return false;
}

// The guess from uses (use_order.h): the first call after this one that, in
// the last iteration, touched a range that is compressed now, and every
// range that call touched which is compressed now, staged as that call's
// launch would stage them. Staged ranges on the way are passed over; a
// range staged ahead and not used yet ends the search (one guess in
// flight). False when the staging order should guess instead: the last
// iteration's uses are not known, or it used
// no range again a quarter of an iteration later (an inference loop: there
// the staging order is the use order without the ranges that stayed staged,
// and measured better: 92 vs 80 % staged ahead at infer 64, docs/RESULTS.md
// §4.9.10), or the call's ranges are all handed over or in use.
bool Runtime::guess_next_call() noexcept {
  guess_pending_ = false;
  // Without the forecast (NEUZIP_EVICT=lru) a guess cannot tell what is
  // needed before it, and a walk past staged ranges would push that out.
  if (!config_.evict_by_forecast || !use_order_.known() || !use_order_.repeats() || !forecast_.regular())
    return false;
  // Past up to half a budget of staged ranges (as first_compressed_guess; a
  // whole budget, tried, staged further ahead than what the next calls
  // needed: train sgd 64 staged 35 % ahead instead of 45 %). A walk that
  // ran out of that reach is asked again at the next calls: a training
  // step's backward pass begins with the weights its forward pass left
  // staged, and the first one it must stage comes into reach as those are
  // used.
  const size_t reach =
      config_.staging_bytes ? *config_.staging_bytes / 2 : std::max(size_t{8} << 20, 2 * launch_staging_peak_);
  size_t passed = 0;
  bool out_of_reach = false;
  int visited = 0;  // entries of units gone or freed cost no bytes: a bound of its own
  uint64_t target = 0;
  std::shared_ptr<Unit> first;
  std::vector<std::shared_ptr<Unit>> units;
  try {
    use_order_.for_each_after(forecast_.call_in_iteration(), [&](uint64_t call, const std::shared_ptr<Unit>& u) {
      if (++visited > 4096) return false;
      if (!first) {
        if (u->dead) return true;
        if (u->state != UnitState::kCompressed) {  // staged: passed over, up to the reach
          if (u->prefetched) return false;
          passed += u->bytes();
          out_of_reach = passed > reach;
          return !out_of_reach;
        }
        first = u;
        target = call;
      } else if (call != target) {
        return false;  // the found call's uses end here
      }
      if (guessable(*u)) units.push_back(u);
      return true;
    });
  } catch (...) {
    return true;  // no memory for the list: no guess this time
  }
  if (!first) {
    guess_pending_ = out_of_reach;
    return true;  // everything the next calls need is staged (or a guess is in flight)
  }
  // Its ranges are still handed over or in use: the staging order may know
  // another one to stage meanwhile.
  if (units.empty()) return false;
  std::sort(units.begin(), units.end(), [](const auto& a, const auto& b) { return a->begin < b->begin; });
  units.erase(std::unique(units.begin(), units.end()), units.end());
  // Not staged for want of room: asked again at the next calls (prepare),
  // when the ranges used meanwhile may have made some.
  guess_pending_ = start_prefetch(first, &units);
  return true;
}

}  // namespace nz::rt
