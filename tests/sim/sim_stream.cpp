// Stream queues and their worker threads.
#include "sim_stream.h"

#include <chrono>

#include "sim_fault.h"

namespace nzsim {
namespace {

std::atomic<unsigned long long> g_next_stream_id{1};

const char* kind_label(const WorkItem& item) {
  switch (item.kind) {
    case ItemKind::copy: return "memcpy";
    case ItemKind::memset: return "memset";
    case ItemKind::host_fn: return "host function";
    default: return item.label;
  }
}

CUresult call_body(void* arg) { return (*static_cast<std::function<CUresult()>*>(arg))(); }

void execute(Stream* s, WorkItem& item) {
  Context* ctx = s->ctx;
  if (item.kind != ItemKind::control && ctx->sticky.load(std::memory_order_relaxed) != CUDA_SUCCESS) {
    return;  // a poisoned context runs nothing (as a GPU after a fault)
  }
  if (item.kind == ItemKind::control) {
    item.body();
    return;
  }
  bool any_address = item.kind == ItemKind::copy || item.kind == ItemKind::memset;
  GuardOutcome out = run_guarded(any_address, call_body, &item.body);
  const char* label = item.kind == ItemKind::kernel ? item.label : kind_label(item);
  if (out.faulted) {
    count_fault();
    log_error("illegal address {:#x} in {} on stream {} (context {})", out.address, label,
              static_cast<const void*>(s), static_cast<const void*>(ctx));
    poison(ctx, CUDA_ERROR_ILLEGAL_ADDRESS);
  } else if (out.result != CUDA_SUCCESS) {
    log_error("{} failed on stream {}: error {}", label, static_cast<const void*>(s), static_cast<int>(out.result));
    poison(ctx, out.result);
  }
}

bool runnable(Stream* s) {
  if (s->queue.empty()) return false;
  if (!config().lazy || s->stopping) return true;
  uint64_t front_seq = s->completed.load() + 1;
  return front_seq <= s->flush_target || s->queue.size() > config().lazy_queue_limit;
}

void worker_loop(Stream* s) {
  std::unique_lock lock(s->mu);
  for (;;) {
    s->cv_work.wait(lock, [s] { return runnable(s) || (s->stopping && s->queue.empty()); });
    if (s->queue.empty()) return;  // stopping
    WorkItem item = std::move(s->queue.front());
    s->queue.pop_front();
    lock.unlock();
    execute(s, item);
    item = WorkItem{};  // release captured state outside the lock
    lock.lock();
    s->completed.fetch_add(1);
    s->cv_done.notify_all();
  }
}

}  // namespace

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

std::shared_ptr<Stream> create_stream(Context* ctx, unsigned flags, int priority, bool legacy, bool per_thread) {
  auto s = std::make_shared<Stream>();
  s->ctx = ctx;
  s->flags = flags;
  s->priority = priority;
  s->legacy = legacy;
  s->per_thread = per_thread;
  s->id = g_next_stream_id.fetch_add(1);
  s->worker = std::thread(worker_loop, s.get());
  return s;
}

void destroy_stream(Stream* s) {
  {
    std::lock_guard lock(s->mu);
    s->stopping = true;
    s->cv_work.notify_all();
  }
  if (s->worker.joinable()) s->worker.join();
  s->magic = 0;
}

bool reached(Stream* s, uint64_t seq) { return s->completed.load() >= seq; }

void kick(Stream* s, uint64_t seq) {
  if (!config().lazy || reached(s, seq)) return;
  std::lock_guard lock(s->mu);
  if (seq > s->flush_target) {
    s->flush_target = seq;
    s->cv_work.notify_all();
  }
}

void wait_until(Stream* s, uint64_t seq) {
  if (reached(s, seq)) return;
  std::unique_lock lock(s->mu);
  if (config().lazy && seq > s->flush_target) {
    s->flush_target = seq;
    s->cv_work.notify_all();
  }
  s->cv_done.wait(lock, [&] { return s->completed.load() >= seq; });
}

void drain(Stream* s) { wait_until(s, s->enqueued.load()); }

namespace {

// A control item that blocks the worker until every (stream, seq) target completed.
WorkItem make_wait_item(std::vector<std::pair<std::shared_ptr<Stream>, uint64_t>> targets) {
  WorkItem w;
  w.kind = ItemKind::control;
  w.label = "stream wait";
  w.body = [targets = std::move(targets)]() {
    for (auto& [stream, seq] : targets) wait_until(stream.get(), seq);
    return CUDA_SUCCESS;
  };
  return w;
}

uint64_t push(Stream* s, std::vector<WorkItem>& items) {
  std::lock_guard lock(s->mu);
  for (auto& it : items) s->queue.push_back(std::move(it));
  uint64_t seq = s->enqueued.fetch_add(items.size()) + items.size();
  if (!config().lazy || s->queue.size() > config().lazy_queue_limit) s->cv_work.notify_one();
  return seq;
}

}  // namespace

uint64_t submit(Stream* s, WorkItem item) {
  {
    std::unique_lock lock(s->mu);
    if (s->capture) {
      std::shared_ptr<Capture> cap = s->capture;
      lock.unlock();
      std::lock_guard glock(cap->graph->mu);
      cap->graph->items.push_back(std::move(item));
      return 0;
    }
  }
  // Implicit synchronisation with the legacy default stream: work on the NULL
  // stream waits for all blocking streams, and work on a blocking stream waits
  // for the NULL stream's earlier work.
  std::vector<std::pair<std::shared_ptr<Stream>, uint64_t>> targets;
  Context* ctx = s->ctx;
  if (s->legacy) {
    std::lock_guard lock(ctx->mu);
    for (auto& other : ctx->streams) {
      if (!other->blocking()) continue;
      uint64_t last = other->enqueued.load();
      if (!reached(other.get(), last)) targets.emplace_back(other, last);
    }
  } else if (s->blocking() && ctx->legacy_stream) {
    Stream* l = ctx->legacy_stream.get();
    uint64_t last = l->enqueued.load();
    if (!reached(l, last)) targets.emplace_back(ctx->legacy_stream, last);
  }
  std::vector<WorkItem> items;
  items.reserve(2);
  if (!targets.empty()) items.push_back(make_wait_item(std::move(targets)));
  items.push_back(std::move(item));
  return push(s, items);
}

}  // namespace nzsim
