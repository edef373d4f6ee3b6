// vmmprobe: what CUDA virtual-memory calls cost on this device, and whether
// cuMemUnmap waits for work on other streams. Prints a table, or --json.
// Exit codes: 0 ok; 1 a driver call failed; 2 bad usage or no driver.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "probes.h"

int main(int argc, char** argv) {
  vmmprobe::ProbeOptions opts;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto number = [&](uint64_t lo, uint64_t hi, uint64_t& out) {
      if (i + 1 >= argc) return false;
      char* end = nullptr;
      const unsigned long long v = std::strtoull(argv[++i], &end, 10);
      if (*end != '\0' || v < lo || v > hi) return false;
      out = v;
      return true;
    };
    uint64_t v = 0;
    if (a == "--json") json = true;
    else if (a == "--max-pages" && number(1, 1u << 16, v)) opts.max_pages = static_cast<uint32_t>(v);
    else if (a == "--repeat" && number(1, 10000, v)) opts.repeat = static_cast<uint32_t>(v);
    else if (a == "--stall-mb" && number(0, 1u << 20, v)) opts.stall_mb = v;
    else if (a == "--stall-ms" && number(1, 100000, v)) opts.stall_ms = static_cast<uint32_t>(v);
    else if (a == "--device" && number(0, 1024, v)) opts.device = static_cast<int>(v);
    else {
      fmt::print(stderr,
                 "usage: vmmprobe [--max-pages N (512)] [--repeat R (5)] [--stall-mb M (1024, 0 = skip)] "
                 "[--stall-ms T (200)] [--device D] [--json]\n");
      return 2;
    }
  }
  vmmprobe::Driver drv;
  std::string error;
  if (!drv.load(error)) {
    fmt::print(stderr, "vmmprobe: {}\n", error);
    return 2;
  }
  vmmprobe::ProbeReport rep;
  if (!vmmprobe::run_probes(drv, opts, rep, error)) {
    fmt::print(stderr, "vmmprobe: {}\n", error);
    return 1;
  }
  const double gran_mib = static_cast<double>(rep.granularity) / (1 << 20);
  if (json) {
    std::string s = fmt::format("{{\"tool\": \"vmmprobe\", \"device\": \"{}\", \"granularity_bytes\": {}, \"repeat\": {}, "
                                "\"statistic\": \"median\", \"runs\": [",
                                rep.device_name, rep.granularity, opts.repeat);
    for (size_t i = 0; i < rep.runs.size(); ++i) {
      const auto& r = rep.runs[i];
      s += fmt::format("{}{{\"pages\": {}, \"create_us\": {:.3f}, \"map_us\": {:.3f}, \"set_access_us\": {:.3f}, "
                       "\"unmap_us\": {:.3f}}}",
                       i ? ", " : "", r.pages, r.create_us, r.map_us, r.set_access_us, r.unmap_us);
    }
    s += "], \"unmap_stall\": ";
    if (rep.stall.measured)
      s += fmt::format("{{\"work_ms\": {:.3f}, \"unmap_us\": {:.3f}, \"work_done_when_unmap_returned\": {}}}",
                       rep.stall.work_ms, rep.stall.unmap_us, rep.stall.work_done_at_return ? "true" : "false");
    else
      s += "null";
    s += "}\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
    return 0;
  }
  fmt::print("vmmprobe on {} (granularity {:.0f} KiB), median of {} calls, microseconds per call\n",
             rep.device_name, gran_mib * 1024, opts.repeat);
  fmt::print("{:>6} {:>9} {:>11} {:>9} {:>11} {:>9} {:>13} {:>10}\n", "pages", "MiB", "create", "map", "set_access",
             "unmap", "set_access/pg", "unmap/pg");
  for (const auto& r : rep.runs)
    fmt::print("{:>6} {:>9.0f} {:>11.1f} {:>9.1f} {:>11.1f} {:>9.1f} {:>13.2f} {:>10.2f}\n", r.pages,
               r.pages * gran_mib, r.create_us, r.map_us, r.set_access_us, r.unmap_us, r.set_access_us / r.pages,
               r.unmap_us / r.pages);
  if (rep.stall.measured)
    fmt::print("unmap stall: stream work {:.1f} ms; cuMemUnmap of unrelated memory meanwhile took {:.1f} us; "
               "work {} when it returned => {}\n",
               rep.stall.work_ms, rep.stall.unmap_us, rep.stall.work_done_at_return ? "DONE" : "still running",
               rep.stall.work_done_at_return ? "unmap WAITED for the other stream" : "unmap did not wait");
  return 0;
}
