// trace_summary.cpp: replays the trace's events over a model of the
// runtime's units to recover saved bytes over time and per-buffer counts.
#include "trace_summary.h"

#include <algorithm>

namespace nztrace {

namespace {

struct Tag {
  uint64_t begin, end;
  int64_t dtype;
};

struct Replay {
  explicit Replay(TraceSummary& summary) : s(summary) {}
  TraceSummary& s;
  std::map<uint64_t, BufferStats> live;     // units by address
  std::map<uint64_t, uint64_t> allocs;      // base -> bytes
  std::map<uint64_t, uint64_t> alloc_sites;  // base -> site id
  std::vector<Tag> tags;
  std::map<uint64_t, uint64_t> parked;     // units in host memory now: address -> bytes
  uint64_t parked_bytes = 0;
  uint64_t released = 0;                    // bytes of units whose own memory the runtime gave back
  uint64_t live_alloc_bytes = 0;
  uint64_t last_store = 0, last_staging = 0, last_used = 0;
  uint64_t last_counters_t = 0;             // time of the previous counters line, since the first event

  void finish(std::map<uint64_t, BufferStats>::iterator it) {
    s.buffers.push_back(it->second);
    live.erase(it);
  }

  uint64_t allocation_of(uint64_t ptr) const {
    auto it = allocs.upper_bound(ptr);
    if (it == allocs.begin()) return 0;
    --it;
    return ptr < it->first + it->second ? it->first : 0;
  }

  BufferStats& unit(uint64_t ptr, uint64_t bytes) {
    auto it = live.find(ptr);
    if (it != live.end()) return it->second;
    BufferStats b;
    b.address = ptr;
    b.bytes = bytes;
    b.allocation = allocation_of(ptr);
    if (auto site = alloc_sites.find(b.allocation); site != alloc_sites.end()) b.site = site->second;
    for (auto t = tags.rbegin(); t != tags.rend(); ++t) {
      if (ptr >= t->begin && ptr < t->end) {
        b.dtype = t->dtype;
        break;
      }
    }
    return live.emplace(ptr, b).first->second;
  }

  void on_free(uint64_t base, uint64_t bytes) {
    const uint64_t end = base + bytes;
    unpark(base, end);
    for (auto it = live.lower_bound(base); it != live.end() && it->first < end;) {
      auto next = std::next(it);
      if (it->second.compressed_bytes && !it->second.made_resident) released -= std::min(released, it->second.bytes);
      it->second.freed = true;
      finish(it);
      it = next;
    }
    std::erase_if(tags, [&](const Tag& t) { return t.begin >= base && t.begin < end; });
    alloc_sites.erase(base);
    if (auto a = allocs.find(base); a != allocs.end()) {
      live_alloc_bytes -= std::min(live_alloc_bytes, a->second);
      allocs.erase(a);
    }
  }

  // Parked units in [begin, end) are back on the device (staged) or gone (freed).
  void unpark(uint64_t begin, uint64_t end) {
    for (auto it = parked.lower_bound(begin); it != parked.end() && it->first < end;) {
      parked_bytes -= std::min(parked_bytes, it->second);
      it = parked.erase(it);
    }
  }

  // recompress and reencode: the unit holds a new encoding of `e.bytes`.
  BufferStats& encoded_again(const TraceEvent& e) {
    BufferStats& b = unit(e.ptr, e.bytes);
    if (e.compressed) b.compressed_bytes = *e.compressed;
    return b;
  }

  void add_time(const TraceEvent& e, uint64_t& total) {
    if (!e.ns) return;
    s.has_codec_time = true;
    total += *e.ns;
  }

  uint64_t sub(uint64_t later, uint64_t earlier) const { return later > earlier ? later - earlier : 0; }

  // A counters line: the totals so far; the work since the previous line.
  void on_counters(const TraceEvent& e, uint64_t t) {
    const CounterValues& c = *e.counters;
    if (s.counters) {
      const CounterValues& p = *s.counters;
      IterationCounters it;
      it.iteration = s.counters_iteration.value_or(0);
      it.t_ns = last_counters_t;
      it.duration_ns = sub(t, last_counters_t);
      it.delta = {sub(c.vmm_calls, p.vmm_calls),
                  sub(c.decode_launches, p.decode_launches),
                  sub(c.bytes_decompressed, p.bytes_decompressed),
                  sub(c.hook_host_ns, p.hook_host_ns),
                  sub(c.hook_wait_ns, p.hook_wait_ns),
                  sub(c.stagings_ahead, p.stagings_ahead),
                  sub(c.stagings_on_launch, p.stagings_on_launch)};
      s.per_iteration.push_back(it);
    }
    // The peaks of memory passed through: the runtime's figure, once it said so.
    for (const auto& [kind, peak] : {std::pair<const char*, uint64_t>{"program_vmm", e.unserved_vmm_peak},
                                     std::pair<const char*, uint64_t>{"stream_ordered", e.unserved_async_peak}}) {
      if (auto it = s.unserved.find(kind); it != s.unserved.end()) it->second = std::max(it->second, peak);
    }
    ++s.counters_events;
    s.counters = c;
    s.counters_iteration = e.iteration.value_or(0);
    last_counters_t = t;
  }

  void apply(const TraceEvent& e) {
    ++s.event_counts[e.event];
    const std::string& ev = e.event;
    if (ev == "alloc") {
      ++s.allocations;
      allocs[e.ptr] = e.bytes;
      if (e.site) alloc_sites[e.ptr] = *e.site;
      live_alloc_bytes += e.bytes;
      s.allocated_bytes_peak = std::max(s.allocated_bytes_peak, live_alloc_bytes);
    } else if (ev == "site") {
      if (e.site) s.sites[*e.site] = AllocSite{e.native, e.python};
    } else if (ev == "free") {
      on_free(e.ptr, e.bytes);
    } else if (ev == "tag") {
      tags.push_back({e.ptr, e.ptr + e.bytes, e.dtype.value_or(-1)});
      for (auto it = live.lower_bound(e.ptr); it != live.end() && it->first < e.ptr + e.bytes; ++it)
        it->second.dtype = e.dtype.value_or(-1);
    } else if (ev == "untag") {
      std::erase_if(tags, [&](const Tag& t) { return t.begin >= e.ptr && t.end <= e.ptr + e.bytes; });
    } else if (ev == "unit") {
      unit(e.ptr, e.bytes);
    } else if (ev == "compress") {
      BufferStats& b = unit(e.ptr, e.bytes);
      if (b.compressed_bytes == 0) released += b.bytes;
      b.compressed_bytes = e.compressed.value_or(0);
      ++b.compressions;
      ++s.compressions;
      s.compressed_original_bytes += e.bytes;
      s.compressed_bytes += e.compressed.value_or(0);
      add_time(e, s.encode_ns);
    } else if (ev == "park") {
      ++unit(e.ptr, e.bytes).parks;
      ++s.parks;
      s.bytes_parked += e.bytes;
      if (parked.emplace(e.ptr, e.bytes).second) parked_bytes += e.bytes;
      s.parked_peak_bytes = std::max(s.parked_peak_bytes, parked_bytes);
    } else if (ev == "stage") {
      unpark(e.ptr, e.ptr + 1);
      ++unit(e.ptr, e.bytes).stages;
      ++s.stages;
      s.bytes_decompressed += e.bytes;
      add_time(e, s.stage_ns);
    } else if (ev == "prefetch") {
      ++unit(e.ptr, e.bytes).prefetches;
      ++s.prefetches;
    } else if (ev == "recompress") {
      ++encoded_again(e).recompressions;
      ++s.recompressions;
      s.bytes_recompressed += e.bytes;
      add_time(e, s.encode_ns);
    } else if (ev == "reencode") {
      ++encoded_again(e).reencodes;
      ++s.reencodes;
      s.bytes_reencoded += e.bytes;
      add_time(e, s.encode_ns);
    } else if (ev == "store_release") {
      // The unit stays staged and its pages stay released; only the store
      // shrinks, and `store` on the line already says so.
      ++unit(e.ptr, e.bytes).store_releases;
      ++s.store_releases;
    } else if (ev == "store_restore") {
      // The store given up while staged came back from its host copy (a
      // copy over the bus, no encode); `store` on the line says its size.
      ++s.store_restores;
    } else if (ev == "drop") {
      ++unit(e.ptr, e.bytes).drops;
      ++s.drops;
    } else if (ev == "keep_resident") {
      unit(e.ptr, e.bytes).kept_resident = e.reason.empty() ? "yes" : e.reason;
      ++s.kept_resident;
    } else if (ev == "resident") {
      auto it = live.find(e.ptr);
      if (it != live.end()) {
        if (it->second.compressed_bytes) released -= std::min(released, it->second.bytes);
        it->second.made_resident = true;
        finish(it);
      }
      ++s.made_resident;
    } else if (ev == "share") {
      ++s.shared_allocations;
      s.shared_bytes += e.bytes;
    } else if (ev == "dmabuf") {
      ++s.dmabuf_allocations;
      s.dmabuf_bytes += e.bytes;
    } else if (ev == "stalled") {
      ++s.stalled_waits;
    } else if (ev == "fault") {
      ++s.faults;
      ++s.fault_apis[e.api.empty() ? "?" : e.api];
    } else if (ev == "oom") {
      ++s.oom_events;
    } else if (ev == "unserved") {
      uint64_t& held = s.unserved[e.reason.empty() ? "?" : e.reason];
      held = std::max(held, e.bytes);
    }
    if (e.store) last_store = *e.store;
    if (e.staging) last_staging = *e.staging;
    if (e.used) last_used = *e.used;
    s.store_peak = std::max(s.store_peak, last_store);
    s.staging_peak = std::max(s.staging_peak, last_staging);
    s.used_peak = std::max(s.used_peak, last_used);
  }

  uint64_t saved() const {
    const uint64_t cost = last_store + last_staging;
    return released > cost ? released - cost : 0;
  }
};

}  // namespace

TraceSummary summarize(const TraceFile& trace) {
  TraceSummary s;
  s.events = trace.events.size();
  s.malformed_lines = trace.malformed_lines;
  if (trace.events.empty()) return s;
  Replay r(s);
  const uint64_t t0 = trace.events.front().t_ns;
  double weighted = 0;
  uint64_t prev_t = 0, prev_saved = 0;
  for (const TraceEvent& e : trace.events) {
    r.apply(e);
    const uint64_t t = e.t_ns >= t0 ? e.t_ns - t0 : 0;
    if (e.counters) r.on_counters(e, t);
    if (e.pid) s.pid = e.pid;
    if (e.rank) s.rank = e.rank;
    weighted += static_cast<double>(prev_saved) * static_cast<double>(t - std::min(t, prev_t));
    const uint64_t saved = r.saved();
    s.timeline.push_back({t, saved, r.last_used, r.last_store, r.last_staging});
    if (saved > s.saved_peak) {
      s.saved_peak = saved;
      s.used_at_saved_peak = r.last_used;
    }
    prev_t = std::max(prev_t, t);
    prev_saved = saved;
  }
  s.duration_ns = prev_t;
  s.saved_final = prev_saved;
  s.saved_mean = s.duration_ns ? weighted / static_cast<double>(s.duration_ns) : static_cast<double>(s.saved_peak);
  for (auto it = r.live.begin(); it != r.live.end();) r.finish(it++);
  std::stable_sort(s.buffers.begin(), s.buffers.end(),
                   [](const BufferStats& a, const BufferStats& b) { return a.address < b.address; });
  return s;
}

std::optional<double> lookahead_hit_rate(const CounterValues& c) {
  const uint64_t all = c.stagings_ahead + c.stagings_on_launch;
  if (all == 0) return std::nullopt;
  return static_cast<double>(c.stagings_ahead) / static_cast<double>(all);
}

std::optional<SteadyState> TraceSummary::steady_state() const {
  if (counters_events < 3 || per_iteration.size() < 2) return std::nullopt;
  SteadyState st;
  CounterValues sum;
  for (size_t i = 1; i < per_iteration.size(); ++i) {
    const CounterValues& d = per_iteration[i].delta;
    sum.vmm_calls += d.vmm_calls;
    sum.decode_launches += d.decode_launches;
    sum.bytes_decompressed += d.bytes_decompressed;
    sum.hook_host_ns += d.hook_host_ns;
    sum.hook_wait_ns += d.hook_wait_ns;
    sum.stagings_ahead += d.stagings_ahead;
    sum.stagings_on_launch += d.stagings_on_launch;
  }
  st.iterations = per_iteration.size() - 1;
  const double n = static_cast<double>(st.iterations);
  st.vmm_calls = static_cast<double>(sum.vmm_calls) / n;
  st.decode_launches = static_cast<double>(sum.decode_launches) / n;
  st.bytes_decompressed = static_cast<double>(sum.bytes_decompressed) / n;
  st.hook_host_ns = static_cast<double>(sum.hook_host_ns) / n;
  st.hook_wait_ns = static_cast<double>(sum.hook_wait_ns) / n;
  st.lookahead_hit_rate = lookahead_hit_rate(sum);
  return st;
}

std::vector<FootprintSample> downsample(const std::vector<FootprintSample>& timeline, uint64_t duration_ns,
                                        size_t points) {
  if (timeline.size() <= points || points == 0) return timeline;
  std::vector<FootprintSample> out(points), last(points);
  std::vector<bool> seen(points, false);
  for (size_t i = 0; i < points; ++i) out[i].t_ns = duration_ns * i / points;
  for (const auto& p : timeline) {
    const size_t i = duration_ns ? std::min(points - 1, static_cast<size_t>(static_cast<double>(p.t_ns) /
                                                                           static_cast<double>(duration_ns) * points))
                                 : 0;
    if (!seen[i] || p.saved >= out[i].saved) out[i].saved = p.saved, out[i].used = p.used;
    seen[i] = true;
    last[i] = p;
  }
  // A slice without events holds what the previous slice ended with.
  for (size_t i = 1; i < points; ++i) {
    if (seen[i]) continue;
    out[i].saved = last[i - 1].saved;
    out[i].used = last[i - 1].used;
    last[i] = last[i - 1];
  }
  return out;
}

const char* dtype_name(int64_t dtype) {
  switch (dtype) {
    case 0: return "bytes";
    case 1: return "bf16";
    case 2: return "fp16";
    case 3: return "fp32";
    default: return "?";
  }
}

}  // namespace nztrace
