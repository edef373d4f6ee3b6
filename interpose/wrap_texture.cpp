// wrap_texture.cpp: texture objects over linear memory. A kernel samples
// through a 64-bit handle that no parameter scan can map to an address, so
// the resource's range is pinned (staged, never evicted) while the object
// lives (the runtime decides; this file only routes).
#include "wrap_common.h"

using nz::shim::Hook;
using nz::shim::real_of;

namespace {

// The device range a texture's resource covers; false for arrays (not
// device pointers neuzip could serve).
bool resource_range(const CUDA_RESOURCE_DESC* res, CUdeviceptr* ptr, size_t* bytes) noexcept {
  if (res == nullptr) return false;
  if (res->resType == CU_RESOURCE_TYPE_LINEAR) {
    *ptr = res->res.linear.devPtr;
    *bytes = res->res.linear.sizeInBytes;
    return true;
  }
  if (res->resType == CU_RESOURCE_TYPE_PITCH2D) {
    *ptr = res->res.pitch2D.devPtr;
    *bytes = res->res.pitch2D.pitchInBytes * res->res.pitch2D.height;
    return true;
  }
  return false;
}

}  // namespace

NZ_WRAPPER CUresult nzw_TexObjectCreate(CUtexObject* tex, const CUDA_RESOURCE_DESC* res, const CUDA_TEXTURE_DESC* desc,
                                        const CUDA_RESOURCE_VIEW_DESC* view) noexcept {
  NZ_ENTER(TexObjectCreate);
  auto real = real_of<CUresult (*)(CUtexObject*, const CUDA_RESOURCE_DESC*, const CUDA_TEXTURE_DESC*,
                                   const CUDA_RESOURCE_VIEW_DESC*)>(Hook::TexObjectCreate);
  if (!real) return nz::shim::missing_entry(Hook::TexObjectCreate);
  const CUresult r = real(tex, res, desc, view);
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  if (r == CUDA_SUCCESS && tex != nullptr && nz::rt::active() && resource_range(res, &ptr, &bytes))
    nz::rt::pin_external(nz::rt::PinOwner::kTextureObject, static_cast<uintptr_t>(*tex), ptr, bytes,
                         "cuTexObjectCreate");
  return r;
}

// Unpinned before the real call: the driver may hand the same value to the
// next object at once.
NZ_WRAPPER CUresult nzw_TexObjectDestroy(CUtexObject tex) noexcept {
  NZ_ENTER(TexObjectDestroy);
  auto real = real_of<CUresult (*)(CUtexObject)>(Hook::TexObjectDestroy);
  if (!real) return nz::shim::missing_entry(Hook::TexObjectDestroy);
  if (nz::rt::active()) nz::rt::unpin_external(nz::rt::PinOwner::kTextureObject, static_cast<uintptr_t>(tex));
  return real(tex);
}
