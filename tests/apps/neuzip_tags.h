// neuzip_tags.h: `--nz-tag`: declare every weight tensor, with its dtype, to
// the neuzip runtime when it is loaded (LD_PRELOAD=libneuzip.so), the way a
// Python user would through ctypes (ctypes.CDLL(None).nz_tag). Without the
// runtime the symbol is absent and this does nothing. Declared float ranges
// are the ones NEUZIP_MODE=lossy:K[:B] may store lossily.
#pragma once

#include <cstddef>

#include "model.h"

namespace minifw {

// Returns how many tensors the runtime accepted (0 without a runtime).
size_t declare_weights_to_neuzip(const Model& model);

}  // namespace minifw
