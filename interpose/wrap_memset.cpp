// wrap_memset.cpp: the memset family; each writes one (possibly pitched) device range.
#include "transfer_spans.h"
#include "wrap_common.h"

namespace nz::shim {
namespace {

template <Hook H, bool PT, typename Value>
CUresult set_1d(CUdeviceptr dst, Value v, size_t n, const char* api) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, Value, size_t)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, v, n);
  const rt::Span s[] = {{dst, n * sizeof(Value), rt::Access::kWrite}};
  return run_transfer(real, transfer_desc(s, 1, nullptr, PT, false, false, api), dst, v, n);
}
template <Hook H, bool PT, typename Value>
CUresult set_1d_async(CUdeviceptr dst, Value v, size_t n, CUstream st, const char* api) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, Value, size_t, CUstream)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, v, n, st);
  const rt::Span s[] = {{dst, n * sizeof(Value), rt::Access::kWrite}};
  return run_transfer(real, transfer_desc(s, 1, st, PT, true, false, api), dst, v, n, st);
}
template <Hook H, bool PT, typename Value>
CUresult set_2d(CUdeviceptr dst, size_t pitch, Value v, size_t w, size_t h, const char* api) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, size_t, Value, size_t, size_t)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, pitch, v, w, h);
  const rt::Span s[] = {{dst, pitched_extent(pitch, w * sizeof(Value), h), rt::Access::kWrite}};
  return run_transfer(real, transfer_desc(s, 1, nullptr, PT, false, false, api), dst, pitch, v, w, h);
}
template <Hook H, bool PT, typename Value>
CUresult set_2d_async(CUdeviceptr dst, size_t pitch, Value v, size_t w, size_t h, CUstream st,
                      const char* api) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, size_t, Value, size_t, size_t, CUstream)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, pitch, v, w, h, st);
  const rt::Span s[] = {{dst, pitched_extent(pitch, w * sizeof(Value), h), rt::Access::kWrite}};
  return run_transfer(real, transfer_desc(s, 1, st, PT, true, false, api), dst, pitch, v, w, h, st);
}

// Name-carrying shims so that NZ_WRAP_PAIR can instantiate them.
#define NZ_MEMSET_IMPLS(bits, type)                                                              \
  template <Hook H, bool PT>                                                                     \
  CUresult d##bits(CUdeviceptr d, type v, size_t n) noexcept {                                   \
    return set_1d<H, PT, type>(d, v, n, "cuMemsetD" #bits);                                      \
  }                                                                                              \
  template <Hook H, bool PT>                                                                     \
  CUresult d##bits##a(CUdeviceptr d, type v, size_t n, CUstream s) noexcept {                    \
    return set_1d_async<H, PT, type>(d, v, n, s, "cuMemsetD" #bits "Async");                     \
  }                                                                                              \
  template <Hook H, bool PT>                                                                     \
  CUresult d2d##bits(CUdeviceptr d, size_t p, type v, size_t w, size_t h) noexcept {             \
    return set_2d<H, PT, type>(d, p, v, w, h, "cuMemsetD2D" #bits);                              \
  }                                                                                              \
  template <Hook H, bool PT>                                                                     \
  CUresult d2d##bits##a(CUdeviceptr d, size_t p, type v, size_t w, size_t h, CUstream s) noexcept { \
    return set_2d_async<H, PT, type>(d, p, v, w, h, s, "cuMemsetD2D" #bits "Async");             \
  }
NZ_MEMSET_IMPLS(8, unsigned char)
NZ_MEMSET_IMPLS(16, unsigned short)
NZ_MEMSET_IMPLS(32, unsigned int)
#undef NZ_MEMSET_IMPLS

}  // namespace
}  // namespace nz::shim

#define NZ_MEMSET_WRAPPERS(bits, type)                                                           \
  NZ_WRAP_PAIR(MemsetD##bits##_v2, MemsetD##bits##_v2_ptds, nz::shim::d##bits,                   \
               (CUdeviceptr d, type v, size_t n), (d, v, n))                                     \
  NZ_WRAP_PAIR(MemsetD##bits##Async, MemsetD##bits##Async_ptsz, nz::shim::d##bits##a,            \
               (CUdeviceptr d, type v, size_t n, CUstream s), (d, v, n, s))                      \
  NZ_WRAP_PAIR(MemsetD2D##bits##_v2, MemsetD2D##bits##_v2_ptds, nz::shim::d2d##bits,             \
               (CUdeviceptr d, size_t p, type v, size_t w, size_t h), (d, p, v, w, h))           \
  NZ_WRAP_PAIR(MemsetD2D##bits##Async, MemsetD2D##bits##Async_ptsz, nz::shim::d2d##bits##a,      \
               (CUdeviceptr d, size_t p, type v, size_t w, size_t h, CUstream s),                \
               (d, p, v, w, h, s))
NZ_MEMSET_WRAPPERS(8, unsigned char)
NZ_MEMSET_WRAPPERS(16, unsigned short)
NZ_MEMSET_WRAPPERS(32, unsigned int)
