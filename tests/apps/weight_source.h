// weight_source.h: real weight values to tile into minifw's tensors, so that
// a compressing runtime sees the value distribution of a real model (the
// bf16 pool comes from GPT-Neo-125M attention weights, the fp32 pool from
// GPT-2 small attention weights).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace minifw {

class WeightSource {
 public:
  // Reads the two safetensors files from `weights_dir`. False + `error` on failure.
  bool load(const std::string& weights_dir, std::string& error);

  // Fill `out` with pool values, starting at a position chosen by `tensor_index`
  // so that different tensors do not all start with the same values.
  void fill_bf16(std::span<uint16_t> out, uint32_t tensor_index) const;
  void fill_f32(std::span<float> out, uint32_t tensor_index) const;

  size_t bf16_pool_size() const { return bf16_.size(); }
  size_t f32_pool_size() const { return f32_.size(); }

 private:
  std::vector<uint16_t> bf16_;
  std::vector<float> f32_;
};

}  // namespace minifw
