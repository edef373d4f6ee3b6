// vmmprobe: what CUDA virtual-memory calls cost on this device, and whether
// cuMemUnmap waits for work on other streams. Prints a table, or --json.
// Exit codes: 0 ok; 1 a driver call failed; 2 bad usage or no driver.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "probes.h"
#include "report.h"

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
    else if (a == "--page-mb" && number(1, 1024, v)) opts.page_bytes = v << 20;
    else if (a == "--repeat" && number(1, 10000, v)) opts.repeat = static_cast<uint32_t>(v);
    else if (a == "--stall-mb" && number(0, 1u << 20, v)) opts.stall_mb = v;
    else if (a == "--stall-ms" && number(1, 100000, v)) opts.stall_ms = static_cast<uint32_t>(v);
    else if (a == "--device" && number(0, 1024, v)) opts.device = static_cast<int>(v);
    else {
      fmt::print(stderr,
                 "usage: vmmprobe [--max-pages N (512)] [--page-mb P (2)] [--repeat R (5)] [--stall-mb M (1024, 0 = skip)] "
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
  const std::string out = json ? vmmprobe::render_json(opts, rep) : vmmprobe::render_table(opts, rep);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}
