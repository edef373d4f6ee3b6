// bench_input.cpp: file/synthetic loading, dtype casts, tiling.
#include "bench_input.h"

#include <cmath>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "util/safetensors.h"

namespace nzbench {

using nztools::FloatType;

namespace {

std::vector<uint8_t> cast_f32(const float* src, uint64_t n, FloatType to) {
  const unsigned size = static_cast<unsigned>(nztools::layout_of(to).bytes);
  std::vector<uint8_t> out(n * size);
  for (uint64_t i = 0; i < n; ++i) {
    if (to == FloatType::FP32) {
      std::memcpy(out.data() + 4 * i, src + i, 4);
      continue;
    }
    const uint16_t h = to == FloatType::BF16 ? nztools::f32_to_bf16(src[i]) : nztools::f32_to_fp16(src[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

void finish_tensor(const Options& opts, BenchTensor t, std::vector<BenchTensor>& tensors,
                   std::vector<Skipped>& skipped) {
  t.original_bytes = t.data.size();
  if (t.original_bytes < opts.min_bytes || t.original_bytes == 0) {
    skipped.push_back({t.file, t.name, fmt::format("{} bytes < --min-bytes {}", t.original_bytes, opts.min_bytes)});
    return;
  }
  if (opts.tile_mb > 0) {
    const uint64_t target = opts.tile_mb << 20;
    if (t.data.size() < target) {
      t.untiled = t.data;
      tile_to(t.data, target, static_cast<unsigned>(nztools::layout_of(t.type).bytes));
      t.tiled = true;
    }
  }
  tensors.push_back(std::move(t));
}

}  // namespace

std::vector<float> synthetic_normal(uint64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> v(count);
  for (auto& x : v) x = normal(rng);
  return v;
}

void tile_to(std::vector<uint8_t>& data, uint64_t target_bytes, unsigned element_size) {
  if (data.empty() || data.size() >= target_bytes) return;
  const size_t unit = data.size();
  uint64_t want = (target_bytes + element_size - 1) / element_size * element_size;
  data.reserve(want);
  while (data.size() < want) {
    const size_t take = static_cast<size_t>(std::min<uint64_t>(unit, want - data.size()));
    data.insert(data.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
  }
}

bool load_inputs(const Options& opts, std::vector<BenchTensor>& tensors, std::vector<Skipped>& skipped,
                 std::string& error) {
  if (opts.synthetic_elements > 0) {
    const auto values = synthetic_normal(opts.synthetic_elements, opts.seed);
    BenchTensor t;
    t.file = "(synthetic)";
    t.name = fmt::format("normal(0,0.02) seed {}", opts.seed);
    t.shape = {opts.synthetic_elements};
    t.source_dtype = "synthetic";
    t.type = opts.cast_to.value_or(FloatType::BF16);
    t.data = cast_f32(values.data(), values.size(), t.type);
    finish_tensor(opts, std::move(t), tensors, skipped);
    return true;
  }
  for (const auto& path : opts.files) {
    nz::util::SafetensorsFile file;
    if (!nz::util::load_safetensors(path, file, error)) return false;
    for (const auto& info : file.tensors()) {
      auto bytes = file.data(info);
      BenchTensor t;
      t.file = path;
      t.name = info.name;
      t.shape = info.shape;
      t.source_dtype = info.dtype;
      if (info.dtype == "F32") {
        t.type = opts.cast_to.value_or(FloatType::FP32);
        std::vector<float> values(info.element_count);
        std::memcpy(values.data(), bytes.data(), bytes.size());
        t.data = cast_f32(values.data(), values.size(), t.type);
      } else if (info.dtype == "BF16" || info.dtype == "F16") {
        // 16-bit tensors keep their dtype: casting between them would invent data.
        t.type = info.dtype == "BF16" ? FloatType::BF16 : FloatType::FP16;
        t.data.assign(bytes.begin(), bytes.end());
      } else {
        skipped.push_back({path, info.name, fmt::format("dtype {} is not bf16/fp16/fp32", info.dtype)});
        continue;
      }
      finish_tensor(opts, std::move(t), tensors, skipped);
    }
  }
  return true;
}

}  // namespace nzbench
