// The codec's instruction-set level (cpu_level.h): detection, NEUZIP_CPU,
// and the in-process override.
#include "codec/cpu_level.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace nz::codec {

namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// __builtin_cpu_supports also checks that the OS saves the YMM/ZMM state.
// F16C (fp16 conversions) comes with every AVX2 CPU; the AVX2 paths use it.
// (clang's __builtin_cpu_supports has no "f16c": CPUID leaf 1, ECX bit 29.)
bool has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
}
bool has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") && has_f16c(); }
bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
bool has_vbmi() { return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2"); }
#else
bool has_avx2() { return false; }
bool has_avx512() { return false; }
bool has_vbmi() { return false; }
#endif

// The level from NEUZIP_CPU, or the best one; called once.
CpuLevel initial_level() {
  const CpuLevel best = best_cpu_level();
  const char* env = std::getenv("NEUZIP_CPU");
  if (env == nullptr || *env == '\0') return best;
  CpuLevel wanted;
  if (!parse_cpu_level(env, wanted)) {
    std::fprintf(stderr, "neuzip: NEUZIP_CPU=%s is not scalar, avx2 or avx512; using %s\n", env,
                 cpu_level_name(best));
    return best;
  }
  if (!cpu_level_supported(wanted)) {
    std::fprintf(stderr, "neuzip: NEUZIP_CPU=%s: this CPU lacks %s; using %s\n", env, cpu_level_name(wanted),
                 cpu_level_name(best));
    return best;
  }
  return wanted;
}

// 0xFF: not read yet. Reading NEUZIP_CPU twice in a race prints its line
// twice at worst; both threads store the same value.
std::atomic<uint8_t> g_level{0xFF};

}  // namespace

bool cpu_level_supported(CpuLevel level) {
  switch (level) {
    case CpuLevel::kScalar: return true;
    case CpuLevel::kAvx2: {
      static const bool ok = has_avx2();
      return ok;
    }
    case CpuLevel::kAvx512: {
      static const bool ok = has_avx512();
      return ok;
    }
  }
  return false;
}

CpuLevel best_cpu_level() {
  if (cpu_level_supported(CpuLevel::kAvx512)) return CpuLevel::kAvx512;
  if (cpu_level_supported(CpuLevel::kAvx2)) return CpuLevel::kAvx2;
  return CpuLevel::kScalar;
}

CpuLevel cpu_level() {
  uint8_t v = g_level.load(std::memory_order_relaxed);
  if (v == 0xFF) {
    v = static_cast<uint8_t>(initial_level());
    uint8_t expected = 0xFF;
    // A set_cpu_level that got in first wins.
    if (!g_level.compare_exchange_strong(expected, v, std::memory_order_relaxed)) v = expected;
  }
  return static_cast<CpuLevel>(v);
}

CpuLevel set_cpu_level(CpuLevel level) {
  if (!cpu_level_supported(level)) level = best_cpu_level();
  g_level.store(static_cast<uint8_t>(level), std::memory_order_relaxed);
  return level;
}

const char* cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::kScalar: return "scalar";
    case CpuLevel::kAvx2: return "avx2";
    case CpuLevel::kAvx512: return "avx512";
  }
  return "unknown";
}

bool parse_cpu_level(const char* name, CpuLevel& out) {
  for (CpuLevel l : kAllCpuLevels) {
    if (std::strcmp(name, cpu_level_name(l)) == 0) {
      out = l;
      return true;
    }
  }
  return false;
}

bool cpu_has_avx512_vbmi() {
  static const bool ok = cpu_level_supported(CpuLevel::kAvx512) && has_vbmi();
  return ok;
}

}  // namespace nz::codec
