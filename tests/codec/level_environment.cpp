// Linked into every codec suite. Meson runs each suite once per
// instruction-set level with NEUZIP_CPU set (tests/codec/meson.build); when
// that names a level this CPU lacks, the codec would quietly run the best
// one instead, repeating another run: the suite exits with 77, which Meson
// reports as skipped.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "codec/cpu_level.h"

namespace {

class LevelEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* env = std::getenv("NEUZIP_CPU");
    nz::codec::CpuLevel level;
    if (env != nullptr && nz::codec::parse_cpu_level(env, level) && !nz::codec::cpu_level_supported(level)) {
      std::printf("NEUZIP_CPU=%s: this CPU lacks that level; skipped\n", env);
      std::exit(77);
    }
  }
};

[[maybe_unused]] ::testing::Environment* const kLevelEnvironment =
    ::testing::AddGlobalTestEnvironment(new LevelEnvironment);

}  // namespace
