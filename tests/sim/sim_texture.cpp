// Texture objects over linear memory (CU_RESOURCE_TYPE_LINEAR, PITCH2D): the
// simulator keeps each object's resource and hands out small integers, as the
// driver does, so a kernel that takes a CUtexObject by value carries no
// address a parameter scan could find. Kernel modules read the resource's
// address with nzsim_texture_address (nzsim.h). Arrays and mipmapped arrays
// are not simulated (CUDA_ERROR_NOT_SUPPORTED).
#include <map>
#include <mutex>

#include "sim_internal.h"

namespace {

std::mutex g_tex_mu;
std::map<CUtexObject, CUDA_RESOURCE_DESC> g_textures;
CUtexObject g_next_texture = 1;

}  // namespace

extern "C" {

CUresult CUDAAPI cuTexObjectCreate(CUtexObject* tex, const CUDA_RESOURCE_DESC* res, const CUDA_TEXTURE_DESC* desc,
                                   const CUDA_RESOURCE_VIEW_DESC* view) {
  NZ_REQUIRE_INIT();
  if (!tex || !res || !desc || view) return CUDA_ERROR_INVALID_VALUE;
  if (res->resType == CU_RESOURCE_TYPE_LINEAR) {
    if (res->res.linear.devPtr == 0 || res->res.linear.sizeInBytes == 0) return CUDA_ERROR_INVALID_VALUE;
  } else if (res->resType == CU_RESOURCE_TYPE_PITCH2D) {
    if (res->res.pitch2D.devPtr == 0 || res->res.pitch2D.height == 0 || res->res.pitch2D.pitchInBytes == 0)
      return CUDA_ERROR_INVALID_VALUE;
  } else {
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  std::lock_guard lock(g_tex_mu);
  *tex = g_next_texture++;
  g_textures[*tex] = *res;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuTexObjectDestroy(CUtexObject tex) {
  NZ_REQUIRE_INIT();
  std::lock_guard lock(g_tex_mu);
  return g_textures.erase(tex) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuTexObjectGetResourceDesc(CUDA_RESOURCE_DESC* res, CUtexObject tex) {
  NZ_REQUIRE_INIT();
  if (!res) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(g_tex_mu);
  auto it = g_textures.find(tex);
  if (it == g_textures.end()) return CUDA_ERROR_INVALID_VALUE;
  *res = it->second;
  return CUDA_SUCCESS;
}

__attribute__((visibility("default"))) void* nzsim_texture_address(unsigned long long tex) {
  std::lock_guard lock(g_tex_mu);
  auto it = g_textures.find(tex);
  if (it == g_textures.end()) return nullptr;
  const CUDA_RESOURCE_DESC& r = it->second;
  return reinterpret_cast<void*>(r.resType == CU_RESOURCE_TYPE_LINEAR ? r.res.linear.devPtr : r.res.pitch2D.devPtr);
}

}  // extern "C"
