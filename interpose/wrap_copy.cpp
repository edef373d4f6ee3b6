// wrap_copy.cpp: the memcpy family (batches: wrap_copy_batch.cpp). Each
// reports the device ranges it reads and writes; host ranges are not
// reported. For unified-addressing calls (cuMemcpy, cuMemcpyAsync) both
// pointers are reported and the runtime ignores the ones it does not manage.
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "shim_log.h"
#include "transfer_spans.h"
#include "wrap_common.h"

namespace nz::shim {
namespace {

using rt::Access;
using rt::Span;

// A copy with a host side of memory neuzip serves, made in another device's
// context, runs in the served context (rt::enter_served_context): `copy` is
// called with the stream to use (the served context's default stream there,
// waited for), else with the caller's.
template <bool PT, typename Copy>
CUresult in_served_context_if_needed(CUdeviceptr a, CUdeviceptr b, CUstream stream, bool async, Copy&& copy) noexcept {
  CUcontext restore = nullptr;
  if (!rt::enter_served_context(a, b, stream, &restore)) return copy(stream);
  const CUresult r = copy(static_cast<CUstream>(nullptr));
  (void)async;  // waited for either way: see rt::leave_served_context
  rt::leave_served_context(restore, r == CUDA_SUCCESS, PT);
  return r;
}

template <Hook H, bool PT>
CUresult htod(CUdeviceptr dst, const void* src, size_t n, CUstream stream, bool async) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  if (async) {
    auto real = real_of<CUresult (*)(CUdeviceptr, const void*, size_t, CUstream)>(H);
    if (!real) return missing_entry(H);
    if (!rt::active()) return real(dst, src, n, stream);
    const Span s[] = {{dst, n, Access::kWrite}};
    return in_served_context_if_needed<PT>(dst, 0, stream, true, [&](CUstream on) {
      return run_transfer(real, transfer_desc(s, 1, on, PT, true, true, "cuMemcpyHtoDAsync", src), dst, src, n, on);
    });
  }
  auto real = real_of<CUresult (*)(CUdeviceptr, const void*, size_t)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, src, n);
  const Span s[] = {{dst, n, Access::kWrite}};
  return in_served_context_if_needed<PT>(dst, 0, nullptr, false, [&](CUstream) {
    return run_transfer(real, transfer_desc(s, 1, nullptr, PT, false, true, "cuMemcpyHtoD", src), dst, src, n);
  });
}
template <Hook H, bool PT>
CUresult htod_sync(CUdeviceptr dst, const void* src, size_t n) noexcept {
  return htod<H, PT>(dst, src, n, nullptr, false);
}
template <Hook H, bool PT>
CUresult htod_async(CUdeviceptr dst, const void* src, size_t n, CUstream s) noexcept {
  return htod<H, PT>(dst, src, n, s, true);
}

template <Hook H, bool PT>
CUresult dtoh_sync(void* dst, CUdeviceptr src, size_t n) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(void*, CUdeviceptr, size_t)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, src, n);
  const Span s[] = {{src, n, Access::kRead}};
  return in_served_context_if_needed<PT>(src, 0, nullptr, false, [&](CUstream) {
    return run_transfer(real, transfer_desc(s, 1, nullptr, PT, false, false, "cuMemcpyDtoH"), dst, src, n);
  });
}
template <Hook H, bool PT>
CUresult dtoh_async(void* dst, CUdeviceptr src, size_t n, CUstream stream) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(void*, CUdeviceptr, size_t, CUstream)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, src, n, stream);
  const Span s[] = {{src, n, Access::kRead}};
  return in_served_context_if_needed<PT>(src, 0, stream, true, [&](CUstream on) {
    return run_transfer(real, transfer_desc(s, 1, on, PT, true, false, "cuMemcpyDtoHAsync"), dst, src, n, on);
  });
}

// Device-to-device and unified copies: destination written, source read.
// Made in another device's context with memory neuzip serves on one side,
// they go to the driver as the peer copy it requires for virtual memory
// (rt::peer_copy_contexts), in the same stream flavour.
template <Hook H, bool PT>
CUresult dtod_sync(CUdeviceptr dst, CUdeviceptr src, size_t n, const char* api) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, CUdeviceptr, size_t)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, src, n);
  const Span s[] = {{dst, n, Access::kWrite}, {src, n, Access::kRead}};
  CUcontext dctx = nullptr, sctx = nullptr;
  using PeerFn = CUresult (*)(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t);
  if (auto peer = real_of<PeerFn>(PT ? Hook::MemcpyPeer_ptds : Hook::MemcpyPeer);
      peer != nullptr && rt::peer_copy_contexts(dst, src, &dctx, &sctx))
    return run_transfer(peer, transfer_desc(s, 2, nullptr, PT, false, false, api), dst, dctx, src, sctx, n);
  // A unified copy with a host side.
  return in_served_context_if_needed<PT>(dst, src, nullptr, false, [&](CUstream) {
    return run_transfer(real, transfer_desc(s, 2, nullptr, PT, false, false, api), dst, src, n);
  });
}
template <Hook H, bool PT>
CUresult dtod_async(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream stream,
                    const char* api) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, CUdeviceptr, size_t, CUstream)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, src, n, stream);
  const Span s[] = {{dst, n, Access::kWrite}, {src, n, Access::kRead}};
  CUcontext dctx = nullptr, sctx = nullptr;
  using PeerFn = CUresult (*)(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t, CUstream);
  if (auto peer = real_of<PeerFn>(PT ? Hook::MemcpyPeerAsync_ptsz : Hook::MemcpyPeerAsync);
      peer != nullptr && rt::peer_copy_contexts(dst, src, &dctx, &sctx))
    return run_transfer(peer, transfer_desc(s, 2, stream, PT, true, false, api), dst, dctx, src, sctx, n, stream);
  return in_served_context_if_needed<PT>(dst, src, stream, true, [&](CUstream on) {
    return run_transfer(real, transfer_desc(s, 2, on, PT, true, false, api), dst, src, n, on);
  });
}
template <Hook H, bool PT>
CUresult dtod(CUdeviceptr d, CUdeviceptr s, size_t n) noexcept {
  return dtod_sync<H, PT>(d, s, n, "cuMemcpyDtoD");
}
template <Hook H, bool PT>
CUresult dtod_a(CUdeviceptr d, CUdeviceptr s, size_t n, CUstream st) noexcept {
  return dtod_async<H, PT>(d, s, n, st, "cuMemcpyDtoDAsync");
}
// A unified copy (cudaMemcpy with cudaMemcpyDefault) from a host address
// fills its destination as a host-to-device copy does: it tags a weight, and
// a small one may be a pointer array (or a module global's pointers). Asked
// only where that can matter (a served destination, or at most 64 KiB).
inline bool fills_from_host(CUdeviceptr d, CUdeviceptr s, size_t n) noexcept {
  return rt::active() && (n <= (size_t{64} << 10) || rt::is_managed(d)) && is_host_source(s);
}
template <Hook H, bool PT>
CUresult unified(CUdeviceptr d, CUdeviceptr s, size_t n) noexcept {
  if (!fills_from_host(d, s, n)) return dtod_sync<H, PT>(d, s, n, "cuMemcpy");
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, CUdeviceptr, size_t)>(H);
  if (!real) return missing_entry(H);
  const Span sp[] = {{d, n, Access::kWrite}};
  const auto* host = reinterpret_cast<const void*>(s);
  return in_served_context_if_needed<PT>(d, s, nullptr, false, [&](CUstream) {
    return run_transfer(real, transfer_desc(sp, 1, nullptr, PT, false, true, "cuMemcpy", host), d, s, n);
  });
}
template <Hook H, bool PT>
CUresult unified_a(CUdeviceptr d, CUdeviceptr s, size_t n, CUstream st) noexcept {
  if (!fills_from_host(d, s, n)) return dtod_async<H, PT>(d, s, n, st, "cuMemcpyAsync");
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, CUdeviceptr, size_t, CUstream)>(H);
  if (!real) return missing_entry(H);
  const Span sp[] = {{d, n, Access::kWrite}};
  const auto* host = reinterpret_cast<const void*>(s);
  return in_served_context_if_needed<PT>(d, s, st, true, [&](CUstream on) {
    return run_transfer(real, transfer_desc(sp, 1, on, PT, true, true, "cuMemcpyAsync", host), d, s, n, on);
  });
}

template <Hook H, bool PT>
CUresult peer(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, dctx, src, sctx, n);
  const Span s[] = {{dst, n, Access::kWrite}, {src, n, Access::kRead}};
  return run_transfer(real, transfer_desc(s, 2, nullptr, PT, false, false, "cuMemcpyPeer"), dst, dctx,
                      src, sctx, n);
}
template <Hook H, bool PT>
CUresult peer_a(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n,
                CUstream stream) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real =
      real_of<CUresult (*)(CUdeviceptr, CUcontext, CUdeviceptr, CUcontext, size_t, CUstream)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, dctx, src, sctx, n, stream);
  const Span s[] = {{dst, n, Access::kWrite}, {src, n, Access::kRead}};
  return run_transfer(real, transfer_desc(s, 2, stream, PT, true, false, "cuMemcpyPeerAsync"), dst,
                      dctx, src, sctx, n, stream);
}

// Array copies: only the linear device side is reported.
template <Hook H, bool PT>
CUresult dtoa(CUarray dst, size_t off, CUdeviceptr src, size_t n) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUarray, size_t, CUdeviceptr, size_t)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, off, src, n);
  const Span s[] = {{src, n, Access::kRead}};
  return run_transfer(real, transfer_desc(s, 1, nullptr, PT, false, false, "cuMemcpyDtoA"), dst, off,
                      src, n);
}
template <Hook H, bool PT>
CUresult atod(CUdeviceptr dst, CUarray src, size_t off, size_t n) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(CUdeviceptr, CUarray, size_t, size_t)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active()) return real(dst, src, off, n);
  const Span s[] = {{dst, n, Access::kWrite}};
  return run_transfer(real, transfer_desc(s, 1, nullptr, PT, false, false, "cuMemcpyAtoD"), dst, src,
                      off, n);
}

// 2D/3D: the bounding byte range of each device side.
template <Hook H, bool PT, typename Copy>
CUresult copy_nd(const Copy* c, const char* api) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(const Copy*)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active() || !c) return real(c);
  const SpanPair p = spans_of(*c);
  return run_transfer(real, transfer_desc(p.spans, p.count, nullptr, PT, false, p.host_to_device, api),
                      c);
}
template <Hook H, bool PT, typename Copy>
CUresult copy_nd_async(const Copy* c, CUstream stream, const char* api) noexcept {
  const HookScope nz_hook_scope = count_call(H);
  auto real = real_of<CUresult (*)(const Copy*, CUstream)>(H);
  if (!real) return missing_entry(H);
  if (!rt::active() || !c) return real(c, stream);
  const SpanPair p = spans_of(*c);
  return run_transfer(real, transfer_desc(p.spans, p.count, stream, PT, true, p.host_to_device, api),
                      c, stream);
}
template <Hook H, bool PT>
CUresult c2d(const CUDA_MEMCPY2D* c) noexcept { return copy_nd<H, PT>(c, "cuMemcpy2D"); }
template <Hook H, bool PT>
CUresult c2du(const CUDA_MEMCPY2D* c) noexcept { return copy_nd<H, PT>(c, "cuMemcpy2DUnaligned"); }
template <Hook H, bool PT>
CUresult c2da(const CUDA_MEMCPY2D* c, CUstream s) noexcept {
  return copy_nd_async<H, PT>(c, s, "cuMemcpy2DAsync");
}
template <Hook H, bool PT>
CUresult c3d(const CUDA_MEMCPY3D* c) noexcept { return copy_nd<H, PT>(c, "cuMemcpy3D"); }
template <Hook H, bool PT>
CUresult c3da(const CUDA_MEMCPY3D* c, CUstream s) noexcept {
  return copy_nd_async<H, PT>(c, s, "cuMemcpy3DAsync");
}
template <Hook H, bool PT>
CUresult c3dp(const CUDA_MEMCPY3D_PEER* c) noexcept { return copy_nd<H, PT>(c, "cuMemcpy3DPeer"); }
template <Hook H, bool PT>
CUresult c3dpa(const CUDA_MEMCPY3D_PEER* c, CUstream s) noexcept {
  return copy_nd_async<H, PT>(c, s, "cuMemcpy3DPeerAsync");
}

}  // namespace
}  // namespace nz::shim

using nz::shim::atod;
using nz::shim::c2d;
using nz::shim::c2da;
using nz::shim::c2du;
using nz::shim::c3d;
using nz::shim::c3da;
using nz::shim::c3dp;
using nz::shim::c3dpa;
using nz::shim::dtoa;
using nz::shim::dtod;
using nz::shim::dtod_a;
using nz::shim::dtoh_async;
using nz::shim::dtoh_sync;
using nz::shim::htod_async;
using nz::shim::htod_sync;
using nz::shim::peer;
using nz::shim::peer_a;
using nz::shim::unified;
using nz::shim::unified_a;

NZ_WRAP_PAIR(MemcpyHtoD_v2, MemcpyHtoD_v2_ptds, htod_sync,
             (CUdeviceptr d, const void* s, size_t n), (d, s, n))
NZ_WRAP_PAIR(MemcpyHtoDAsync_v2, MemcpyHtoDAsync_v2_ptsz, htod_async,
             (CUdeviceptr d, const void* s, size_t n, CUstream st), (d, s, n, st))
NZ_WRAP_PAIR(MemcpyDtoH_v2, MemcpyDtoH_v2_ptds, dtoh_sync, (void* d, CUdeviceptr s, size_t n),
             (d, s, n))
NZ_WRAP_PAIR(MemcpyDtoHAsync_v2, MemcpyDtoHAsync_v2_ptsz, dtoh_async,
             (void* d, CUdeviceptr s, size_t n, CUstream st), (d, s, n, st))
NZ_WRAP_PAIR(MemcpyDtoD_v2, MemcpyDtoD_v2_ptds, dtod, (CUdeviceptr d, CUdeviceptr s, size_t n),
             (d, s, n))
NZ_WRAP_PAIR(MemcpyDtoDAsync_v2, MemcpyDtoDAsync_v2_ptsz, dtod_a,
             (CUdeviceptr d, CUdeviceptr s, size_t n, CUstream st), (d, s, n, st))
NZ_WRAP_PAIR(Memcpy, Memcpy_ptds, unified, (CUdeviceptr d, CUdeviceptr s, size_t n), (d, s, n))
NZ_WRAP_PAIR(MemcpyAsync, MemcpyAsync_ptsz, unified_a,
             (CUdeviceptr d, CUdeviceptr s, size_t n, CUstream st), (d, s, n, st))
NZ_WRAP_PAIR(MemcpyPeer, MemcpyPeer_ptds, peer,
             (CUdeviceptr d, CUcontext dc, CUdeviceptr s, CUcontext sc, size_t n), (d, dc, s, sc, n))
NZ_WRAP_PAIR(MemcpyPeerAsync, MemcpyPeerAsync_ptsz, peer_a,
             (CUdeviceptr d, CUcontext dc, CUdeviceptr s, CUcontext sc, size_t n, CUstream st),
             (d, dc, s, sc, n, st))
NZ_WRAP_PAIR(MemcpyDtoA_v2, MemcpyDtoA_v2_ptds, dtoa,
             (CUarray d, size_t off, CUdeviceptr s, size_t n), (d, off, s, n))
NZ_WRAP_PAIR(MemcpyAtoD_v2, MemcpyAtoD_v2_ptds, atod,
             (CUdeviceptr d, CUarray s, size_t off, size_t n), (d, s, off, n))
NZ_WRAP_PAIR(Memcpy2D_v2, Memcpy2D_v2_ptds, c2d, (const CUDA_MEMCPY2D* c), (c))
NZ_WRAP_PAIR(Memcpy2DUnaligned_v2, Memcpy2DUnaligned_v2_ptds, c2du, (const CUDA_MEMCPY2D* c), (c))
NZ_WRAP_PAIR(Memcpy2DAsync_v2, Memcpy2DAsync_v2_ptsz, c2da, (const CUDA_MEMCPY2D* c, CUstream s),
             (c, s))
NZ_WRAP_PAIR(Memcpy3D_v2, Memcpy3D_v2_ptds, c3d, (const CUDA_MEMCPY3D* c), (c))
NZ_WRAP_PAIR(Memcpy3DAsync_v2, Memcpy3DAsync_v2_ptsz, c3da, (const CUDA_MEMCPY3D* c, CUstream s),
             (c, s))
NZ_WRAP_PAIR(Memcpy3DPeer, Memcpy3DPeer_ptds, c3dp, (const CUDA_MEMCPY3D_PEER* c), (c))
NZ_WRAP_PAIR(Memcpy3DPeerAsync, Memcpy3DPeerAsync_ptsz, c3dpa,
             (const CUDA_MEMCPY3D_PEER* c, CUstream s), (c, s))
