// render.cpp: the report. Sizes in the text are MiB (2^20 bytes); JSON keeps bytes.
#include "render.h"

#include <fmt/format.h>

#include <algorithm>

#include "util/json_value.h"

namespace nztrace {

namespace {

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

std::string fault_list(const TraceSummary& s) {
  std::string out;
  for (const auto& [api, n] : s.fault_apis) out += fmt::format("{}{} {}", out.empty() ? "" : ", ", api, n);
  return out;
}

std::string time_text(const TraceSummary& s) {
  if (!s.has_codec_time) return "decode/encode time: not in the trace (older runtime)";
  return fmt::format("host time {:.3f} ms (staging {:.3f} ms, encoding {:.3f} ms; device time not measured)",
                     s.codec_ns() / 1e6, s.stage_ns / 1e6, s.encode_ns / 1e6);
}

std::string ns_or_null(const TraceSummary& s, uint64_t ns) {
  return s.has_codec_time ? fmt::format("{}", ns) : "null";
}

}  // namespace

std::string render_text(const TraceSummary& s, const RunInfo& run, size_t top) {
  std::string o = fmt::format("nztrace: {} exited {}; {} trace events over {:.3f} s{}\n", run.command,
                              run.exit_status, s.events, s.duration_ns / 1e9,
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
                   "({:.1f} MiB), {} re-encodes ({:.1f} MiB) after {} store releases, {} drops, {} out-of-memory "
                   "evictions; {}\n",
                   s.stages, mib(s.bytes_decompressed), s.prefetches, s.faults,
                   s.fault_apis.empty() ? "" : " (" + fault_list(s) + ")", s.recompressions,
                   mib(s.bytes_recompressed), s.reencodes, mib(s.bytes_reencoded), s.store_releases, s.drops,
                   s.oom_events, time_text(s));
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
  }
  if (!run.trace_path.empty()) o += fmt::format("trace kept in {}\n", run.trace_path);
  return o;
}

std::string render_json(const TraceSummary& s, const RunInfo& run) {
  using nz::util::json::quote;
  std::string o = fmt::format(
      "{{\"tool\": \"nztrace\", \"schema_version\": 1, \"command\": {}, \"exit_status\": {}, \"trace\": {}, "
      "\"events\": {}, \"malformed_lines\": {}, \"duration_ns\": {},\n",
      quote(run.command), run.exit_status, run.trace_path.empty() ? "null" : quote(run.trace_path), s.events,
      s.malformed_lines, s.duration_ns);
  o += fmt::format(
      " \"memory\": {{\"saved_peak_bytes\": {}, \"saved_mean_bytes\": {:.0f}, \"saved_final_bytes\": {}, "
      "\"used_at_saved_peak_bytes\": {}, \"used_peak_bytes\": {}, \"allocated_peak_bytes\": {}, \"store_peak_bytes\": {}, "
      "\"staging_peak_bytes\": {}, \"compressed_original_bytes\": {}, \"compressed_bytes\": {}}},\n",
      s.saved_peak, s.saved_mean, s.saved_final, s.used_at_saved_peak, s.used_peak, s.allocated_bytes_peak,
      s.store_peak, s.staging_peak, s.compressed_original_bytes, s.compressed_bytes);
  std::string faults;
  for (const auto& [api, n] : s.fault_apis) faults += fmt::format("{}{}: {}", faults.empty() ? "" : ", ", quote(api), n);
  o += fmt::format(
      " \"cost\": {{\"decompressions\": {}, \"bytes_decompressed\": {}, \"prefetches\": {}, \"faults\": {}, "
      "\"faults_by_api\": {{{}}}, \"compressions\": {}, \"recompressions\": {}, \"bytes_recompressed\": {}, "
      "\"reencodes\": {}, \"bytes_reencoded\": {}, \"store_releases\": {}, "
      "\"drops\": {}, \"kept_resident\": {}, \"made_resident\": {}, \"oom_events\": {}, "
      "\"decode_ns\": {}, \"encode_ns\": {}, \"host_ns\": {}}},\n",
      s.stages, s.bytes_decompressed, s.prefetches, s.faults, faults, s.compressions, s.recompressions,
      s.bytes_recompressed, s.reencodes, s.bytes_reencoded, s.store_releases, s.drops, s.kept_resident,
      s.made_resident, s.oom_events, ns_or_null(s, s.stage_ns), ns_or_null(s, s.encode_ns),
      ns_or_null(s, s.codec_ns()));
  std::string counts;
  for (const auto& [ev, n] : s.event_counts) counts += fmt::format("{}{}: {}", counts.empty() ? "" : ", ", quote(ev), n);
  o += " \"event_counts\": {" + counts + "},\n \"buffers\": [";
  for (size_t i = 0; i < s.buffers.size(); ++i) {
    const BufferStats& b = s.buffers[i];
    o += fmt::format(
        "{}\n  {{\"address\": \"{:#x}\", \"bytes\": {}, \"allocation\": \"{:#x}\", \"dtype\": {}, \"compressed_bytes\": {}, "
        "\"ratio\": {}, \"compressions\": {}, \"staged\": {}, \"decompressions\": {}, \"prefetches\": {}, "
        "\"recompressions\": {}, \"reencodes\": {}, \"store_releases\": {}, \"drops\": {}, \"kept_resident\": {}, "
        "\"made_resident\": {}, \"freed\": {}}}",
        i ? "," : "", b.address, b.bytes, b.allocation, quote(dtype_name(b.dtype)), b.compressed_bytes,
        b.compressed_bytes ? fmt::format("{:.6f}", b.ratio()) : "null", b.compressions, b.stages, b.stages,
        b.prefetches, b.recompressions, b.reencodes, b.store_releases, b.drops,
        b.kept_resident.empty() ? "null" : quote(b.kept_resident), b.made_resident, b.freed);
  }
  o += "],\n \"timeline\": [";
  const auto samples = downsample(s.timeline, s.duration_ns, 200);
  for (size_t i = 0; i < samples.size(); ++i)
    o += fmt::format("{}{{\"t_ns\": {}, \"saved_bytes\": {}, \"used_bytes\": {}}}", i ? ", " : "", samples[i].t_ns,
                     samples[i].saved, samples[i].used);
  return o + "]}\n";
}

}  // namespace nztrace
