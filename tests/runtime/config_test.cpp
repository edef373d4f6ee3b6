#include "runtime/config.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "neuzip/runtime.h"

namespace nz::rt {
namespace {

Config parse(const std::map<std::string, std::string>& env) {
  return parse_config([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(Config, DefaultsAreLosslessAdaptiveQuiet) {
  Config c = parse({});
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(c.mode, NZ_LOSSLESS);
  EXPECT_FALSE(c.staging_bytes.has_value());
  EXPECT_EQ(c.min_bytes, size_t{2} << 20);
  EXPECT_EQ(c.log_level, 0);
  EXPECT_EQ(c.htod_dtype, NZ_TAG_BYTES);
  EXPECT_TRUE(c.trace_path.empty());
}

TEST(Config, EvictionOrder) {
  EXPECT_TRUE(parse({}).evict_by_forecast);
  EXPECT_FALSE(parse({{"NEUZIP_EVICT", "lru"}}).evict_by_forecast);
  EXPECT_TRUE(parse({{"NEUZIP_EVICT", "forecast"}}).evict_by_forecast);
  EXPECT_TRUE(parse({{"NEUZIP_EVICT", "belady"}}).evict_by_forecast);  // bad value: default
}

TEST(Config, ServedDeviceFromNeuzipDeviceElseLocalRank) {
  EXPECT_FALSE(parse({}).device.has_value());
  EXPECT_EQ(parse({{"LOCAL_RANK", "3"}, {"WORLD_SIZE", "8"}}).device, 3);
  EXPECT_STREQ(parse({{"LOCAL_RANK", "3"}, {"WORLD_SIZE", "8"}}).device_source, "LOCAL_RANK");
  // Not a distributed run: LOCAL_RANK alone (inherited) is not followed.
  EXPECT_FALSE(parse({{"LOCAL_RANK", "3"}}).device.has_value());
  EXPECT_FALSE(parse({{"LOCAL_RANK", "0"}, {"WORLD_SIZE", "1"}}).device.has_value());
  EXPECT_EQ(parse({{"LOCAL_RANK", "3"}, {"WORLD_SIZE", "8"}, {"NEUZIP_DEVICE", "1"}}).device, 1);
  EXPECT_STREQ(parse({{"LOCAL_RANK", "3"}, {"NEUZIP_DEVICE", "1"}}).device_source, "NEUZIP_DEVICE");
  // A bad NEUZIP_DEVICE is complained about and LOCAL_RANK applies.
  EXPECT_EQ(parse({{"LOCAL_RANK", "2"}, {"WORLD_SIZE", "4"}, {"NEUZIP_DEVICE", "gpu1"}}).device, 2);
  EXPECT_FALSE(parse({{"LOCAL_RANK", ""}, {"WORLD_SIZE", "4"}}).device.has_value());
  EXPECT_FALSE(parse({{"LOCAL_RANK", "-1"}, {"WORLD_SIZE", "4"}}).device.has_value());
}

TEST(Config, RankInADistributedRunOnly) {
  EXPECT_FALSE(parse({}).rank.has_value());
  EXPECT_FALSE(parse({{"RANK", "3"}}).rank.has_value());  // inherited, not a distributed run
  EXPECT_EQ(parse({{"RANK", "11"}, {"LOCAL_RANK", "3"}, {"WORLD_SIZE", "16"}}).rank, 11u);
  EXPECT_EQ(parse({{"LOCAL_RANK", "3"}, {"WORLD_SIZE", "8"}}).rank, 3u);
  EXPECT_EQ(parse({{"RANK", "x"}, {"LOCAL_RANK", "2"}, {"WORLD_SIZE", "8"}}).rank, 2u);
}

TEST(Config, NeuzipZeroDisables) {
  EXPECT_FALSE(parse({{"NEUZIP", "0"}}).enabled);
  EXPECT_TRUE(parse({{"NEUZIP", "1"}}).enabled);
  EXPECT_TRUE(parse({{"NEUZIP", "maybe"}}).enabled);  // bad value: default
}

TEST(Config, NcclHooksOnUnlessNeuzipNcclZero) {
  EXPECT_TRUE(parse({}).nccl_hooks);
  EXPECT_FALSE(parse({{"NEUZIP_NCCL", "0"}}).nccl_hooks);
  EXPECT_TRUE(parse({{"NEUZIP_NCCL", "1"}}).nccl_hooks);
  EXPECT_TRUE(parse({{"NEUZIP_NCCL", "off"}}).nccl_hooks);  // bad value: default
}

TEST(Config, CompressClasses) {
  EXPECT_FALSE(parse({}).compress_idle);
  EXPECT_FALSE(parse({{"NEUZIP_COMPRESS", "weights"}}).compress_idle);
  EXPECT_TRUE(parse({{"NEUZIP_COMPRESS", "weights,optimizer"}}).compress_idle);
  EXPECT_TRUE(parse({{"NEUZIP_COMPRESS", "optimizer"}}).compress_idle);
  EXPECT_FALSE(parse({{"NEUZIP_COMPRESS", "weights,moments"}}).compress_idle);  // bad value: default
}

TEST(Config, LossyModeWithAndWithoutBlock) {
  Config c = parse({{"NEUZIP_MODE", "lossy:3:512"}});
  EXPECT_EQ(c.mode, NZ_LOSSY);
  EXPECT_EQ(c.lossy_kept_bits, 3u);
  EXPECT_EQ(c.lossy_block, 512u);
  c = parse({{"NEUZIP_MODE", "lossy:1"}});
  EXPECT_EQ(c.mode, NZ_LOSSY);
  EXPECT_EQ(c.lossy_kept_bits, 1u);
  EXPECT_EQ(c.lossy_block, unsigned{NZ_DEFAULT_BLOCK});
  c = parse({{"NEUZIP_MODE", "lossy:0:0"}});
  EXPECT_EQ(c.lossy_block, 0u);
}

TEST(Config, BadModesKeepLossless) {
  for (const char* bad : {"lossy", "lossy:", "lossy:x", "lossy:3:300", "lossy:3:", "fast", "lossy:-1"}) {
    EXPECT_EQ(parse({{"NEUZIP_MODE", bad}}).mode, NZ_LOSSLESS) << bad;
  }
}

TEST(Config, NumbersAndDtypes) {
  Config c = parse({{"NEUZIP_STAGING_MB", "64"},
                    {"NEUZIP_MIN_BYTES", "1048576"},
                    {"NEUZIP_LOG", "2"},
                    {"NEUZIP_TRACE", "/tmp/x.jsonl"},
                    {"NEUZIP_LOSSY_HTOD_DTYPE", "bf16"}});
  ASSERT_TRUE(c.staging_bytes.has_value());
  EXPECT_EQ(*c.staging_bytes, size_t{64} << 20);
  EXPECT_EQ(c.min_bytes, size_t{1} << 20);
  EXPECT_EQ(c.log_level, 2);
  EXPECT_EQ(c.trace_path, "/tmp/x.jsonl");
  EXPECT_EQ(c.htod_dtype, NZ_TAG_BF16);
  EXPECT_EQ(parse({{"NEUZIP_LOSSY_HTOD_DTYPE", "fp32"}}).htod_dtype, NZ_TAG_FP32);
}

TEST(Config, BadNumbersKeepDefaults) {
  Config c = parse({{"NEUZIP_STAGING_MB", "lots"}, {"NEUZIP_MIN_BYTES", "-5"}, {"NEUZIP_LOG", "9"},
                    {"NEUZIP_LOSSY_HTOD_DTYPE", "int8"}});
  EXPECT_FALSE(c.staging_bytes.has_value());
  EXPECT_EQ(c.min_bytes, size_t{2} << 20);
  EXPECT_EQ(c.log_level, 0);
  EXPECT_EQ(c.htod_dtype, NZ_TAG_BYTES);
}

TEST(Config, Lookahead) {
  EXPECT_FALSE(parse({}).lookahead_bytes.has_value());
  EXPECT_EQ(parse({{"NEUZIP_LOOKAHEAD_MB", "0"}}).lookahead_bytes, size_t{0});
  EXPECT_EQ(parse({{"NEUZIP_LOOKAHEAD_MB", "96"}}).lookahead_bytes, size_t{96} << 20);
  EXPECT_EQ(parse({{"NEUZIP_LOOKAHEAD_MB", "auto"}}).lookahead_bytes, Config::kLookaheadAuto);
  EXPECT_FALSE(parse({{"NEUZIP_LOOKAHEAD_MB", "two layers"}}).lookahead_bytes.has_value());
}

TEST(Config, ParkMb) {
  EXPECT_EQ(parse({}).park_bytes, size_t{64} << 20);
  EXPECT_EQ(parse({{"NEUZIP_PARK_MB", "0"}}).park_bytes, size_t{0});
  EXPECT_EQ(parse({{"NEUZIP_PARK_MB", "2"}}).park_bytes, size_t{2} << 20);
  for (const char* bad : {"-1", "lots", "2x"}) EXPECT_EQ(parse({{"NEUZIP_PARK_MB", bad}}).park_bytes, size_t{64} << 20) << bad;
}

TEST(Config, ChunkElemsAndCodecOptions) {
  EXPECT_EQ(parse({}).chunk_elems, 8192u);
  EXPECT_EQ(parse({{"NEUZIP_CHUNK_ELEMS", "65536"}}).chunk_elems, 65536u);
  for (const char* bad : {"1000", "512", "8388608", "4096x", "-4096"}) {
    EXPECT_EQ(parse({{"NEUZIP_CHUNK_ELEMS", bad}}).chunk_elems, 8192u) << bad;
  }
  Config lossless = parse({{"NEUZIP_CHUNK_ELEMS", "4096"}});
  nz_options o = lossless.codec_options(NZ_FP16, /*lossy=*/true);  // lossless mode: lossy ignored
  EXPECT_EQ(o.dtype, NZ_FP16);
  EXPECT_EQ(o.mode, NZ_LOSSLESS);
  EXPECT_EQ(o.chunk_elems, 4096u);
  Config lossy = parse({{"NEUZIP_MODE", "lossy:3:64"}});
  o = lossy.codec_options(NZ_BF16, /*lossy=*/true);
  EXPECT_EQ(o.mode, NZ_LOSSY);
  EXPECT_EQ(o.kept_bits, 3u);
  EXPECT_EQ(o.block_size, 64u);
  EXPECT_EQ(lossy.codec_options(NZ_BF16, /*lossy=*/false).mode, NZ_LOSSLESS);
}

}  // namespace
}  // namespace nz::rt
