// Contexts, streams, events and stream capture: the execution model.
//
// Every stream owns a worker thread that runs its queue in order. Work items
// carry a sequence number; a stream's `completed` count says how far it got,
// so "wait for X" is always "wait until stream S completed sequence N".
// In lazy mode (NZSIM_LAZY=1) a worker runs items only up to the highest
// sequence someone waits for (or when its queue gets long), so work that is
// never waited for stays pending and ordering bugs become deterministic.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sim_internal.h"

namespace nzsim {

struct Context;
struct Stream;
struct Capture;
struct NodeParams;

enum class ItemKind : uint8_t {
  kernel,   // guarded; faults only in device memory count
  copy,     // guarded; any fault counts
  memset,   // guarded; any fault counts
  host_fn,  // cuLaunchHostFunc: skipped once the context is poisoned
  control,  // event records, cross-stream waits, callbacks: always run
};

struct WorkItem {
  ItemKind kind = ItemKind::control;
  const char* label = "";  // kernel name or "memcpy"/"memset": must outlive the item
  std::function<CUresult()> body;
  // What a graph node's getters answer (sim_graph_nodes.cpp): set for
  // kernels (launched or added as nodes) and for nodes added by the node API.
  std::shared_ptr<const NodeParams> node;
};

constexpr uint32_t kStreamMagic = 0x5354524d;
constexpr uint32_t kContextMagic = 0x4354584d;

struct Stream {
  uint32_t magic = kStreamMagic;
  Context* ctx = nullptr;
  unsigned flags = 0;
  int priority = 0;
  bool legacy = false;      // the context's NULL stream
  bool per_thread = false;  // a thread's per-thread default stream
  unsigned long long id = 0;

  std::mutex mu;
  std::condition_variable cv_work;
  std::condition_variable cv_done;
  std::deque<WorkItem> queue;
  std::atomic<uint64_t> enqueued{0};
  std::atomic<uint64_t> completed{0};
  uint64_t flush_target = 0;  // lazy mode
  bool stopping = false;
  std::shared_ptr<Capture> capture;  // guarded by mu
  std::thread worker;

  bool blocking() const { return !legacy && !(flags & CU_STREAM_NON_BLOCKING); }
};

struct Context {
  uint32_t magic = kContextMagic;
  CUdevice device = 0;
  unsigned flags = 0;
  bool primary = false;
  unsigned long long id = 0;
  std::atomic<CUresult> sticky{CUDA_SUCCESS};
  std::atomic<bool> alive{true};
  std::shared_ptr<Stream> legacy_stream;
  std::mutex mu;
  std::vector<std::shared_ptr<Stream>> streams;  // user and per-thread streams
  std::vector<Context*> peers;  // contexts whose cuMemAlloc memory this one may reach (cuCtxEnablePeerAccess)
  size_t limits[16] = {};
};

// --- contexts (sim_context.cpp) ---
Context* current_context();  // this thread's current context, or null
bool valid_context(Context* c);
// The context's events go with it (destroy, reset): later uses are refused.
void retire_events(Context* c);
// Whether kernels in `from` may reach `owner`'s cuMemAlloc memory: the same
// device, or peer access enabled from `from` to `owner`.
bool reaches_linear_memory_of(Context* from, Context* owner);
// Waits for every stream of the context; returns its sticky error.
CUresult synchronize_context(Context* c);
void poison(Context* c, CUresult error);
// The calling thread's per-thread default stream for `c` (created on demand).
Stream* per_thread_stream(Context* c);

// True while an API call runs through a _ptsz/_ptds entry point: stream 0
// then means the per-thread default stream.
extern thread_local bool tl_per_thread_default;

// Resolves a CUstream handle (0, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD or a
// created stream) against the current context.
CUresult resolve_stream(CUstream handle, Stream** out);

// --- streams (sim_stream.cpp) ---
std::shared_ptr<Stream> create_stream(Context* ctx, unsigned flags, int priority, bool legacy, bool per_thread);
// Stops the worker after it drained the queue; the stream must not be used after.
void destroy_stream(Stream* s);
// Keeps destroyed streams' memory alive (stale handles stay readable).
void retire_streams(std::vector<std::shared_ptr<Stream>> streams);
// Queues an item (or records it into the stream's capture). Returns its sequence
// number, 0 when it went into a capture.
uint64_t submit(Stream* s, WorkItem item);
// Blocks until `s` completed sequence `seq` (kicking it in lazy mode).
void wait_until(Stream* s, uint64_t seq);
bool reached(Stream* s, uint64_t seq);
// Lets a lazy stream run up to `seq` without waiting for it.
void kick(Stream* s, uint64_t seq);
// Blocks until everything queued so far on `s` completed.
void drain(Stream* s);

// --- events (sim_event.cpp) ---
struct EventCore {
  std::mutex mu;
  unsigned flags = 0;
  std::shared_ptr<Stream> stream;  // of the last record, null before any
  uint64_t seq = 0;
  uint64_t generation = 0;
  double time_ms = 0;  // host time when the last record executed
  std::shared_ptr<Capture> capture;  // set when recorded inside a capture
};

struct Event {
  std::shared_ptr<EventCore> core = std::make_shared<EventCore>();
  Context* ctx = nullptr;  // current at cuEventCreate: records only on its streams
};

double now_ms();

// --- capture (sim_graph.cpp) ---
// A CUgraphNode: item `index` of `graph` (sim_graph_nodes.cpp).
struct GraphNodeHandle {
  static constexpr uint32_t kMagic = 0x4e4f4445;
  uint32_t magic = kMagic;
  struct Graph* graph = nullptr;
  size_t index = 0;
};

struct Graph {
  std::mutex mu;
  std::vector<WorkItem> items;  // in capture (or node-adding) order; replayed in order
  // CUgraphNode handles, one per item, made on demand (cuGraphGetNodes, adds).
  std::vector<std::unique_ptr<GraphNodeHandle>> handles;
  ~Graph();
};

struct GraphExec {
  Graph* source = nullptr;      // the graph it was instantiated from (its nodes name items)
  std::vector<WorkItem> items;  // the graph's, copied at instantiation (node i = item i)
};

struct Capture {
  std::shared_ptr<Graph> graph;
  Graph* graph_handle = nullptr;  // the CUgraph handed out by EndCapture
  CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_GLOBAL;
  Stream* origin = nullptr;
  std::thread::id thread;
  unsigned long long id = 0;
  std::atomic<bool> invalidated{false};
  std::mutex mu;
  std::vector<Stream*> members;
};

// Called by calls that are illegal during a capture (allocation, VMM, sync).
// Invalidates the affected captures and returns
// CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, or CUDA_SUCCESS when none.
CUresult check_capture_unsafe_call();
void join_capture(Stream* s, const std::shared_ptr<Capture>& cap);

}  // namespace nzsim
