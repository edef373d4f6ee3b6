// checkpoint_writer.cpp: header JSON padded with spaces to a multiple of 8,
// as the format recommends.
#include "checkpoint_writer.h"

#include <cstdio>
#include <memory>

#include <fmt/core.h>

namespace minifw {

void CheckpointWriter::add(const Parameter& param, const std::vector<unsigned char>& bytes) {
  Entry e{param.name, param.dtype == kDtypeBF16 ? "BF16" : "F32", param.shape, data_.size(), 0};
  data_.insert(data_.end(), bytes.begin(), bytes.end());
  e.end = data_.size();
  entries_.push_back(std::move(e));
}

bool CheckpointWriter::write(const std::string& path, std::string& error) const {
  std::string header = "{";
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    std::string shape;
    for (size_t k = 0; k < e.shape.size(); ++k) shape += fmt::format("{}{}", k ? "," : "", e.shape[k]);
    header += fmt::format("{}\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", i ? "," : "",
                          e.name, e.dtype, shape, e.begin, e.end);
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  unsigned char length[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(n >> (8 * i));
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file(std::fopen(path.c_str(), "wb"));
  bool ok = file != nullptr && std::fwrite(length, 1, 8, file.get()) == 8 &&
            std::fwrite(header.data(), 1, header.size(), file.get()) == header.size() &&
            std::fwrite(data_.data(), 1, data_.size(), file.get()) == data_.size();
  ok = file != nullptr && std::fclose(file.release()) == 0 && ok;
  if (!ok) error = "cannot write " + path;
  return ok;
}

}  // namespace minifw
