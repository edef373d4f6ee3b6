// perfetto.cpp: see perfetto.h. Timestamps are microseconds (the format's unit).
#include "perfetto.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

namespace nztrace {

namespace {

using J = nlohmann::ordered_json;

constexpr int kInternalTid = 1;  // compress and evictions: the runtime's internal stream
constexpr int kFirstStreamTid = 10;

double us(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

// Streams the runtime prefetches on: a "prefetch" event right after the
// "stage" of the same range (Runtime::start_prefetch emits them in a row).
std::set<uint64_t> prefetch_streams(const TraceFile& trace) {
  std::set<uint64_t> out;
  for (size_t i = 1; i < trace.events.size(); ++i) {
    const auto& prev = trace.events[i - 1];
    const auto& e = trace.events[i];
    if (e.event == "prefetch" && prev.event == "stage" && prev.ptr == e.ptr && prev.stream) out.insert(*prev.stream);
  }
  return out;
}

class RunWriter {
 public:
  RunWriter(J& events, int pid, const PerfettoRun& run) : events_(events), pid_(pid), run_(run) {}

  void write() {
    const auto& ev = run_.trace->events;
    if (ev.empty()) return;
    meta("process_name", 0, run_.name);
    meta("thread_name", kInternalTid, "neuzip internal stream (compress, evict)");
    prefetch_ = prefetch_streams(*run_.trace);
    t0_ = ev.front().t_ns;
    const auto& timeline = run_.summary->timeline;
    for (size_t i = 0; i < ev.size(); ++i) {
      const TraceEvent& e = ev[i];
      const uint64_t t = e.t_ns >= t0_ ? e.t_ns - t0_ : 0;
      if (i < timeline.size()) counters(t, timeline[i]);
      if (e.event == "stage") {
        const int tid = stream_tid(e.stream);
        slice(tid, t, e.ns.value_or(0), e.stream && prefetch_.count(*e.stream) ? "decode ahead (prefetch)" : "stage",
              e);
      } else if (e.event == "compress") {
        slice(kInternalTid, t, e.ns.value_or(0), "compress", e);
      } else if (e.event == "recompress" || e.event == "reencode") {
        slice(kInternalTid, t, e.ns.value_or(0), "evict: " + e.event, e);
      } else if (e.event == "drop") {
        instant(t, "evict: drop", "t", kInternalTid, {{"ptr", hex(e.ptr)}, {"bytes", e.bytes}});
      } else if (e.event == "fault") {
        instant(t, "fault", "p", 0, {{"api", e.api}});
      } else if (e.event == "oom") {
        instant(t, "out of memory", "p", 0, {{"bytes_wanted", e.bytes}, {"freed", e.freed.value_or(0)}});
      }
    }
  }

 private:
  static std::string hex(uint64_t v) { return fmt::format("{:#x}", v); }

  void meta(const char* what, int tid, const std::string& name) {
    events_.push_back({{"ph", "M"}, {"pid", pid_}, {"tid", tid}, {"name", what}, {"args", {{"name", name}}}});
  }

  int stream_tid(const std::optional<uint64_t>& stream) {
    const uint64_t key = stream.value_or(~uint64_t{0});
    auto it = tids_.find(key);
    if (it != tids_.end()) return it->second;
    const int tid = kFirstStreamTid + static_cast<int>(tids_.size());
    tids_.emplace(key, tid);
    std::string name = !stream ? "stream (not in the trace)"
                       : prefetch_.count(*stream) ? "neuzip prefetch stream " + hex(*stream)
                       : *stream == 0 ? "stream 0 (legacy default)"
                                      : "stream " + hex(*stream);
    meta("thread_name", tid, name);
    return tid;
  }

  // Counter samples only where a value changed: a long trace stays small.
  void counters(uint64_t t, const FootprintSample& p) {
    const uint64_t values[] = {p.used, p.store, p.staging, p.saved};
    static const char* const names[] = {"device in use", "compressed store", "staging", "saved"};
    for (size_t k = 0; k < 4; ++k) {
      if (have_last_ && last_[k] == values[k]) continue;
      events_.push_back({{"ph", "C"}, {"pid", pid_}, {"name", names[k]}, {"ts", us(t)}, {"args", {{"bytes", values[k]}}}});
      last_[k] = values[k];
    }
    have_last_ = true;
  }

  // The event is written when the operation ended and "ns" is its length.
  // Consecutive slices of one track may overlap by the few microseconds
  // between the end of one operation and its trace line: they are clipped so
  // that each track stays a sequence, as the format requires.
  void slice(int tid, uint64_t end, uint64_t ns, const std::string& name, const TraceEvent& e) {
    uint64_t begin = end >= ns ? end - ns : 0;
    uint64_t& track_end = track_end_[tid];
    begin = std::max(begin, track_end);
    const uint64_t stop = std::max(begin, end);
    track_end = stop;
    J args = {{"ptr", hex(e.ptr)}, {"bytes", e.bytes}, {"ns", e.ns ? J(*e.ns) : J(nullptr)}};
    if (e.compressed) args["compressed"] = *e.compressed;
    events_.push_back({{"ph", "X"}, {"pid", pid_}, {"tid", tid}, {"name", name}, {"cat", "neuzip"},
                       {"ts", us(begin)}, {"dur", us(stop - begin)}, {"args", args}});
  }

  void instant(uint64_t t, const std::string& name, const char* scope, int tid, J args) {
    events_.push_back({{"ph", "i"}, {"pid", pid_}, {"tid", tid}, {"name", name}, {"cat", "neuzip"}, {"s", scope},
                       {"ts", us(t)}, {"args", std::move(args)}});
  }

  J& events_;
  int pid_;
  const PerfettoRun& run_;
  std::set<uint64_t> prefetch_;
  std::map<uint64_t, int> tids_;
  std::map<int, uint64_t> track_end_;
  uint64_t t0_ = 0;
  uint64_t last_[4] = {};
  bool have_last_ = false;
};

}  // namespace

J perfetto_trace(const std::vector<PerfettoRun>& runs) {
  J events = J::array();
  for (size_t i = 0; i < runs.size(); ++i) RunWriter(events, static_cast<int>(i) + 1, runs[i]).write();
  return J{{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
}

}  // namespace nztrace
