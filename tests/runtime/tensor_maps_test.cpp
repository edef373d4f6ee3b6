// tensor_maps_test.cpp: the registry of TMA descriptors (tensor_maps.h):
// exact matches only, and past its bound it forgets the descriptors used
// least recently, never all of them (one a library passes at every step must
// stay known: forgotten, its launches would read compressed memory unseen).
#include "runtime/tensor_maps.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>

namespace nz::rt {
namespace {

using Descriptor = std::array<unsigned char, TensorMapRegistry::kBytes>;

Descriptor descriptor(uint64_t n) {
  Descriptor d{};
  std::memcpy(d.data(), &n, 8);
  d[127] = 0x5a;
  return d;
}

TEST(TensorMaps, FindsExactlyWhatWasRecorded) {
  TensorMapRegistry r;
  EXPECT_TRUE(r.empty());
  const auto a = descriptor(1), b = descriptor(2);
  EXPECT_EQ(r.record(a.data(), 0x1000, 256), 0u);
  auto found = r.find(a.data());
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->address, 0x1000u);
  EXPECT_EQ(found->extent, 256u);
  EXPECT_FALSE(r.find(b.data()).has_value());
  auto a2 = a;
  a2[64] ^= 1;  // one bit off: another descriptor
  EXPECT_FALSE(r.find(a2.data()).has_value());
  r.record(a.data(), 0x2000, 0);  // the same bytes again: the target is replaced
  EXPECT_EQ(r.find(a.data())->address, 0x2000u);
  EXPECT_EQ(r.size(), 1u);
  r.clear();
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.find(a.data()).has_value());
}

TEST(TensorMaps, PastItsBoundForgetsTheHalfUsedLeast) {
  TensorMapRegistry r(8);
  for (uint64_t i = 0; i < 8; ++i) EXPECT_EQ(r.record(descriptor(i).data(), 0x1000 * (i + 1), 0), 0u);
  ASSERT_TRUE(r.find(descriptor(0).data()).has_value());  // recorded first, found last
  EXPECT_EQ(r.record(descriptor(8).data(), 0x9000, 0), 4u);
  EXPECT_EQ(r.size(), 5u);
  EXPECT_TRUE(r.find(descriptor(0).data()).has_value());
  for (uint64_t i = 1; i <= 4; ++i) EXPECT_FALSE(r.find(descriptor(i).data()).has_value()) << i;
  for (uint64_t i = 5; i <= 8; ++i) EXPECT_TRUE(r.find(descriptor(i).data()).has_value()) << i;
}

// A weight's descriptor, built once and passed at every step, among a flood of
// descriptors for activations that change at every launch.
TEST(TensorMaps, ADescriptorUsedEveryStepIsNeverForgotten) {
  TensorMapRegistry r(64);
  const auto weight = descriptor(~uint64_t{0});
  r.record(weight.data(), 0x7000, 4096);
  size_t forgotten = 0;
  for (uint64_t step = 0; step < 1000; ++step) {
    for (uint64_t k = 0; k < 20; ++k) forgotten += r.record(descriptor(step * 20 + k).data(), 0x1000, 0);
    auto found = r.find(weight.data());
    ASSERT_TRUE(found.has_value()) << "step " << step;
    EXPECT_EQ(found->address, 0x7000u);
  }
  EXPECT_GT(forgotten, 10000u);  // the flood was forgotten instead
  EXPECT_LE(r.size(), 64u);
}

}  // namespace
}  // namespace nz::rt
