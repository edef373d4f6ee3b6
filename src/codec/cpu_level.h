// cpu_level.h: which instruction-set level the codec's hot loops run at.
//
// Every SIMD path of the codec belongs to one level: scalar (the portable
// reference), AVX2 (with F16C), or AVX-512 (F, BW, VL, DQ; some AVX-512
// paths also need VBMI/VBMI2, and where the CPU lacks them, or a job has no
// AVX-512 path, the AVX2 path of the same job runs). All levels produce identical bytes; the level only chooses
// speed. The level of a process is the best one the CPU supports, unless
// NEUZIP_CPU=scalar|avx2|avx512 asks for another: a level the CPU lacks is
// replaced by the best supported one, with one `neuzip:` line on stderr.
// Tests and benchmarks may also switch the level in-process (set_cpu_level).
#pragma once

#include <cstdint>

namespace nz::codec {

enum class CpuLevel : uint8_t { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

inline constexpr CpuLevel kAllCpuLevels[] = {CpuLevel::kScalar, CpuLevel::kAvx2, CpuLevel::kAvx512};

// Whether this CPU (and OS) can run code of that level.
bool cpu_level_supported(CpuLevel level);

// The best supported level, ignoring NEUZIP_CPU.
CpuLevel best_cpu_level();

// The level the codec uses now: NEUZIP_CPU (read once) or the best one,
// unless set_cpu_level has chosen another.
CpuLevel cpu_level();

// Makes `level` the one cpu_level() returns, for every thread, from now on;
// an unsupported level is replaced by the best supported one (no message).
// Returns the level actually set. For tests and benchmarks: a call that is
// already running keeps the level it started with.
CpuLevel set_cpu_level(CpuLevel level);

// "scalar", "avx2", "avx512".
const char* cpu_level_name(CpuLevel level);

// Parses a name as above; false for anything else.
bool parse_cpu_level(const char* name, CpuLevel& out);

// AVX-512 VBMI and VBMI2 (the byte permutes, multishift, 16-bit
// compress/expand some AVX-512 paths use on top of the level's base).
bool cpu_has_avx512_vbmi();

// Whether code of level `wanted` may run when the codec runs at `level`.
inline bool level_allows(CpuLevel level, CpuLevel wanted) {
  return static_cast<uint8_t>(level) >= static_cast<uint8_t>(wanted);
}

}  // namespace nz::codec
