// cuStream* and cuEvent* entry points.
#include "sim_memory.h"
#include "sim_stream.h"
#include <utility>

#include <mutex>
#include <unordered_map>

using namespace nzsim;

// Live events and their contexts: an event goes with its context (destroyed
// or reset). Using or destroying one after that is refused and said, where a
// real driver's handle would dangle (the object is kept, so a stale handle
// reads no freed memory).
namespace {
std::mutex& g_events_mu = *new std::mutex;
std::unordered_map<Event*, Context*>& g_live_events = *new std::unordered_map<Event*, Context*>;

bool live_event(CUevent ev, const char* api) {
  {
    std::lock_guard lock(g_events_mu);
    if (g_live_events.count(reinterpret_cast<Event*>(ev)) != 0) return true;
  }
  log_error("{} of an event that is not live (destroyed, or its context was)", api);
  return false;
}
}  // namespace

namespace nzsim {
void retire_events(Context* c) {
  std::lock_guard lock(g_events_mu);
  for (auto it = g_live_events.begin(); it != g_live_events.end();) it = it->second == c ? g_live_events.erase(it) : std::next(it);
}
}  // namespace nzsim


using namespace nzsim;

namespace {

std::atomic<unsigned long long> g_next_capture_id{1};

CUresult sticky_of(Stream* s) { return s->ctx->sticky.load(); }

// The cuStreamGet* queries: resolve the handle, check the out pointer, read
// one field of the stream.
template <typename T, typename Read>
CUresult read_stream(CUstream h, T* out, Read read) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (!out) return CUDA_ERROR_INVALID_VALUE;
  *out = read(*s);
  return CUDA_SUCCESS;
}

}  // namespace

extern "C" {

CUresult CUDAAPI cuStreamCreateWithPriority(CUstream* out, unsigned int flags, int priority) {
  NZ_REQUIRE_INIT();
  if (!out || (flags & ~CU_STREAM_NON_BLOCKING)) return CUDA_ERROR_INVALID_VALUE;
  Context* c = current_context();
  if (!c) return CUDA_ERROR_INVALID_CONTEXT;
  auto s = create_stream(c, flags, priority, false, false);
  {
    std::lock_guard lock(c->mu);
    c->streams.push_back(s);
  }
  *out = reinterpret_cast<CUstream>(s.get());
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamCreate(CUstream* out, unsigned int flags) { return cuStreamCreateWithPriority(out, flags, 0); }

CUresult CUDAAPI cuStreamDestroy(CUstream h) {
  NZ_REQUIRE_INIT();
  auto* s = reinterpret_cast<Stream*>(h);
  if (!s || s == reinterpret_cast<Stream*>(CU_STREAM_LEGACY) || s == reinterpret_cast<Stream*>(CU_STREAM_PER_THREAD) ||
      s->magic != kStreamMagic || s->legacy || s->per_thread)
    return CUDA_ERROR_INVALID_HANDLE;
  Context* c = s->ctx;
  std::shared_ptr<Stream> keep;
  {
    std::lock_guard lock(c->mu);
    for (auto it = c->streams.begin(); it != c->streams.end(); ++it) {
      if (it->get() == s) {
        keep = *it;
        c->streams.erase(it);
        break;
      }
    }
  }
  if (!keep) return CUDA_ERROR_INVALID_HANDLE;
  // Queued work still completes (destroy_stream drains before stopping).
  kick(s, s->enqueued.load());
  destroy_stream(s);
  retire_streams({keep});
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamQuery(CUstream h) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (CUresult r = sticky_of(s); r != CUDA_SUCCESS) return r;
  uint64_t last = s->enqueued.load();
  kick(s, last);
  return reached(s, last) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

CUresult CUDAAPI cuStreamSynchronize(CUstream h) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  {
    std::lock_guard lock(s->mu);
    if (s->capture) {
      s->capture->invalidated = true;
      return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
  }
  drain(s);
  release_pool_memory();
  return sticky_of(s);
}

CUresult CUDAAPI cuStreamGetFlags(CUstream h, unsigned int* flags) {
  return read_stream(h, flags, [](const Stream& s) { return s.flags; });
}

CUresult CUDAAPI cuStreamGetPriority(CUstream h, int* priority) {
  return read_stream(h, priority, [](const Stream& s) { return s.priority; });
}

CUresult CUDAAPI cuStreamGetId(CUstream h, unsigned long long* id) {
  return read_stream(h, id, [](const Stream& s) { return s.id; });
}

CUresult CUDAAPI cuStreamGetCtx(CUstream h, CUcontext* pctx) {
  return read_stream(h, pctx, [](const Stream& s) { return reinterpret_cast<CUcontext>(s.ctx); });
}

CUresult CUDAAPI cuStreamGetDevice(CUstream h, CUdevice* dev) {
  return read_stream(h, dev, [](const Stream& s) { return s.ctx->device; });
}

CUresult CUDAAPI cuStreamWaitEvent(CUstream h, CUevent ev, unsigned int flags) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (!ev || (flags & ~CU_EVENT_WAIT_EXTERNAL)) return CUDA_ERROR_INVALID_VALUE;
  if (!live_event(ev, "cuStreamWaitEvent")) return CUDA_ERROR_INVALID_HANDLE;
  auto core = reinterpret_cast<Event*>(ev)->core;
  std::shared_ptr<Stream> target;
  uint64_t seq;
  {
    std::lock_guard lock(core->mu);
    if (core->capture) {
      join_capture(s, core->capture);  // the waiting stream joins the capture
      return CUDA_SUCCESS;
    }
    target = core->stream;
    seq = core->seq;
  }
  if (!target || target.get() == s || reached(target.get(), seq)) return CUDA_SUCCESS;
  WorkItem item;
  item.kind = ItemKind::control;
  item.label = "cuStreamWaitEvent";
  item.body = [target, seq] {
    wait_until(target.get(), seq);
    return CUDA_SUCCESS;
  };
  submit(s, std::move(item));
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamAddCallback(CUstream h, CUstreamCallback callback, void* user_data, unsigned int flags) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (!callback || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  WorkItem item;
  item.kind = ItemKind::control;  // callbacks run even after an error, and receive it
  item.label = "stream callback";
  item.body = [s, callback, user_data, h] {
    callback(h, s->ctx->sticky.load(), user_data);
    return CUDA_SUCCESS;
  };
  submit(s, std::move(item));
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuLaunchHostFunc(CUstream h, CUhostFn fn, void* user_data) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (!fn) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = sticky_of(s); r != CUDA_SUCCESS) return r;
  WorkItem item;
  item.kind = ItemKind::host_fn;
  item.label = "host function";
  item.body = [fn, user_data] {
    fn(user_data);
    return CUDA_SUCCESS;
  };
  submit(s, std::move(item));
  return CUDA_SUCCESS;
}

// --- events ---


CUresult CUDAAPI cuEventCreate(CUevent* out, unsigned int flags) {
  NZ_REQUIRE_INIT();
  if (!out) return CUDA_ERROR_INVALID_VALUE;
  if (flags & ~(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS)) return CUDA_ERROR_INVALID_VALUE;
  Context* ctx = current_context();
  if (!ctx) return CUDA_ERROR_INVALID_CONTEXT;
  auto* e = new Event;
  e->core->flags = flags;
  e->ctx = ctx;
  {
    std::lock_guard lock(g_events_mu);
    g_live_events[e] = ctx;
  }
  *out = reinterpret_cast<CUevent>(e);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventDestroy(CUevent ev) {
  NZ_REQUIRE_INIT();
  if (!ev) return CUDA_ERROR_INVALID_HANDLE;
  {
    std::lock_guard lock(g_events_mu);
    if (g_live_events.erase(reinterpret_cast<Event*>(ev)) == 0) {
      log_error("cuEventDestroy of an event that is not live (destroyed, or its context was)");
      return CUDA_ERROR_INVALID_HANDLE;
    }
  }
  delete reinterpret_cast<Event*>(ev);  // queued records keep the core alive
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventRecordWithFlags(CUevent ev, CUstream h, unsigned int) {
  NZ_REQUIRE_INIT();
  if (!ev || !live_event(ev, "cuEventRecord")) return CUDA_ERROR_INVALID_HANDLE;
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  // The driver records an event only on a stream of the context it was
  // created in (cudaEventRecord: "event and stream must be on the same CUDA
  // context"); waits and queries work across contexts.
  if (reinterpret_cast<Event*>(ev)->ctx != s->ctx) return CUDA_ERROR_INVALID_HANDLE;
  auto core = reinterpret_cast<Event*>(ev)->core;
  std::shared_ptr<Capture> cap;
  {
    std::lock_guard lock(s->mu);
    cap = s->capture;
  }
  std::shared_ptr<Stream> owner;
  {
    std::lock_guard lock(s->ctx->mu);
    for (auto& other : s->ctx->streams)
      if (other.get() == s) owner = other;
    if (!owner && s->ctx->legacy_stream.get() == s) owner = s->ctx->legacy_stream;
  }
  std::lock_guard lock(core->mu);
  if (cap) {
    core->capture = cap;  // a record inside a capture only orders captured work
    return CUDA_SUCCESS;
  }
  core->capture.reset();
  uint64_t gen = ++core->generation;
  WorkItem item;
  item.kind = ItemKind::control;
  item.label = "cuEventRecord";
  item.body = [core, gen] {
    std::lock_guard l(core->mu);
    if (core->generation == gen) core->time_ms = now_ms();
    return CUDA_SUCCESS;
  };
  core->stream = owner;
  core->seq = submit(s, std::move(item));
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventRecord(CUevent ev, CUstream h) { return cuEventRecordWithFlags(ev, h, 0); }

// The stream and queue position of an event's last record (null before any).
static std::pair<std::shared_ptr<Stream>, uint64_t> last_record(CUevent ev) {
  auto core = reinterpret_cast<Event*>(ev)->core;
  std::lock_guard lock(core->mu);
  return {core->stream, core->seq};
}

CUresult CUDAAPI cuEventQuery(CUevent ev) {
  NZ_REQUIRE_INIT();
  if (!ev || !live_event(ev, "cuEventQuery")) return CUDA_ERROR_INVALID_HANDLE;
  auto [s, seq] = last_record(ev);
  if (!s) return CUDA_SUCCESS;
  if (CUresult r = s->ctx->sticky.load(); r != CUDA_SUCCESS) return r;
  kick(s.get(), seq);
  return reached(s.get(), seq) ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}

CUresult CUDAAPI cuEventSynchronize(CUevent ev) {
  NZ_REQUIRE_INIT();
  if (!ev || !live_event(ev, "cuEventSynchronize")) return CUDA_ERROR_INVALID_HANDLE;
  auto [s, seq] = last_record(ev);
  if (s) wait_until(s.get(), seq);
  release_pool_memory();
  return s ? s->ctx->sticky.load() : CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
  NZ_REQUIRE_INIT();
  if (!ms) return CUDA_ERROR_INVALID_VALUE;
  if (!start || !end) return CUDA_ERROR_INVALID_HANDLE;
  auto a = reinterpret_cast<Event*>(start)->core;
  auto b = reinterpret_cast<Event*>(end)->core;
  if ((a->flags | b->flags) & CU_EVENT_DISABLE_TIMING) return CUDA_ERROR_INVALID_HANDLE;
  for (auto* ev : {start, end}) {
    CUresult r = cuEventQuery(ev);
    if (r != CUDA_SUCCESS) return r;
  }
  std::scoped_lock lock(a->mu, b->mu);
  if (!a->stream || !b->stream) return CUDA_ERROR_INVALID_HANDLE;
  *ms = static_cast<float>(b->time_ms - a->time_ms);
  return CUDA_SUCCESS;
}

// --- capture ---

CUresult CUDAAPI cuStreamBeginCapture(CUstream h, CUstreamCaptureMode mode) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (s->legacy) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  auto cap = std::make_shared<Capture>();
  cap->graph = std::make_shared<Graph>();
  cap->mode = mode;
  cap->origin = s;
  cap->thread = std::this_thread::get_id();
  cap->id = g_next_capture_id.fetch_add(1);
  {
    std::lock_guard lock(s->mu);
    if (s->capture) return CUDA_ERROR_ILLEGAL_STATE;
  }
  join_capture(s, cap);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamIsCapturing(CUstream h, CUstreamCaptureStatus* status) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (!status) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(s->mu);
  *status = !s->capture ? CU_STREAM_CAPTURE_STATUS_NONE
            : s->capture->invalidated ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
                                      : CU_STREAM_CAPTURE_STATUS_ACTIVE;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamGetCaptureInfo_v3(CUstream h, CUstreamCaptureStatus* status, cuuint64_t* id, CUgraph* graph,
                                           const CUgraphNode** deps, const CUgraphEdgeData** edges, size_t* ndeps) {
  NZ_REQUIRE_INIT();
  Stream* s;
  if (CUresult r = resolve_stream(h, &s); r != CUDA_SUCCESS) return r;
  if (!status) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(s->mu);
  auto& cap = s->capture;
  *status = !cap ? CU_STREAM_CAPTURE_STATUS_NONE
            : cap->invalidated ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
                               : CU_STREAM_CAPTURE_STATUS_ACTIVE;
  if (id) *id = cap ? cap->id : 0;
  if (graph) *graph = cap ? reinterpret_cast<CUgraph>(cap->graph.get()) : nullptr;
  if (deps) *deps = nullptr;
  if (edges) *edges = nullptr;
  if (ndeps) *ndeps = 0;
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamGetCaptureInfo_v2(CUstream h, CUstreamCaptureStatus* status, cuuint64_t* id, CUgraph* graph,
                                           const CUgraphNode** deps, size_t* ndeps) {
  return cuStreamGetCaptureInfo_v3(h, status, id, graph, deps, nullptr, ndeps);
}


}  // extern "C"
