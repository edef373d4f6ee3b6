// checkpoint_writer.h: writes parameters as a safetensors file (the
// checkpoint save at the end of a run, when --save is given).
#pragma once

#include <string>
#include <vector>

#include "model.h"

namespace minifw {

class CheckpointWriter {
 public:
  void add(const Parameter& param, const std::vector<unsigned char>& bytes);
  // False + `error` when the file cannot be written.
  bool write(const std::string& path, std::string& error) const;

 private:
  struct Entry {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    size_t begin, end;
  };
  std::vector<Entry> entries_;
  std::vector<unsigned char> data_;
};

}  // namespace minifw
