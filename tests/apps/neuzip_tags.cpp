// neuzip_tags.cpp: see neuzip_tags.h.
#include "neuzip_tags.h"

#include <dlfcn.h>

#include <cstdint>

#include <fmt/core.h>

namespace minifw {
namespace {

// The values of include/neuzip/runtime.h, repeated so that minifw stays a
// plain driver-API program with no build dependency on neuzip (as a Python
// caller would hard-code them too).
constexpr int kNzTagBf16 = 1;
constexpr int kNzTagFp32 = 3;
constexpr int kNzOk = 0;
using NzTagFn = int (*)(uint64_t ptr, size_t bytes, int dtype);

}  // namespace

size_t declare_weights_to_neuzip(const Model& model) {
  auto nz_tag = reinterpret_cast<NzTagFn>(dlsym(RTLD_DEFAULT, "nz_tag"));
  if (nz_tag == nullptr) {
    fmt::print(stderr, "nz-tag: no neuzip runtime loaded; nothing declared\n");
    return 0;
  }
  size_t accepted = 0, rejected = 0;
  for (const Parameter& p : model.parameters()) {
    const int dtype = p.dtype == kDtypeBF16 ? kNzTagBf16 : kNzTagFp32;
    if (nz_tag(static_cast<uint64_t>(p.data.get()), p.bytes(), dtype) == kNzOk) {
      ++accepted;
    } else {
      ++rejected;  // not in memory the runtime manages (small segment) or runtime inactive
    }
  }
  fmt::print(stderr, "nz-tag: {} tensors declared, {} not managed\n", accepted, rejected);
  return accepted;
}

}  // namespace minifw
