#include "sim_cost.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace nzsim {
namespace {

struct Cost {
  double per_call_us = 0;
  double per_2mib_us = 0;
};

struct CostModel {
  Cost cost[static_cast<int>(CostedCall::kCount)];
};

// A100, per call and per 2 MiB handle (public measurements quoted in
// shared/BRIEF.md: create 8-193 µs, map 1-1.5 µs, set-access 21-36 µs, unmap
// 11-26 µs): middles of those ranges; reserve and launch from the CUDA
// programming guide's order of magnitude (a few µs of host time).
CostModel a100() {
  CostModel m;
  m.cost[static_cast<int>(CostedCall::kCreate)] = {0, 60};
  m.cost[static_cast<int>(CostedCall::kMap)] = {0, 1.2};
  m.cost[static_cast<int>(CostedCall::kAccess)] = {0, 28};
  m.cost[static_cast<int>(CostedCall::kUnmap)] = {0, 18};
  m.cost[static_cast<int>(CostedCall::kReserve)] = {5, 0};
  m.cost[static_cast<int>(CostedCall::kLaunch)] = {4, 0};
  return m;
}

// Measured on an H200 (driver 580.159.04; tools/vmmprobe, medians of 3 calls,
// runs of 1 to 512 pages of 2 MiB, docs/RESULTS.md §6.3): the cost is per
// call and nearly flat in size (create 14.6-36.6, map 0.9-2.2, set-access
// 47.7-66.2, unmap 27.2-37.0 µs). Reserve and launch as for a100.
CostModel h200() {
  CostModel m;
  m.cost[static_cast<int>(CostedCall::kCreate)] = {18, 0.05};
  m.cost[static_cast<int>(CostedCall::kMap)] = {1.5, 0};
  m.cost[static_cast<int>(CostedCall::kAccess)] = {50, 0};
  m.cost[static_cast<int>(CostedCall::kUnmap)] = {30, 0};
  m.cost[static_cast<int>(CostedCall::kReserve)] = {5, 0};
  m.cost[static_cast<int>(CostedCall::kLaunch)] = {4, 0};
  return m;
}

int call_of(const std::string& name) {
  static const char* const kNames[] = {"create", "map", "access", "unmap", "reserve", "launch"};
  for (int i = 0; i < static_cast<int>(CostedCall::kCount); ++i) {
    if (name == kNames[i]) return i;
  }
  return -1;
}

CostModel parse(const char* spec) {
  CostModel m;
  std::string s(spec);
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = s.find(',', pos);
    const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? s.size() + 1 : comma + 1;
    if (item.empty()) continue;
    if (item == "a100" || item == "h200") {
      m = item == "a100" ? a100() : h200();
      continue;
    }
    const size_t eq = item.find('=');
    const int call = eq == std::string::npos ? -1 : call_of(item.substr(0, eq));
    char* end = nullptr;
    const char* value = eq == std::string::npos ? "" : item.c_str() + eq + 1;
    Cost c;
    c.per_call_us = std::strtod(value, &end);
    if (end != nullptr && *end == '+') c.per_2mib_us = std::strtod(end + 1, &end);
    if (call < 0 || end == value || end == nullptr || *end != '\0' || c.per_call_us < 0 || c.per_2mib_us < 0) {
      std::fprintf(stderr, "nzsim: NZSIM_COST item '%s' ignored (call=us[+us_per_2MiB], calls: create map "
                           "access unmap reserve launch, or a100 / h200)\n", item.c_str());
      continue;
    }
    m.cost[call] = c;
  }
  return m;
}

const CostModel* model() {
  static const CostModel* const m = []() -> const CostModel* {
    const char* spec = std::getenv("NZSIM_COST");
    if (spec == nullptr || *spec == '\0') return nullptr;
    static const CostModel parsed = parse(spec);
    return &parsed;
  }();
  return m;
}

}  // namespace

void charge(CostedCall call, size_t bytes) {
  const CostModel* m = model();
  if (m == nullptr) return;
  const Cost& c = m->cost[static_cast<int>(call)];
  const double us = c.per_call_us + c.per_2mib_us * (static_cast<double>(bytes) / (2.0 * 1024 * 1024));
  if (us <= 0) return;
  // Spin, not sleep: sleeps are far coarser than a few microseconds.
  const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(static_cast<long long>(us * 1000));
  while (std::chrono::steady_clock::now() < until) {
  }
}

}  // namespace nzsim
