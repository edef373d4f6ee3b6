// neuzip_tags.cpp: see neuzip_tags.h.
#include "neuzip_tags.h"

#include <dlfcn.h>

#include <fmt/core.h>

namespace minifw {
namespace {

// The values of include/neuzip/runtime.h, repeated so that minifw stays a
// plain driver-API program with no build dependency on neuzip (as a Python
// caller would hard-code them too).
constexpr int kNzTagBf16 = 1;
constexpr int kNzTagFp32 = 3;
constexpr int kNzOk = 0;

}  // namespace

NeuzipTagger::NeuzipTagger() : nz_tag_(reinterpret_cast<NzTagFn>(dlsym(RTLD_DEFAULT, "nz_tag"))) {}

void NeuzipTagger::declare(const Parameter& p) {
  if (nz_tag_ == nullptr) return;
  const int dtype = p.dtype == kDtypeBF16 ? kNzTagBf16 : kNzTagFp32;
  if (nz_tag_(static_cast<uint64_t>(p.data.get()), p.bytes(), dtype) == kNzOk) {
    ++accepted_;
  } else {
    ++rejected_;  // not in memory the runtime manages, or the runtime is inactive
  }
}

void NeuzipTagger::report() const {
  if (nz_tag_ == nullptr) {
    fmt::print(stderr, "nz-tag: no neuzip runtime loaded; nothing declared\n");
  } else {
    fmt::print(stderr, "nz-tag: {} tensors declared, {} not accepted\n", accepted_, rejected_);
  }
}

}  // namespace minifw
