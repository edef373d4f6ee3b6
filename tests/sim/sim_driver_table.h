// Tables generated from the toolkit headers (gen_driver_table.py).
#pragma once
#include <cstddef>

namespace nzsim {

// One cuGetProcAddress answer: `name` at CUDA `version` (e.g. 12000) resolves
// to `fn`; variant 0 = default, 1 = _ptsz, 2 = _ptds. Sorted by (name, version).
struct ProcEntry {
  const char* name;
  int version;
  int variant;
  void* fn;
};
extern const ProcEntry kProcTable[];
extern const std::size_t kProcTableSize;

struct ErrorEntry {
  int code;
  const char* name;
  const char* description;
};
extern const ErrorEntry kErrorTable[];
extern const std::size_t kErrorTableSize;

}  // namespace nzsim
