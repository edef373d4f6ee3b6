// codec_unavailable.cpp: built only while the device codec (src/gpu) and the
// CPU codec (src/codec) are missing from the build: the runtime then reports
// that it cannot compress and passes everything through.
#include <cstring>

#include "gpu/device_codec.h"

namespace nz::gpu {
std::unique_ptr<DeviceCodec> DeviceCodec::create(const DriverApi&, std::string& error) {
  error = "built without the device codec";
  return nullptr;
}
}  // namespace nz::gpu

extern "C" {
void nz_options_default(nz_options* opts, nz_dtype dtype) {
  std::memset(opts, 0, sizeof *opts);
  opts->dtype = dtype;
}
size_t nz_dtype_size(nz_dtype dtype) { return dtype == NZ_FP32 ? 4 : (dtype == NZ_BF16 || dtype == NZ_FP16) ? 2 : 0; }
size_t nz_compress_bound(uint64_t, const nz_options*) { return 0; }
uint64_t nz_hash(const void*, size_t) { return 0; }
}

extern "C" const char* nz_error_string(nz_status) { return "codec unavailable"; }
