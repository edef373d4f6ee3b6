// codec_options.cpp: see codec_options.h.
#include "codec_options.h"

#include <cstring>

namespace nzbench {

namespace {

nz_dtype to_nz(nztools::FloatType t) {
  switch (t) {
    case nztools::FloatType::BF16: return NZ_BF16;
    case nztools::FloatType::FP16: return NZ_FP16;
    case nztools::FloatType::FP32: return NZ_FP32;
  }
  return NZ_BF16;
}

}  // namespace

nz_options codec_options(const Options& opts, nztools::FloatType t) {
  nz_options o;
  std::memset(&o, 0, sizeof o);
  nz_options_default(&o, to_nz(t));
  o.mode = opts.mode == Mode::Lossy ? NZ_LOSSY : NZ_LOSSLESS;
  if (opts.mode == Mode::Lossy) {
    o.kept_bits = opts.kept_bits;
    o.block_size = opts.block;
  }
  o.threads = 1;
  return o;
}

}  // namespace nzbench
