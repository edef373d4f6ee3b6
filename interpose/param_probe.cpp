// param_probe.cpp: see param_probe.h. One line per distinct handle:
//   neuzip: param probe: 0x... CUkernel name=... cuKernelGetParamInfo: 4 params, 32 bytes, then
//           CUDA_ERROR_INVALID_VALUE; cuFuncGetParamInfo: 4 params, 32 bytes, then CUDA_ERROR_INVALID_VALUE
// and a summary at exit. The queries run outside any lock, on the launching
// thread, before the launch is forwarded; nothing here is hooked, so the
// driver never calls back into us.
#include "param_probe.h"

#include <cuda.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <unordered_set>

#include "kernel_registry.h"
#include "real_driver.h"
#include "shim_log.h"

namespace nz::shim {

const bool g_probe_params = [] {
  const char* v = std::getenv("NEUZIP_PROBE_PARAMS");
  return v && v[0] == '1';
}();

namespace {

// Torch launches a few hundred to a few thousand distinct kernels; past this
// the log would only grow.
constexpr size_t kMaxHandles = 4096;
// The driver documents no parameter limit below 32764 bytes (4-byte minimum each).
constexpr size_t kMaxParams = 8192;

using FuncInfoFn = CUresult (*)(CUfunction, size_t, size_t*, size_t*);
using KernelInfoFn = CUresult (*)(CUkernel, size_t, size_t*, size_t*);
using FuncNameFn = CUresult (*)(const char**, CUfunction);
using KernelNameFn = CUresult (*)(const char**, CUkernel);
using ErrorNameFn = CUresult (*)(CUresult, const char**);

struct Entries {
  FuncInfoFn func_info = nullptr;
  KernelInfoFn kernel_info = nullptr;
  FuncNameFn func_name = nullptr;
  KernelNameFn kernel_name = nullptr;
  ErrorNameFn error_name = nullptr;
};

const Entries& entries() noexcept {
  static const Entries e = [] {
    Entries x;
    x.func_info = reinterpret_cast<FuncInfoFn>(real_driver_symbol("cuFuncGetParamInfo"));
    x.kernel_info = reinterpret_cast<KernelInfoFn>(real_driver_symbol("cuKernelGetParamInfo"));
    x.func_name = reinterpret_cast<FuncNameFn>(real_driver_symbol("cuFuncGetName"));
    x.kernel_name = reinterpret_cast<KernelNameFn>(real_driver_symbol("cuKernelGetName"));
    x.error_name = reinterpret_cast<ErrorNameFn>(real_driver_symbol("cuGetErrorName"));
    return x;
  }();
  return e;
}

// No std::string in this file: in C++20 every user of it emits weak copies of
// its members, and the shim's static library would then be pulled into test
// programs that only need those (tests/runtime/shim).
const char* error_name(CUresult r) noexcept {
  const char* name = nullptr;
  if (entries().error_name && entries().error_name(r, &name) == CUDA_SUCCESS && name) return name;
  return "unknown CUresult";
}

// Walks indices until the driver refuses one: how many parameters, the bytes
// they span, and the refusal (CUDA_ERROR_INVALID_VALUE past the last one).
struct Walk {
  bool available = false;
  size_t params = 0;
  size_t bytes = 0;
  CUresult stop = CUDA_SUCCESS;
};

template <typename Fn, typename Handle>
Walk walk(Fn fn, Handle h) noexcept {
  Walk w;
  if (!fn) return w;
  w.available = true;
  for (size_t i = 0; i < kMaxParams; ++i) {
    size_t offset = 0, size = 0;
    w.stop = fn(h, i, &offset, &size);
    if (w.stop != CUDA_SUCCESS) break;
    ++w.params;
    if (offset + size > w.bytes) w.bytes = offset + size;
  }
  return w;
}

void describe(fmt::memory_buffer& out, const char* api, const Walk& w) {
  if (!w.available)
    fmt::format_to(std::back_inserter(out), "{}: not in this driver", api);
  else
    fmt::format_to(std::back_inserter(out), "{}: {} params, {} bytes, then {}", api, w.params, w.bytes,
                   error_name(w.stop));
}

std::mutex g_mu;
std::unordered_set<const void*>* g_seen = nullptr;  // leaked: launches may run during exit
std::atomic<uint64_t> g_kernels{0}, g_functions{0}, g_kernel_info_ok{0}, g_func_info_ok{0};

// Whether this handle is new (and so must be probed now).
bool first_sight(const void* handle) noexcept {
  try {
    std::lock_guard lock(g_mu);
    if (!g_seen) g_seen = new std::unordered_set<const void*>;
    if (g_seen->size() >= kMaxHandles || g_seen->count(handle)) return false;
    g_seen->insert(handle);
    if (g_seen->size() == kMaxHandles) log_line("param probe: {} handles probed, no more will be", kMaxHandles);
    return true;
  } catch (...) {
    return false;
  }
}

// Mangled template names can run to kilobytes; the start identifies them.
fmt::string_view shorten(const char* name) {
  if (!name) return "?";
  const fmt::string_view s(name);
  return s.size() > 160 ? fmt::string_view(name, 160) : s;
}

struct SummaryAtExit {
  pid_t pid = getpid();  // a child forked after start has the parent's figures: no summary there
  ~SummaryAtExit() {
    if (!g_probe_params || getpid() != pid) return;
    log_line("param probe summary (pid {}): {} CUkernel handles ({} answered cuKernelGetParamInfo), {} CUfunction "
             "handles ({} answered cuFuncGetParamInfo)",
             static_cast<long>(getpid()), g_kernels.load(), g_kernel_info_ok.load(), g_functions.load(),
             g_func_info_ok.load());
  }
} g_summary_at_exit;

}  // namespace

void probe_launch_params(const void* handle) noexcept {
  if (!handle || !first_sight(handle)) return;
  try {
    const Entries& e = entries();
    const bool is_kernel = is_known_kernel(handle);
    const char* name = nullptr;
    fmt::memory_buffer line;
    if (is_kernel) {
      // A CUkernel (from cuLibraryGetKernel) launched as a CUfunction cast, as
      // the CUDA runtime does: ask the kernel query first, then the function
      // query on the same cast to see whether the driver accepts it.
      g_kernels.fetch_add(1, std::memory_order_relaxed);
      auto* k_handle = reinterpret_cast<CUkernel>(const_cast<void*>(handle));
      if (e.kernel_name) e.kernel_name(&name, k_handle);
      const Walk k = walk(e.kernel_info, k_handle);
      const Walk f = walk(e.func_info, reinterpret_cast<CUfunction>(const_cast<void*>(handle)));
      if (k.params > 0 || (k.available && k.stop == CUDA_ERROR_INVALID_VALUE)) g_kernel_info_ok.fetch_add(1);
      describe(line, "cuKernelGetParamInfo", k);
      fmt::format_to(std::back_inserter(line), "; ");
      describe(line, "cuFuncGetParamInfo", f);
    } else {
      // Not seen coming from cuLibraryGetKernel: a CUfunction as far as we
      // know. If the function query refuses it, try it as a kernel, which
      // tells whether CUkernels reach the launch by a route we do not hook.
      g_functions.fetch_add(1, std::memory_order_relaxed);
      auto* f_handle = reinterpret_cast<CUfunction>(const_cast<void*>(handle));
      if (e.func_name) e.func_name(&name, f_handle);
      const Walk f = walk(e.func_info, f_handle);
      describe(line, "cuFuncGetParamInfo", f);
      if (f.params > 0 || (f.available && f.stop == CUDA_ERROR_INVALID_VALUE)) {
        g_func_info_ok.fetch_add(1);
      } else {
        fmt::format_to(std::back_inserter(line), "; as a CUkernel: ");
        describe(line, "cuKernelGetParamInfo", walk(e.kernel_info, reinterpret_cast<CUkernel>(const_cast<void*>(handle))));
      }
    }
    log_line("param probe: {} {} name={} {}", handle, is_kernel ? "CUkernel" : "CUfunction", shorten(name),
             fmt::string_view(line.data(), line.size()));
  } catch (...) {
  }
}

}  // namespace nz::shim
