// neuzip_tags.h: `--nz-tag`: declare every weight tensor, with its dtype, to
// the neuzip runtime when it is loaded (LD_PRELOAD=libneuzip.so), the way a
// Python user would through ctypes (ctypes.CDLL(None).nz_tag), each tensor
// right after it was copied to the device. Without the
// runtime the symbol is absent and this does nothing. Declared float ranges
// are the ones NEUZIP_MODE=lossy:K[:B] may store lossily.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model.h"

namespace minifw {

// Declares one weight (call once its data is on the device); counts what
// the runtime accepted. Without a runtime: does nothing.
class NeuzipTagger {
 public:
  NeuzipTagger();
  void declare(const Parameter& p);
  // One line on stderr: how many tensors were declared.
  void report() const;

 private:
  using NzTagFn = int (*)(uint64_t ptr, size_t bytes, int dtype);
  NzTagFn nz_tag_ = nullptr;
  size_t accepted_ = 0;
  size_t rejected_ = 0;
};

}  // namespace minifw
