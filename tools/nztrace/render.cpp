// render.cpp: the report. Sizes in the text are MiB (2^20 bytes); JSON keeps bytes.
#include "render.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace nztrace {

namespace {

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

std::string fault_list(const TraceSummary& s) {
  std::string out;
  for (const auto& [api, n] : s.fault_apis) out += fmt::format("{}{} {}", out.empty() ? "" : ", ", api, n);
  return out;
}

std::string time_text(const TraceSummary& s) {
  if (!s.has_codec_time) {
    // Without a stage or an encode there was no time to report (memory
    // passed through, or nothing tagged): not an older runtime.
    if (s.stages + s.compressions + s.recompressions + s.reencodes == 0) return "no decode or encode";
    return "decode/encode time: not in the trace (older runtime)";
  }
  return fmt::format("host time {:.3f} ms (staging {:.3f} ms, encoding {:.3f} ms; device time not measured)",
                     s.codec_ns() / 1e6, s.stage_ns / 1e6, s.encode_ns / 1e6);
}

std::string ahead_text(std::optional<double> rate) {
  return rate ? fmt::format("{:.1f}% of stagings done ahead", *rate * 100.0) : "no stagings";
}

// The runtime's staging-work counters ("counters" lines); "" without them.
std::string counters_text(const TraceSummary& s) {
  if (!s.counters) return "";
  const CounterValues& c = *s.counters;
  std::string o = fmt::format(
      "staging work: {} VMM calls, {} decode launches, {:.1f} MiB decompressed, hook time {:.3f} s on launching "
      "threads ({:.3f} s waiting for the device), {}\n",
      c.vmm_calls, c.decode_launches, mib(static_cast<double>(c.bytes_decompressed)), c.hook_host_ns / 1e9,
      c.hook_wait_ns / 1e9, ahead_text(lookahead_hit_rate(c)));
  if (const auto st = s.steady_state())
    o += fmt::format(
        "staging work per iteration (steady state, mean of the {} iteration{} after the first): {:.1f} VMM calls, "
        "{:.1f} decode launches, {:.1f} MiB decompressed, hook time {:.3f} ms ({:.3f} ms waiting for the device), "
        "{}\n",
        st->iterations, st->iterations == 1 ? "" : "s", st->vmm_calls, st->decode_launches,
        mib(st->bytes_decompressed), st->hook_host_ns / 1e6, st->hook_wait_ns / 1e6,
        ahead_text(st->lookahead_hit_rate));
  return o;
}

}  // namespace

std::string site_text(const AllocSite& site, size_t max_frames) {
  std::string out;
  size_t n = 0;
  for (const auto* frames : {&site.python, &site.native}) {
    for (const auto& f : *frames) {
      if (n++ == max_frames) return out + " < ...";
      out += (out.empty() ? "" : " < ") + f;
    }
  }
  return out;
}

std::string render_text(const TraceSummary& s, const RunInfo& run, size_t top) {
  // Another process of the run: nztrace did not wait for it, so no status.
  const std::string who =
      run.pid ? fmt::format("process {}{} of {}", run.pid, s.rank ? fmt::format(" (rank {})", *s.rank) : "", run.command)
              : fmt::format("{} exited {}{}", run.command, run.exit_status, s.rank ? fmt::format("; rank {}", *s.rank) : "");
  std::string o = fmt::format("nztrace: {}; {} trace events over {:.3f} s{}\n", who, s.events, s.duration_ns / 1e9,
                              s.malformed_lines ? fmt::format(" ({} unreadable lines skipped)", s.malformed_lines) : "");
  if (s.events == 0) {
    o += "nztrace: the trace is empty: was libneuzip loaded (static binary? NEUZIP=0?) and did the program use the CUDA driver?\n";
    return o;
  }
  o += fmt::format("device memory saved: peak {:.1f} MiB (device in use then {:.1f} MiB, would have been {:.1f} MiB), "
                   "time-weighted mean {:.1f} MiB, at exit {:.1f} MiB\n",
                   mib(s.saved_peak), mib(s.used_at_saved_peak), mib(s.used_at_saved_peak + s.saved_peak),
                   mib(s.saved_mean), mib(s.saved_final));
  o += fmt::format("device in use peak {:.1f} MiB; managed allocations {} (peak {:.1f} MiB live); compressed store peak "
                   "{:.1f} MiB; staging peak {:.1f} MiB\n",
                   mib(s.used_peak), s.allocations, mib(s.allocated_bytes_peak), mib(s.store_peak), mib(s.staging_peak));
  if (s.compressed_original_bytes)
    o += fmt::format("compressed {} buffers: {:.1f} MiB -> {:.1f} MiB (ratio {:.4f}); kept resident {}, given up {}\n",
                     s.compressions, mib(s.compressed_original_bytes), mib(s.compressed_bytes),
                     static_cast<double>(s.compressed_bytes) / s.compressed_original_bytes, s.kept_resident,
                     s.made_resident);
  o += fmt::format("cost: {} decompressions ({:.1f} MiB, {} of them prefetched), {} faults{}, {} recompressions "
                   "({:.1f} MiB), {} re-encodes ({:.1f} MiB) after {} store releases{}, {} drops, {} out-of-memory "
                   "evictions; {}\n",
                   s.stages, mib(s.bytes_decompressed), s.prefetches, s.faults,
                   s.fault_apis.empty() ? "" : " (" + fault_list(s) + ")", s.recompressions,
                   mib(s.bytes_recompressed), s.reencodes, mib(s.bytes_reencoded), s.store_releases,
                   s.store_restores ? fmt::format(" ({} stores restored from host copies)", s.store_restores) : "",
                   s.drops, s.oom_events, time_text(s));
  if (s.parks)
    o += fmt::format("parked in host memory (no device memory to encode them at eviction): {} times, {:.1f} MiB, "
                     "at most {:.1f} MiB at once (host offload, not compression: their pages count as saved)\n",
                     s.parks, mib(s.bytes_parked), mib(s.parked_peak_bytes));
  if (s.shared_allocations)
    o += fmt::format("shared with other processes (CUDA IPC): {} allocation{}, {:.1f} MiB, kept uncompressed from "
                     "then on\n",
                     s.shared_allocations, s.shared_allocations == 1 ? "" : "s", mib(s.shared_bytes));
  if (s.dmabuf_allocations)
    o += fmt::format("exported as dma-bufs (NIC, storage): {} allocation{}, {:.1f} MiB, kept uncompressed from "
                     "then on\n",
                     s.dmabuf_allocations, s.dmabuf_allocations == 1 ? "" : "s", mib(s.dmabuf_bytes));
  if (s.stalled_waits)
    o += fmt::format("evictions that gave up waiting for a blocked stream: {} (staged over the budget instead; "
                     "NEUZIP_WAIT_PATIENCE_MS)\n",
                     s.stalled_waits);
  for (const auto& [kind, held] : s.unserved) {
    const bool vmm = kind == "program_vmm";
    o += fmt::format("not compressed, passed through: {} ({}){}; {}\n",
                     vmm ? "device memory the program maps itself" : "stream-ordered device memory",
                     vmm ? "cuMemCreate/cuMemMap" : "cuMemAllocAsync",
                     held ? fmt::format(", peak {:.1f} MiB", mib(held)) : ", asked for by PyTorch's allocator settings",
                     vmm ? "with PyTorch, drop expandable_segments:True" : "with PyTorch, drop backend:cudaMallocAsync");
  }
  o += counters_text(s);
  const auto samples = downsample(s.timeline, s.duration_ns, 10);
  o += "saved over time (MiB, max per tenth of the run):";
  for (const auto& p : samples) o += fmt::format(" {:.1f}", mib(p.saved));
  o += "\n";

  std::vector<const BufferStats*> order;
  for (const auto& b : s.buffers) order.push_back(&b);
  auto saving = [](const BufferStats* b) { return b->compressed_bytes ? b->bytes - std::min(b->bytes, b->compressed_bytes) : 0; };
  std::stable_sort(order.begin(), order.end(), [&](auto* a, auto* b) { return saving(a) > saving(b); });
  const size_t shown = top ? std::min(top, order.size()) : order.size();
  o += fmt::format("buffers ({} of {}, largest saving first):\n", shown, order.size());
  // Every staging is one decompression, so one column stands for both.
  o += fmt::format("  {:>16} {:>10} {:>5} {:>7} {:>7} {:>6} {:>7} {:>7} {:>6}  {}\n", "address", "MiB", "dtype",
                   "ratio", "staged", "pref", "recomp", "reenc", "drops", "note");
  for (size_t i = 0; i < shown; ++i) {
    const BufferStats& b = *order[i];
    std::string note = b.kept_resident.empty() ? "" : "kept resident (" + b.kept_resident + ")";
    if (b.made_resident) note += note.empty() ? "made resident" : ", made resident";
    o += fmt::format("  {:>#16x} {:>10.2f} {:>5} {:>7} {:>7} {:>6} {:>7} {:>7} {:>6}  {}\n", b.address,
                     mib(b.bytes), dtype_name(b.dtype), b.compressed_bytes ? fmt::format("{:.4f}", b.ratio()) : "-",
                     b.stages, b.prefetches, b.recompressions, b.reencodes, b.drops, note);
    if (auto it = b.site ? s.sites.find(*b.site) : s.sites.end(); it != s.sites.end())
      o += fmt::format("  {:>16} allocated at {}\n", "", site_text(it->second, 4));
  }
  if (!run.trace_path.empty()) o += fmt::format("trace kept in {}\n", run.trace_path);
  return o;
}

nlohmann::ordered_json report_json(const TraceSummary& s, const RunInfo& run) {
  using J = nlohmann::ordered_json;
  auto ns_or_null = [&](uint64_t ns) { return s.has_codec_time ? J(ns) : J(nullptr); };
  J o;
  o["tool"] = "nztrace";
  o["schema_version"] = 1;
  o["command"] = run.command;
  if (run.pid) o["pid"] = run.pid;
  else o["exit_status"] = run.exit_status;
  if (s.rank) o["rank"] = *s.rank;
  o["trace"] = run.trace_path.empty() ? J(nullptr) : J(run.trace_path);
  o["wall_ns"] = run.wall_ns ? J(run.wall_ns) : J(nullptr);
  o["events"] = s.events;
  o["malformed_lines"] = s.malformed_lines;
  o["duration_ns"] = s.duration_ns;
  o["memory"] = {{"saved_peak_bytes", s.saved_peak},
                 {"saved_mean_bytes", static_cast<uint64_t>(s.saved_mean + 0.5)},
                 {"saved_final_bytes", s.saved_final},
                 {"used_at_saved_peak_bytes", s.used_at_saved_peak},
                 {"used_peak_bytes", s.used_peak},
                 {"allocated_peak_bytes", s.allocated_bytes_peak},
                 {"store_peak_bytes", s.store_peak},
                 {"staging_peak_bytes", s.staging_peak},
                 {"compressed_original_bytes", s.compressed_original_bytes},
                 {"compressed_bytes", s.compressed_bytes}};
  J faults = J::object();
  for (const auto& [api, n] : s.fault_apis) faults[api] = n;
  o["cost"] = {{"decompressions", s.stages},
               {"bytes_decompressed", s.bytes_decompressed},
               {"prefetches", s.prefetches},
               {"faults", s.faults},
               {"faults_by_api", faults},
               {"compressions", s.compressions},
               {"recompressions", s.recompressions},
               {"bytes_recompressed", s.bytes_recompressed},
               {"reencodes", s.reencodes},
               {"bytes_reencoded", s.bytes_reencoded},
               {"store_releases", s.store_releases},
               {"store_restores", s.store_restores},
               {"parks", s.parks},
               {"bytes_parked", s.bytes_parked},
               {"parked_peak_bytes", s.parked_peak_bytes},
               {"drops", s.drops},
               {"kept_resident", s.kept_resident},
               {"made_resident", s.made_resident},
               {"oom_events", s.oom_events},
               {"shared_allocations", s.shared_allocations},
               {"shared_bytes", s.shared_bytes},
               {"dmabuf_allocations", s.dmabuf_allocations},
               {"dmabuf_bytes", s.dmabuf_bytes},
               {"stalled_waits", s.stalled_waits},
               {"decode_ns", ns_or_null(s.stage_ns)},
               {"encode_ns", ns_or_null(s.encode_ns)},
               {"host_ns", ns_or_null(s.codec_ns())}};
  // The runtime's staging-work counters (the last "counters" line), top level;
  // null when the trace has none (older runtimes).
  auto counter = [&](uint64_t CounterValues::*field) { return s.counters ? J((*s.counters).*field) : J(nullptr); };
  o["vmm_calls"] = counter(&CounterValues::vmm_calls);
  o["decode_launches"] = counter(&CounterValues::decode_launches);
  o["bytes_decompressed"] = counter(&CounterValues::bytes_decompressed);
  o["hook_host_ns"] = counter(&CounterValues::hook_host_ns);
  o["hook_wait_ns"] = counter(&CounterValues::hook_wait_ns);
  o["stagings_ahead"] = counter(&CounterValues::stagings_ahead);
  o["stagings_on_launch"] = counter(&CounterValues::stagings_on_launch);
  const auto rate = s.counters ? lookahead_hit_rate(*s.counters) : std::nullopt;
  o["lookahead_hit_rate"] = rate ? J(*rate) : J(nullptr);
  if (s.counters) {
    o["per_iteration"] = J::array();
    for (const IterationCounters& it : s.per_iteration) {
      const CounterValues& d = it.delta;
      o["per_iteration"].push_back({{"iteration", it.iteration},
                                    {"t_ns", it.t_ns},
                                    {"duration_ns", it.duration_ns},
                                    {"vmm_calls", d.vmm_calls},
                                    {"decode_launches", d.decode_launches},
                                    {"bytes_decompressed", d.bytes_decompressed},
                                    {"hook_host_ns", d.hook_host_ns},
                                    {"hook_wait_ns", d.hook_wait_ns},
                                    {"stagings_ahead", d.stagings_ahead},
                                    {"stagings_on_launch", d.stagings_on_launch}});
    }
  } else {
    o["per_iteration"] = nullptr;
  }
  // Memory passed through, by kind: its peak (0: PyTorch's allocator
  // settings asked for it, nothing held); null when the runtime said nothing.
  o["unserved"] = nullptr;
  for (const auto& [kind, held] : s.unserved) o["unserved"][kind] = held;
  o["event_counts"] = J::object();
  for (const auto& [ev, n] : s.event_counts) o["event_counts"][ev] = n;
  o["buffers"] = J::array();
  for (const BufferStats& b : s.buffers) {
    J site = nullptr;
    if (auto it = b.site ? s.sites.find(*b.site) : s.sites.end(); it != s.sites.end())
      site = {{"python", it->second.python}, {"native", it->second.native}};
    o["buffers"].push_back({{"address", fmt::format("{:#x}", b.address)},
                            {"bytes", b.bytes},
                            {"allocation", fmt::format("{:#x}", b.allocation)},
                            {"dtype", dtype_name(b.dtype)},
                            {"compressed_bytes", b.compressed_bytes},
                            {"ratio", b.compressed_bytes ? J(b.ratio()) : J(nullptr)},
                            {"compressions", b.compressions},
                            {"staged", b.stages},
                            {"decompressions", b.stages},
                            {"prefetches", b.prefetches},
                            {"recompressions", b.recompressions},
                            {"reencodes", b.reencodes},
                            {"store_releases", b.store_releases},
                            {"parks", b.parks},
                            {"drops", b.drops},
                            {"kept_resident", b.kept_resident.empty() ? J(nullptr) : J(b.kept_resident)},
                            {"made_resident", b.made_resident},
                            {"freed", b.freed},
                            {"site", site}});
  }
  o["timeline"] = J::array();
  for (const auto& p : downsample(s.timeline, s.duration_ns, 200))
    o["timeline"].push_back({{"t_ns", p.t_ns}, {"saved_bytes", p.saved}, {"used_bytes", p.used}});
  return o;
}

std::string render_json(const TraceSummary& s, const RunInfo& run) {
  return report_json(s, run).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace nztrace
