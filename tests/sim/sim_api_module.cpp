// cuModule*, cuLibrary*, cuKernel*, cuFunc* entry points.
#include <cstring>

#include "sim_module.h"
#include "sim_stream.h"

using namespace nzsim;

namespace {

CUresult need_context() { return current_context() ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT; }

CUresult param_info(Kernel* k, size_t index, size_t* offset, size_t* size) {
  if (!k) return CUDA_ERROR_INVALID_HANDLE;
  if (index >= k->desc->param_count) return CUDA_ERROR_INVALID_VALUE;
  if (offset) *offset = k->desc->params[index].offset;
  if (size) *size = k->desc->params[index].size;
  return CUDA_SUCCESS;
}

int function_attribute(CUfunction_attribute attrib) {
  switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: return 1024;
    case CU_FUNC_ATTRIBUTE_NUM_REGS: return 32;
    case CU_FUNC_ATTRIBUTE_PTX_VERSION: return 90;
    case CU_FUNC_ATTRIBUTE_BINARY_VERSION: return 90;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: return 49152;
    default: return 0;
  }
}

}  // namespace

extern "C" {

CUresult CUDAAPI cuModuleLoad(CUmodule* mod, const char* path) {
  NZ_REQUIRE_INIT();
  if (CUresult r = need_context(); r != CUDA_SUCCESS) return r;
  CUresult r = load_module_file(path, reinterpret_cast<Module**>(mod));
  if (r == CUDA_SUCCESS) reinterpret_cast<Module*>(*mod)->ctx = current_context();
  return r;
}

CUresult CUDAAPI cuModuleLoadData(CUmodule* mod, const void* image) {
  NZ_REQUIRE_INIT();
  if (CUresult r = need_context(); r != CUDA_SUCCESS) return r;
  CUresult r = load_module_image(image, reinterpret_cast<Module**>(mod));
  if (r == CUDA_SUCCESS) reinterpret_cast<Module*>(*mod)->ctx = current_context();
  return r;
}

CUresult CUDAAPI cuModuleLoadDataEx(CUmodule* mod, const void* image, unsigned int, CUjit_option*, void**) {
  return cuModuleLoadData(mod, image);
}

CUresult CUDAAPI cuModuleLoadFatBinary(CUmodule* mod, const void* image) { return cuModuleLoadData(mod, image); }

CUresult CUDAAPI cuModuleUnload(CUmodule mod) {
  NZ_REQUIRE_INIT();
  Module* m = as_module(mod);
  if (!m) return CUDA_ERROR_INVALID_HANDLE;
  unload_module(m);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleGetFunction(CUfunction* fn, CUmodule mod, const char* name) {
  NZ_REQUIRE_INIT();
  Module* m = as_module(mod);
  if (!m) return CUDA_ERROR_INVALID_HANDLE;
  if (!fn || !name) return CUDA_ERROR_INVALID_VALUE;
  Kernel* k = find_kernel(m, name);
  if (!k) return CUDA_ERROR_NOT_FOUND;
  *fn = reinterpret_cast<CUfunction>(k);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleGetFunctionCount(unsigned int* count, CUmodule mod) {
  NZ_REQUIRE_INIT();
  Module* m = as_module(mod);
  if (!m) return CUDA_ERROR_INVALID_HANDLE;
  if (!count) return CUDA_ERROR_INVALID_VALUE;
  *count = static_cast<unsigned>(m->kernels.size());
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleEnumerateFunctions(CUfunction* fns, unsigned int n, CUmodule mod) {
  NZ_REQUIRE_INIT();
  Module* m = as_module(mod);
  if (!m) return CUDA_ERROR_INVALID_HANDLE;
  if (!fns) return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < n && i < m->kernels.size(); ++i) fns[i] = reinterpret_cast<CUfunction>(m->kernels[i].get());
  return CUDA_SUCCESS;
}

namespace {
CUresult get_global(CUdeviceptr* dptr, size_t* bytes, void* handle, const char* name) {
  Module* m = as_module(handle);
  if (!m) return CUDA_ERROR_INVALID_HANDLE;
  if (!name || (!dptr && !bytes)) return CUDA_ERROR_INVALID_VALUE;
  const Module::Global* g = find_global(m, name);
  if (!g) return CUDA_ERROR_NOT_FOUND;
  if (dptr) *dptr = g->address;
  if (bytes) *bytes = g->bytes;
  return CUDA_SUCCESS;
}
}  // namespace

CUresult CUDAAPI cuModuleGetGlobal(CUdeviceptr* dptr, size_t* bytes, CUmodule mod, const char* name) {
  NZ_REQUIRE_INIT();
  return get_global(dptr, bytes, mod, name);
}

CUresult CUDAAPI cuLibraryGetGlobal(CUdeviceptr* dptr, size_t* bytes, CUlibrary lib, const char* name) {
  NZ_REQUIRE_INIT();
  return get_global(dptr, bytes, lib, name);
}

CUresult CUDAAPI cuModuleGetLoadingMode(CUmoduleLoadingMode* mode) {
  NZ_REQUIRE_INIT();
  if (!mode) return CUDA_ERROR_INVALID_VALUE;
  *mode = CU_MODULE_EAGER_LOADING;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuLibraryLoadData(CUlibrary* lib, const void* code, CUjit_option*, void**, unsigned int,
                                   CUlibraryOption*, void**, unsigned int) {
  NZ_REQUIRE_INIT();
  return load_module_image(code, reinterpret_cast<Module**>(lib));
}

CUresult CUDAAPI cuLibraryLoadFromFile(CUlibrary* lib, const char* path, CUjit_option*, void**, unsigned int,
                                       CUlibraryOption*, void**, unsigned int) {
  NZ_REQUIRE_INIT();
  return load_module_file(path, reinterpret_cast<Module**>(lib));
}

CUresult CUDAAPI cuLibraryUnload(CUlibrary lib) { return cuModuleUnload(reinterpret_cast<CUmodule>(lib)); }

CUresult CUDAAPI cuLibraryGetKernel(CUkernel* kernel, CUlibrary lib, const char* name) {
  CUfunction fn = nullptr;
  CUresult r = cuModuleGetFunction(&fn, reinterpret_cast<CUmodule>(lib), name);
  if (r == CUDA_SUCCESS) *kernel = reinterpret_cast<CUkernel>(&as_function(fn)->view);
  return r;
}

CUresult CUDAAPI cuLibraryGetModule(CUmodule* mod, CUlibrary lib) {
  NZ_REQUIRE_INIT();
  if (!as_module(lib)) return CUDA_ERROR_INVALID_HANDLE;
  if (!mod) return CUDA_ERROR_INVALID_VALUE;
  *mod = reinterpret_cast<CUmodule>(lib);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuLibraryGetKernelCount(unsigned int* count, CUlibrary lib) {
  return cuModuleGetFunctionCount(count, reinterpret_cast<CUmodule>(lib));
}

CUresult CUDAAPI cuLibraryEnumerateKernels(CUkernel* kernels, unsigned int n, CUlibrary lib) {
  CUresult r = cuModuleEnumerateFunctions(reinterpret_cast<CUfunction*>(kernels), n, reinterpret_cast<CUmodule>(lib));
  if (r != CUDA_SUCCESS) return r;
  for (unsigned i = 0; i < n; ++i) {
    kernels[i] = reinterpret_cast<CUkernel>(&as_function(reinterpret_cast<CUfunction>(kernels[i]))->view);
  }
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuKernelGetFunction(CUfunction* fn, CUkernel kernel) {
  NZ_REQUIRE_INIT();
  Kernel* k = as_kernel_handle(kernel);
  if (!k) return CUDA_ERROR_INVALID_HANDLE;
  if (!fn) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = need_context(); r != CUDA_SUCCESS) return r;
  *fn = reinterpret_cast<CUfunction>(k);
  return CUDA_SUCCESS;
}

namespace {
CUresult library_of(CUlibrary* lib, Kernel* k) {
  if (!k) return CUDA_ERROR_INVALID_HANDLE;
  if (!lib) return CUDA_ERROR_INVALID_VALUE;
  *lib = reinterpret_cast<CUlibrary>(k->module);
  return CUDA_SUCCESS;
}
}  // namespace

CUresult CUDAAPI cuKernelGetLibrary(CUlibrary* lib, CUkernel kernel) {
  NZ_REQUIRE_INIT();
  return library_of(lib, as_kernel_handle(kernel));
}

CUresult CUDAAPI cuFuncGetModule(CUmodule* mod, CUfunction fn) {
  NZ_REQUIRE_INIT();
  return library_of(reinterpret_cast<CUlibrary*>(mod), as_function(fn));
}

CUresult CUDAAPI cuFuncGetParamInfo(CUfunction fn, size_t index, size_t* offset, size_t* size) {
  NZ_REQUIRE_INIT();
  return param_info(as_function(fn), index, offset, size);
}

CUresult CUDAAPI cuKernelGetParamInfo(CUkernel kernel, size_t index, size_t* offset, size_t* size) {
  NZ_REQUIRE_INIT();
  return param_info(as_kernel_handle(kernel), index, offset, size);
}

namespace {
CUresult name_of(const char** name, Kernel* k) {
  if (!k) return CUDA_ERROR_INVALID_HANDLE;
  if (!name) return CUDA_ERROR_INVALID_VALUE;
  *name = k->desc->name;
  return CUDA_SUCCESS;
}
CUresult attribute_of(int* value, CUfunction_attribute attrib, Kernel* k) {
  if (!k) return CUDA_ERROR_INVALID_HANDLE;
  if (!value) return CUDA_ERROR_INVALID_VALUE;
  *value = function_attribute(attrib);
  return CUDA_SUCCESS;
}
}  // namespace

CUresult CUDAAPI cuFuncGetName(const char** name, CUfunction fn) {
  NZ_REQUIRE_INIT();
  return name_of(name, as_function(fn));
}

CUresult CUDAAPI cuKernelGetName(const char** name, CUkernel kernel) {
  NZ_REQUIRE_INIT();
  return name_of(name, as_kernel_handle(kernel));
}

CUresult CUDAAPI cuFuncGetAttribute(int* value, CUfunction_attribute attrib, CUfunction fn) {
  NZ_REQUIRE_INIT();
  return attribute_of(value, attrib, as_function(fn));
}

CUresult CUDAAPI cuKernelGetAttribute(int* value, CUfunction_attribute attrib, CUkernel kernel, CUdevice) {
  NZ_REQUIRE_INIT();
  return attribute_of(value, attrib, as_kernel_handle(kernel));
}

CUresult CUDAAPI cuFuncSetAttribute(CUfunction fn, CUfunction_attribute, int) {
  NZ_REQUIRE_INIT();
  return as_function(fn) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult CUDAAPI cuKernelSetAttribute(CUfunction_attribute, int, CUkernel kernel, CUdevice) {
  NZ_REQUIRE_INIT();
  return as_kernel_handle(kernel) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult CUDAAPI cuFuncSetCacheConfig(CUfunction fn, CUfunc_cache) {
  NZ_REQUIRE_INIT();
  return as_function(fn) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult CUDAAPI cuKernelSetCacheConfig(CUkernel kernel, CUfunc_cache, CUdevice) {
  NZ_REQUIRE_INIT();
  return as_kernel_handle(kernel) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult CUDAAPI cuFuncIsLoaded(CUfunctionLoadingState* state, CUfunction fn) {
  NZ_REQUIRE_INIT();
  if (!as_function(fn)) return CUDA_ERROR_INVALID_HANDLE;
  if (!state) return CUDA_ERROR_INVALID_VALUE;
  *state = CU_FUNCTION_LOADING_STATE_LOADED;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuFuncLoad(CUfunction fn) {
  NZ_REQUIRE_INIT();
  return as_function(fn) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

}  // extern "C"
