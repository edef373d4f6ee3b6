// Contexts: primary and explicit, the per-thread context stack, and the
// per-thread default streams.
//
// Recovery from a sticky error (a fault poisons its context, as on a GPU):
// destroy the context (cuCtxDestroy) and create a new one, or reset the
// primary context (cuDevicePrimaryCtxReset), which clears the error, frees the
// context's cuMemAlloc memory and destroys its streams; its handle stays valid.
#include <algorithm>
#include <set>

#include "sim_memory.h"
#include "sim_stream.h"

namespace nzsim {

thread_local bool tl_per_thread_default = false;

namespace {

std::atomic<unsigned long long> g_next_ctx_id{1};
// Never destroyed: stream workers may still run at process exit.
std::mutex& g_ctx_mu = *new std::mutex;
std::set<Context*>& g_live = *new std::set<Context*>;  // contexts not destroyed
// Per device (NZSIM_DEVICES).
Context* g_primary[kMaxDevices] = {};
unsigned g_primary_refs[kMaxDevices] = {};
unsigned g_primary_flags[kMaxDevices] = {};

// The calling thread's context stack. Trivially destructible, so that it
// still works in atexit handlers (a preloaded library's exit report calls the
// driver), which run after the main thread's thread_local destructors: a
// std::vector here was freed by then (ThreadSanitizer: heap-use-after-free
// in current_context at exit).
class ContextStack {
 public:
  bool empty() const { return depth_ == 0; }
  bool full() const { return depth_ == kMaxDepth; }
  Context*& back() { return items_[depth_ - 1]; }
  void push_back(Context* c) { items_[depth_++] = c; }  // callers check full()
  void pop_back() { --depth_; }
  void remove(Context* c) { depth_ = static_cast<size_t>(std::remove(items_, items_ + depth_, c) - items_); }

 private:
  static constexpr size_t kMaxDepth = 64;  // cuCtxPushCurrent nesting
  Context* items_[kMaxDepth];
  size_t depth_;
};
thread_local ContextStack tl_stack;  // zero-initialised, no destructor
// The calling thread's per-thread default stream of each context it used:
// trivially destructible too (an atexit handler may launch on it). The
// oldest entry gives way when full (its stream lives on with its context;
// a later use on that context makes another).
class PerThreadStreams {
 public:
  Stream* find(Context* c) const {
    for (size_t i = 0; i < count_; ++i)
      if (entries_[i].ctx == c) return entries_[i].stream;
    return nullptr;
  }
  void set(Context* c, Stream* s) {
    for (size_t i = 0; i < count_; ++i)
      if (entries_[i].ctx == c) {
        entries_[i].stream = s;
        return;
      }
    if (count_ == kMax) {
      std::move(entries_ + 1, entries_ + kMax, entries_);
      --count_;
    }
    entries_[count_++] = {c, s};
  }

 private:
  static constexpr size_t kMax = 16;
  struct Entry {
    Context* ctx;
    Stream* stream;
  };
  Entry entries_[kMax];
  size_t count_;
};
thread_local PerThreadStreams tl_streams;  // zero-initialised, no destructor

Context* new_context(CUdevice dev, unsigned flags, bool primary) {
  auto* c = new Context;
  c->device = dev;
  c->flags = flags;
  c->primary = primary;
  c->id = g_next_ctx_id.fetch_add(1);
  c->legacy_stream = create_stream(c, 0, 0, true, false);
  std::lock_guard lock(g_ctx_mu);
  g_live.insert(c);
  return c;
}

// Drains and destroys the context's streams and frees its memory.
void teardown(Context* c) {
  synchronize_context(c);
  std::vector<std::shared_ptr<Stream>> streams;
  {
    std::lock_guard lock(c->mu);
    streams.swap(c->streams);
  }
  for (auto& s : streams) destroy_stream(s.get());
  retire_streams(std::move(streams));
  retire_events(c);
  free_context_allocations(c);
}

}  // namespace

// Destroyed streams are kept (their worker threads are gone) so that stale
// handles read a dead magic number instead of freed memory.
void retire_streams(std::vector<std::shared_ptr<Stream>> streams) {
  static std::mutex mu;
  static std::vector<std::shared_ptr<Stream>> graveyard;
  std::lock_guard lock(mu);
  for (auto& s : streams) graveyard.push_back(std::move(s));
}

namespace {

void remove_from_stack(Context* c) {
  tl_stack.remove(c);
}

}  // namespace

Context* current_context() { return tl_stack.empty() ? nullptr : tl_stack.back(); }

bool valid_context(Context* c) {
  if (!c) return false;
  std::lock_guard lock(g_ctx_mu);
  return g_live.count(c) != 0;
}

bool reaches_linear_memory_of(Context* from, Context* owner) {
  if (from == nullptr || owner == nullptr || from->device == owner->device) return true;
  std::lock_guard lock(from->mu);
  return std::find(from->peers.begin(), from->peers.end(), owner) != from->peers.end();
}

void poison(Context* c, CUresult error) {
  CUresult expected = CUDA_SUCCESS;
  c->sticky.compare_exchange_strong(expected, error);
}

CUresult synchronize_context(Context* c) {
  drain(c->legacy_stream.get());
  std::vector<std::shared_ptr<Stream>> streams;
  {
    std::lock_guard lock(c->mu);
    streams = c->streams;
  }
  for (auto& s : streams) drain(s.get());
  return c->sticky.load();
}

Stream* per_thread_stream(Context* c) {
  if (Stream* s = tl_streams.find(c); s != nullptr && s->magic == kStreamMagic) return s;
  auto s = create_stream(c, 0, 0, false, true);
  {
    std::lock_guard lock(c->mu);
    c->streams.push_back(s);
  }
  tl_streams.set(c, s.get());
  return s.get();
}

CUresult resolve_stream(CUstream handle, Stream** out) {
  if (handle == nullptr || handle == CU_STREAM_LEGACY || handle == CU_STREAM_PER_THREAD) {
    Context* c = current_context();
    if (!c) return CUDA_ERROR_INVALID_CONTEXT;
    bool per_thread = handle == CU_STREAM_PER_THREAD || (handle == nullptr && tl_per_thread_default);
    *out = per_thread ? per_thread_stream(c) : c->legacy_stream.get();
    return CUDA_SUCCESS;
  }
  auto* s = reinterpret_cast<Stream*>(handle);
  if (s->magic != kStreamMagic) return CUDA_ERROR_INVALID_HANDLE;
  *out = s;
  return CUDA_SUCCESS;
}

}  // namespace nzsim

using namespace nzsim;

extern "C" {

CUresult CUDAAPI cuCtxCreate_v2(CUcontext* pctx, unsigned int flags, CUdevice dev) {
  NZ_REQUIRE_INIT();
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (tl_stack.full()) return CUDA_ERROR_OUT_OF_MEMORY;
  Context* c = new_context(dev, flags, false);
  tl_stack.push_back(c);
  *pctx = reinterpret_cast<CUcontext>(c);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxCreate_v3(CUcontext* pctx, CUexecAffinityParam*, int, unsigned int flags, CUdevice dev) {
  return cuCtxCreate_v2(pctx, flags, dev);
}

CUresult CUDAAPI cuCtxCreate(CUcontext* pctx, CUctxCreateParams*, unsigned int flags, CUdevice dev) {
  return cuCtxCreate_v2(pctx, flags, dev);
}

CUresult CUDAAPI cuCtxDestroy(CUcontext ctx) {
  NZ_REQUIRE_INIT();
  auto* c = reinterpret_cast<Context*>(ctx);
  if (!valid_context(c) || c->primary) return CUDA_ERROR_INVALID_CONTEXT;
  {
    std::lock_guard lock(g_ctx_mu);
    g_live.erase(c);
  }
  remove_from_stack(c);
  teardown(c);
  destroy_stream(c->legacy_stream.get());
  retire_streams({c->legacy_stream});
  c->alive = false;
  c->magic = 0;
  // The Context object itself is kept (a few bytes) so that stale handles in
  // other threads read a dead context instead of freed memory.
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxPushCurrent(CUcontext ctx) {
  NZ_REQUIRE_INIT();
  auto* c = reinterpret_cast<Context*>(ctx);
  if (!valid_context(c)) return CUDA_ERROR_INVALID_CONTEXT;
  if (tl_stack.full()) return CUDA_ERROR_OUT_OF_MEMORY;
  tl_stack.push_back(c);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxPopCurrent(CUcontext* pctx) {
  NZ_REQUIRE_INIT();
  if (tl_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
  if (pctx) *pctx = reinterpret_cast<CUcontext>(tl_stack.back());
  tl_stack.pop_back();
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx) {
  NZ_REQUIRE_INIT();
  auto* c = reinterpret_cast<Context*>(ctx);
  if (!c) {
    if (!tl_stack.empty()) tl_stack.pop_back();
    return CUDA_SUCCESS;
  }
  if (!valid_context(c)) return CUDA_ERROR_INVALID_CONTEXT;
  if (tl_stack.empty()) tl_stack.push_back(c);
  else tl_stack.back() = c;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetCurrent(CUcontext* pctx) {
  NZ_REQUIRE_INIT();
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  *pctx = reinterpret_cast<CUcontext>(current_context());
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetDevice(CUdevice* dev) {
  NZ_REQUIRE_INIT();
  if (!dev) return CUDA_ERROR_INVALID_VALUE;
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  *dev = c->device;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetFlags(unsigned int* flags) {
  NZ_REQUIRE_INIT();
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  if (!flags) return CUDA_ERROR_INVALID_VALUE;
  *flags = c->flags;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetFlags(unsigned int flags) {
  NZ_REQUIRE_INIT();
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  c->flags = flags;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetId(CUcontext ctx, unsigned long long* id) {
  NZ_REQUIRE_INIT();
  auto* c = ctx ? reinterpret_cast<Context*>(ctx) : current_context();
  if (!valid_context(c)) return CUDA_ERROR_INVALID_CONTEXT;
  if (!id) return CUDA_ERROR_INVALID_VALUE;
  *id = c->id;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetApiVersion(CUcontext ctx, unsigned int* version) {
  NZ_REQUIRE_INIT();
  auto* c = ctx ? reinterpret_cast<Context*>(ctx) : current_context();
  if (!valid_context(c)) return CUDA_ERROR_INVALID_CONTEXT;
  if (!version) return CUDA_ERROR_INVALID_VALUE;
  *version = 3020;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSynchronize(void) {
  NZ_REQUIRE_INIT();
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  if (CUresult r = check_capture_unsafe_call(); r != CUDA_SUCCESS) return r;
  CUresult r = synchronize_context(c);
  release_pool_memory();
  return r;
}

// CUDA 13: the named context (null: the current one).
CUresult CUDAAPI cuCtxSynchronize_v2(CUcontext ctx) {
  NZ_REQUIRE_INIT();
  Context* c = ctx ? reinterpret_cast<Context*>(ctx) : current_context();
  if (!c || !valid_context(c)) return CUDA_ERROR_INVALID_CONTEXT;
  if (CUresult r = check_capture_unsafe_call(); r != CUDA_SUCCESS) return r;
  CUresult r = synchronize_context(c);
  release_pool_memory();
  return r;
}

CUresult CUDAAPI cuCtxGetLimit(size_t* value, CUlimit limit) {
  NZ_REQUIRE_INIT();
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  if (!value || static_cast<unsigned>(limit) >= 16) return CUDA_ERROR_INVALID_VALUE;
  *value = c->limits[limit];
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetLimit(CUlimit limit, size_t value) {
  NZ_REQUIRE_INIT();
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  if (static_cast<unsigned>(limit) >= 16) return CUDA_ERROR_INVALID_VALUE;
  c->limits[limit] = value;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetCacheConfig(CUfunc_cache* config) {
  NZ_REQUIRE_INIT();
  if (!config) return CUDA_ERROR_INVALID_VALUE;
  *config = CU_FUNC_CACHE_PREFER_NONE;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetCacheConfig(CUfunc_cache) {
  NZ_REQUIRE_INIT();
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetStreamPriorityRange(int* least, int* greatest) {
  NZ_REQUIRE_INIT();
  if (least) *least = 0;
  if (greatest) *greatest = -5;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxResetPersistingL2Cache(void) {
  NZ_REQUIRE_INIT();
  return CUDA_SUCCESS;
}

// Peer access, as the driver documents it: one direction per call, from the
// current context to `peer`'s memory; flags must be 0; a context on the same
// device or a device that cannot reach the peer is refused.
CUresult CUDAAPI cuCtxEnablePeerAccess(CUcontext peer, unsigned int flags) {
  NZ_REQUIRE_INIT();
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  auto* p = reinterpret_cast<Context*>(peer);
  if (!valid_context(p)) return CUDA_ERROR_INVALID_CONTEXT;
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (p->device == c->device) return CUDA_ERROR_INVALID_DEVICE;
  std::lock_guard lock(c->mu);
  if (std::find(c->peers.begin(), c->peers.end(), p) != c->peers.end()) return CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED;
  c->peers.push_back(p);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxDisablePeerAccess(CUcontext peer) {
  NZ_REQUIRE_INIT();
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  auto* p = reinterpret_cast<Context*>(peer);
  if (!valid_context(p)) return CUDA_ERROR_INVALID_CONTEXT;
  std::lock_guard lock(c->mu);
  auto it = std::find(c->peers.begin(), c->peers.end(), p);
  if (it == c->peers.end()) return CUDA_ERROR_PEER_ACCESS_NOT_ENABLED;
  c->peers.erase(it);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext* pctx, CUdevice dev) {
  NZ_REQUIRE_INIT();
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  Context* c;
  {
    std::lock_guard lock(g_ctx_mu);
    c = g_primary[dev];
  }
  if (!c) {
    Context* fresh = new_context(dev, g_primary_flags[dev], true);
    std::lock_guard lock(g_ctx_mu);
    if (!g_primary[dev]) g_primary[dev] = fresh;  // a racing retain may have won; keep one
    c = g_primary[dev];
  }
  std::lock_guard lock(g_ctx_mu);
  ++g_primary_refs[dev];
  *pctx = reinterpret_cast<CUcontext>(c);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice dev) {
  NZ_REQUIRE_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  Context* c = nullptr;
  {
    std::lock_guard lock(g_ctx_mu);
    if (g_primary_refs[dev] == 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (--g_primary_refs[dev] == 0) c = g_primary[dev];
  }
  // The last reference destroys the primary context's work and memory, as a
  // real driver does (the handle stays valid: a later retain revives it).
  if (c) {
    teardown(c);
    c->sticky = CUDA_SUCCESS;
  }
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxReset(CUdevice dev) {
  NZ_REQUIRE_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  Context* c;
  {
    std::lock_guard lock(g_ctx_mu);
    c = g_primary[dev];
    g_primary_refs[dev] = 0;
  }
  if (!c) return CUDA_SUCCESS;
  teardown(c);
  c->sticky = CUDA_SUCCESS;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int* flags, int* active) {
  NZ_REQUIRE_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (!flags || !active) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(g_ctx_mu);
  *flags = g_primary_flags[dev];
  *active = g_primary_refs[dev] > 0 ? 1 : 0;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags) {
  NZ_REQUIRE_INIT();
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  std::lock_guard lock(g_ctx_mu);
  g_primary_flags[dev] = flags;
  if (g_primary[dev]) g_primary[dev]->flags = flags;
  return CUDA_SUCCESS;
}

}  // extern "C"
