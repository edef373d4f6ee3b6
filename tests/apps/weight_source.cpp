// weight_source.cpp: gathers every 2-D tensor of each file into one pool.
#include "weight_source.h"

#include <algorithm>
#include <cstring>

#include "util/safetensors.h"

namespace minifw {
namespace {

constexpr const char* kBf16File = "gpt-neo-125m-attn-bf16.safetensors";
constexpr const char* kF32File = "gpt2-small-attn-f32.safetensors";

// Appends the bytes of every 2-D tensor of `dtype` to `pool`.
template <typename T>
bool gather_matrices(const nz::util::SafetensorsFile& file, const char* dtype, std::vector<T>& pool) {
  for (const auto& t : file.tensors()) {
    if (t.dtype != dtype || t.shape.size() != 2) continue;
    const auto bytes = file.data(t);
    const size_t count = bytes.size() / sizeof(T);
    const size_t old = pool.size();
    pool.resize(old + count);
    std::memcpy(pool.data() + old, bytes.data(), count * sizeof(T));
  }
  return !pool.empty();
}

size_t start_offset(uint32_t tensor_index, size_t pool_size) {
  // A large odd stride spreads tensors over the pool deterministically.
  return (static_cast<uint64_t>(tensor_index) * 2654435761ull) % pool_size;
}

template <typename T>
void tile(std::span<T> out, const std::vector<T>& pool, uint32_t tensor_index) {
  size_t pos = start_offset(tensor_index, pool.size());
  size_t done = 0;
  while (done < out.size()) {
    const size_t n = std::min(out.size() - done, pool.size() - pos);
    std::memcpy(out.data() + done, pool.data() + pos, n * sizeof(T));
    done += n;
    pos = 0;
  }
}

}  // namespace

bool WeightSource::load(const std::string& weights_dir, std::string& error) {
  nz::util::SafetensorsFile file;
  if (!nz::util::load_safetensors(weights_dir + "/" + kBf16File, file, error)) return false;
  if (!gather_matrices(file, "BF16", bf16_)) {
    error = std::string(kBf16File) + ": no BF16 matrices";
    return false;
  }
  if (!nz::util::load_safetensors(weights_dir + "/" + kF32File, file, error)) return false;
  if (!gather_matrices(file, "F32", f32_)) {
    error = std::string(kF32File) + ": no F32 matrices";
    return false;
  }
  return true;
}

void WeightSource::fill_bf16(std::span<uint16_t> out, uint32_t tensor_index) const {
  tile(out, bf16_, tensor_index);
}

void WeightSource::fill_f32(std::span<float> out, uint32_t tensor_index) const {
  tile(out, f32_, tensor_index);
}

}  // namespace minifw
