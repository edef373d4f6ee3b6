// alloc_sites.cpp: see alloc_sites.h.
//
// Why the libgcc unwinder (_Unwind_Backtrace) and not libunwind: it walks the
// same DWARF CFI, so frames without frame pointers unwind as well, and it
// lives in libgcc_s, which libneuzip.so needs anyway; libunwind would add a
// NEEDED library (Debian's also pulls in liblzma) to a shim that must load
// into any process.
#include "runtime/alloc_sites.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <link.h>
#include <unwind.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "runtime/trace.h"

namespace nz::rt {

namespace {

constexpr size_t kMaxRawFrames = 48;   // enough to get past our own frames and the driver's
constexpr size_t kNativeFrames = 6;    // kept after ours
constexpr size_t kPythonFrames = 4;
constexpr size_t kMaxNameChars = 160;  // template-heavy C++ names get long

// ---- native stack ---------------------------------------------------------------------

struct Unwound {
  uintptr_t pcs[kMaxRawFrames];
  size_t count = 0;
};

_Unwind_Reason_Code collect(struct _Unwind_Context* ctx, void* arg) {
  auto* u = static_cast<Unwound*>(arg);
  const uintptr_t ip = _Unwind_GetIP(ctx);
  if (ip == 0) return _URC_END_OF_STACK;
  u->pcs[u->count++] = ip;
  return u->count == kMaxRawFrames ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// The base address of libneuzip.so itself: frames in it are ours, not the caller's.
const void* own_module() {
  static const void* base = [] {
    Dl_info info{};
    return dladdr(reinterpret_cast<const void*>(&alloc_site_member), &info) ? info.dli_fbase : nullptr;
  }();
  return base;
}

std::string basename_of(const char* path) {
  if (path == nullptr || *path == '\0') return "?";
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

// The demangled name without its parameter list ("ns::Class::method"): the
// offset already tells overloads apart, and signatures of templated
// arguments run to hundreds of characters.
std::string demangled(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : name;
  std::free(d);
  if (const size_t close = out.rfind(')'); close != std::string::npos && out.find('(') != std::string::npos) {
    int depth = 0;
    for (size_t i = close + 1; i-- > 0;) {
      if (out[i] == ')') ++depth;
      else if (out[i] == '(' && --depth == 0) {
        out.erase(i);
        break;
      }
    }
  }
  if (out.size() > kMaxNameChars) out = out.substr(0, kMaxNameChars) + "...";
  return out;
}

// "module!function+0xoff" when the address lies inside an exported symbol,
// else "module+0xoff" (an executable linked without -rdynamic exports none;
// addr2line -e module 0xoff resolves it).
std::string symbolise(uintptr_t pc) {
  const uintptr_t addr = pc - 1;  // a return address points past the call
  Dl_info info{};
  void* entry = nullptr;  // the ElfW(Sym) of the symbol found
  if (dladdr1(reinterpret_cast<void*>(addr), &info, &entry, RTLD_DL_SYMENT) == 0)
    return fmt::format("{:#x}", addr);
  const std::string module = basename_of(info.dli_fname);
  const auto* sym = static_cast<const ElfW(Sym)*>(entry);
  const auto saddr = reinterpret_cast<uintptr_t>(info.dli_saddr);
  if (info.dli_sname != nullptr && sym != nullptr && addr >= saddr && addr < saddr + sym->st_size)
    return fmt::format("{}!{}+{:#x}", module, demangled(info.dli_sname), addr - saddr);
  return fmt::format("{}+{:#x}", module, addr - reinterpret_cast<uintptr_t>(info.dli_fbase));
}

// ---- Python frames ----------------------------------------------------------------------

// The CPython calls we need, looked up once; all null when the process has
// no Python (or one older than 3.10, without PyGC_Disable).
struct PythonApi {
  using Obj = void*;
  int (*is_initialized)() = nullptr;
  int (*gil_check)() = nullptr;
  Obj (*get_frame)() = nullptr;           // borrowed
  Obj (*frame_code)(Obj) = nullptr;       // new reference
  Obj (*frame_back)(Obj) = nullptr;       // new reference
  int (*frame_line)(Obj) = nullptr;
  Obj (*get_attr)(Obj, const char*) = nullptr;  // new reference
  const char* (*utf8)(Obj) = nullptr;
  void (*decref)(Obj) = nullptr;
  void (*clear_error)() = nullptr;
  int (*gc_disable)() = nullptr;  // returns whether it was enabled
  int (*gc_enable)() = nullptr;

  bool usable() const {
    return is_initialized && gil_check && get_frame && frame_code && frame_back && frame_line && get_attr && utf8 &&
           decref && clear_error && gc_disable && gc_enable;
  }
};

template <typename F>
void find(F& fn, const char* name) {
  fn = reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

const PythonApi& python_api() {
  static const PythonApi api = [] {
    PythonApi a;
    find(a.is_initialized, "Py_IsInitialized");
    find(a.gil_check, "PyGILState_Check");
    find(a.get_frame, "PyEval_GetFrame");
    find(a.frame_code, "PyFrame_GetCode");
    find(a.frame_back, "PyFrame_GetBack");
    find(a.frame_line, "PyFrame_GetLineNumber");
    find(a.get_attr, "PyObject_GetAttrString");
    find(a.utf8, "PyUnicode_AsUTF8");
    find(a.decref, "Py_DecRef");
    find(a.clear_error, "PyErr_Clear");
    find(a.gc_disable, "PyGC_Disable");
    find(a.gc_enable, "PyGC_Enable");
    return a;
  }();
  return api;
}

std::string code_string(const PythonApi& py, void* code, const char* attr) {
  void* s = py.get_attr(code, attr);
  if (s == nullptr) {
    py.clear_error();
    return "?";
  }
  const char* text = py.utf8(s);
  std::string out = text ? text : "?";
  if (text == nullptr) py.clear_error();
  py.decref(s);
  return out;
}

// Innermost first. Only with the GIL held by this thread: the frame chain
// belongs to the thread state, and touching it without the GIL would race.
std::vector<std::string> python_frames() {
  std::vector<std::string> out;
  const PythonApi& py = python_api();
  if (!py.usable() || !py.is_initialized() || !py.gil_check()) return out;
  // Walking the frames may create frame objects, and an allocation can start
  // a garbage collection whose finalizers free device memory: that would
  // re-enter the runtime, whose lock this thread holds. No collection then.
  const int gc_was_enabled = py.gc_disable();
  void* frame = py.get_frame();  // borrowed
  bool owned = false;
  while (frame != nullptr && out.size() < kPythonFrames) {
    void* code = py.frame_code(frame);
    if (code != nullptr) {
      out.push_back(fmt::format("{}:{} in {}", code_string(py, code, "co_filename"), py.frame_line(frame),
                                code_string(py, code, "co_name")));
      py.decref(code);
    }
    void* back = py.frame_back(frame);
    if (owned) py.decref(frame);
    frame = back;
    owned = true;
  }
  if (owned && frame != nullptr) py.decref(frame);
  if (gc_was_enabled) py.gc_enable();
  return out;
}

// ---- deduplication ----------------------------------------------------------------------

struct Sites {
  std::mutex mutex;
  std::unordered_map<uintptr_t, std::string> symbols;  // pc -> text
  std::unordered_map<std::string, uint64_t> ids;       // site key -> id
};

Sites& sites() {
  static Sites* s = new Sites;  // never destroyed: allocations may be traced during exit
  return *s;
}

std::string json_string(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string json_strings(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + json_string(v[i]);
  return out + "]";
}

}  // namespace

std::string alloc_site_member(Trace& trace) noexcept {
  try {
    Unwound u;
    _Unwind_Backtrace(collect, &u);
    // Our frames are innermost (the hook, Runtime::mem_alloc, this file),
    // then, for a program on the CUDA runtime, libcudart's: the site starts
    // at the first frame in neither.
    size_t first = 0;
    const void* own = own_module();
    while (first < u.count) {
      Dl_info info{};
      if (!dladdr(reinterpret_cast<void*>(u.pcs[first] - 1), &info)) break;
      if (info.dli_fbase != own && basename_of(info.dli_fname).rfind("libcudart", 0) != 0) break;
      ++first;
    }
    const size_t last = std::min(u.count, first + kNativeFrames);
    const std::vector<std::string> py = python_frames();

    std::string key(reinterpret_cast<const char*>(u.pcs + first), (last - first) * sizeof(uintptr_t));
    for (const auto& f : py) key += '\0' + f;
    Sites& s = sites();
    std::lock_guard lock(s.mutex);
    auto found = s.ids.find(key);
    if (found != s.ids.end()) return fmt::format("\"site\":{}", found->second);
    std::vector<std::string> native;
    for (size_t i = first; i < last; ++i) {
      auto it = s.symbols.find(u.pcs[i]);
      if (it == s.symbols.end()) it = s.symbols.emplace(u.pcs[i], symbolise(u.pcs[i])).first;
      native.push_back(it->second);
    }
    const uint64_t id = s.ids.size() + 1;
    s.ids.emplace(std::move(key), id);
    std::string members = fmt::format("\"id\":{},\"native\":{}", id, json_strings(native));
    if (!py.empty()) members += ",\"python\":" + json_strings(py);
    trace.emit("site", 0, 0, members);
    return fmt::format("\"site\":{}", id);
  } catch (...) {
    return {};
  }
}

}  // namespace nz::rt
