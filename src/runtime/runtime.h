// runtime.h: the policy behind hooks.h: which allocations are served by VMM,
// which ranges are tagged and compressed, when they are staged for a launch or
// copy, and when staged ranges are evicted again.
//
// Locking: the hot path (a launch touching nothing tracked) reads only atomics
// and the lock-free RangeMap snapshot. Everything that changes state takes the
// one runtime mutex; GPU work it enqueues never waits for the host, and the
// host waits only on the runtime's own internal stream (compression, hashing
// at eviction) or, under a hard budget, on the event after a range's last use.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "gpu/device_codec.h"
#include "runtime/compressed_store.h"
#include "runtime/config.h"
#include "runtime/driver_objects.h"
#include "runtime/graph_pins.h"
#include "runtime/handoff.h"
#include "runtime/hooks.h"
#include "runtime/launch_scan.h"
#include "runtime/prefetch.h"
#include "runtime/range_map.h"
#include "runtime/staging_pool.h"
#include "runtime/stats.h"
#include "runtime/tag_set.h"
#include "runtime/tensor_maps.h"
#include "runtime/trace.h"
#include "runtime/unit.h"
#include "runtime/unserved_memory.h"
#include "runtime/use_order.h"
#include "runtime/vmm_allocator.h"
#include "util/fd_exchange.h"

namespace nz::rt {

class Runtime {
 public:
  static void initialise(const RuntimeDriverApi& real) noexcept;
  static bool is_active() noexcept { return active_.load(std::memory_order_relaxed); }
  static Runtime& get() noexcept { return *instance_; }
  // For the C API: the instance when active, else null.
  static Runtime* instance_if_active() noexcept { return is_active() ? instance_ : nullptr; }
  // Whether this process allocated through neuzip or passed memory through:
  // a helper of the program that only asked for the device did neither, and
  // gives no exit report and no trace.
  bool served_anything() const noexcept;
  std::string process_members() const;  // ,"pid":P[,"rank":R] for the trace's counters lines

  CUresult mem_alloc(CUdeviceptr* dptr, size_t bytes, bool* handled) noexcept;
  CUresult mem_free(CUdeviceptr dptr, bool* handled) noexcept;
  // cuIpcGetMemHandle (ipc_export.cpp). Sets *handled for memory it serves.
  CUresult ipc_export(CUipcMemHandle* handle, CUdeviceptr p, bool* handled) noexcept;
  // cuMemGetHandleForAddressRange (dmabuf_export.cpp): before the driver
  // exports [p, p + bytes) as a dma-buf. Sets *handled for memory it serves.
  CUresult before_dmabuf_export(CUdeviceptr p, size_t bytes, bool* handled) noexcept;
  void on_foreign_free(CUdeviceptr dptr) noexcept;
  // Memory forwarded untouched (unserved_memory.h): counted, and said once
  // where it dominates.
  void on_unserved_alloc(UnservedKind kind, uint64_t key, size_t bytes) noexcept;
  void on_unserved_release(UnservedKind kind, uint64_t key) noexcept;
  void on_unserved_retain(UnservedKind kind, uint64_t key) noexcept { unserved_.retain(kind, key); }
  CUresult before_launch(const LaunchDesc& d) noexcept;
  void after_launch(const LaunchDesc& d, CUresult result) noexcept;
  CUresult before_transfer(const TransferDesc& d) noexcept;
  void after_transfer(const TransferDesc& d, CUresult result) noexcept;
  // After a stream memory wait the program queued on `stream` (patient_wait.cpp).
  void note_stream_wait(CUstream stream) noexcept;
  // After the program's cuEventRecord / cuStreamWaitEvent (patient_wait.cpp):
  // an event recorded on a marked stream is behind its wait, and a stream made
  // to wait for such an event is marked too. One relaxed load while no stream
  // is marked.
  void after_event_record(CUevent event, CUstream stream, bool per_thread) noexcept;
  void after_stream_wait_event(CUstream stream, bool per_thread, CUevent event) noexcept;
  void after_external_wait(CUstream stream) noexcept;  // external_work.cpp
  bool external_hooks_enabled() const noexcept { return config_.nccl_hooks; }
  CUresult before_external(const TransferDesc& d) noexcept;
  void after_external(const TransferDesc& d, ExternalOutcome outcome) noexcept;
  void on_group_start() noexcept;
  void on_group_end(ExternalOutcome outcome) noexcept;
  void pin_external(PinOwner kind, uintptr_t owner, CUdeviceptr ptr, size_t bytes, const char* api) noexcept;
  void unpin_external(PinOwner kind, uintptr_t owner) noexcept;
  // Module globals (module_globals.cpp).
  void on_module_global(const void* module, CUdeviceptr begin, size_t bytes) noexcept;
  void on_module_unload(const void* module) noexcept;
  // Graph capture, instantiation and replay (graph_hooks.cpp).
  void on_capture_begin(CUstream stream) noexcept;
  void on_capture_end(CUstream stream, CUgraph graph) noexcept;
  void on_graph_instantiate(CUgraphExec exec, CUgraph graph) noexcept;
  void on_graph_exec_destroy(CUgraphExec exec) noexcept;
  void on_graph_destroy(CUgraph graph) noexcept;
  CUresult before_graph_launch(CUgraphExec exec, CUstream stream) noexcept;
  void after_graph_launch(CUgraphExec exec, CUstream stream, bool per_thread) noexcept;
  CUresult on_graph_contents(CUgraph graph, const GraphContents& c) noexcept;
  CUresult on_exec_node_params(CUgraphExec exec, CUgraphNode node, const GraphContents& c) noexcept;
  void note_graph_reads(CUgraph graph, CUgraphExec exec, const GraphContents& c) noexcept;
  void on_tensor_map(const CUtensorMap* map, CUdeviceptr global_address, size_t bytes) noexcept;
  void on_tensor_map_replaced(const void* before, const CUtensorMap* map, CUdeviceptr global_address) noexcept;
  bool on_out_of_memory(size_t bytes_wanted) noexcept;
  bool address_range(CUdeviceptr p, CUdeviceptr* base, size_t* size) noexcept;
  bool pointer_attribute(void* data, CUpointer_attribute attribute, CUdeviceptr p, CUresult* result) noexcept;
  bool set_pointer_attribute(const void* value, CUpointer_attribute attribute, CUdeviceptr p, CUresult* result) noexcept;
  bool is_managed(CUdeviceptr p) noexcept;
  CUresult mem_free_async(CUdeviceptr dptr, CUstream stream, bool per_thread, bool* handled) noexcept;
  void on_module_unload() noexcept;
  void on_context_destroy(CUcontext ctx, CUdevice device, bool primary_reset) noexcept;
  // cuCtxEnablePeerAccess(peer) succeeded in the calling thread's context
  // (peer_access.cpp).
  void on_peer_access_enabled(CUcontext peer) noexcept;
  bool peer_copy_contexts(CUdeviceptr dst, CUdeviceptr src, CUcontext* dctx, CUcontext* sctx) noexcept;
  bool enter_served_context(CUdeviceptr a, CUdeviceptr b, CUstream stream, CUcontext* restore) noexcept;
  bool from_other_device(CUcontext* current, CUdevice* device) const noexcept;
  void drop_uses_in(CUcontext gone) noexcept;  // mutex_ held
  void on_sticky_error(CUresult result, const char* api) noexcept;
  void adjust_free_memory(size_t* free, size_t total) noexcept;

  int tag(CUdeviceptr ptr, size_t bytes, int dtype) noexcept;
  int untag(CUdeviceptr ptr, size_t bytes) noexcept;
  void fill_stats(nz_runtime_stats& out) noexcept;
  // Compresses every pending range whose producers completed (tests call this
  // to reach a known state; hooks call it opportunistically).
  void compress_pending(bool wait_for_producers) noexcept;
  // Compresses what was loaded (the first iteration's ranges, never refilled):
  // before the program reads free memory.
  void compress_loaded() noexcept;
  void report_at_exit() noexcept;
  std::string memory_breakdown() noexcept;  // lock held
  void emit_counters() noexcept;
  // Evicts every staged range no queued work still uses (waiting for its last
  // use); returns the bytes freed. Tests use it to force recompression.
  size_t evict_idle() noexcept;
  // For tests: the device address and size of the store holding the range at `p`.
  bool debug_store_of(CUdeviceptr p, CUdeviceptr& store, size_t& bytes) noexcept;
  // For tests: units handed over so far, and of those found changed (handoff.h).
  uint64_t debug_handoffs() const noexcept { return stats_.handoffs.get(); }
  uint64_t debug_rescues() const noexcept { return stats_.rescues.get(); }
  uint64_t debug_reencodes() const noexcept { return stats_.reencodes.get(); }
  uint64_t debug_stores_restored() const noexcept { return stats_.stores_restored.get(); }
  uint64_t debug_decodes_from_host_copies() const noexcept { return stats_.decodes_from_host_copies.get(); }
  uint64_t debug_stores_offloaded() const noexcept { return stats_.stores_offloaded.get(); }
  uint64_t debug_stores_left_in_host() const noexcept { return stats_.stores_left_in_host.get(); }
  uint64_t debug_parked() const noexcept { return stats_.parked.get(); }
  size_t debug_parked_bytes_held() noexcept {
    std::lock_guard lock(mutex_);
    return parked_.in_use();
  }
  // Page-locked memory of store copies (NEUZIP_KEEP_STORES_MB) in use.
  size_t debug_kept_store_bytes() noexcept {
    std::lock_guard lock(mutex_);
    return kept_stores_.in_use();
  }
  uint64_t debug_encode_handoffs() const noexcept { return stats_.encode_handoffs.get(); }
  uint64_t debug_prefetch_hits() const noexcept { return stats_.prefetch_hits.get(); }
  uint64_t debug_encode_rescues() const noexcept { return stats_.encode_rescues.get(); }
  uint64_t debug_encode_handoffs_held() const noexcept { return stats_.encode_handoffs_held.get(); }
  uint64_t debug_evicted_ahead() const noexcept { return stats_.evicted_ahead.get(); }
  uint64_t debug_encoded_ahead() const noexcept { return stats_.encoded_ahead.get(); }
  uint64_t debug_evictions_deferred() const noexcept { return stats_.evictions_deferred.get(); }
  // For tests: runs f holding the runtime lock (as a staging does).
  template <class F>
  void debug_run_locked(F&& f) {
    std::lock_guard lock(mutex_);
    f();
  }
  // For tests: the state and pin count of the unit holding `p`.
  bool debug_unit_of(CUdeviceptr p, UnitState& state, int& pins) noexcept;

 private:
  explicit Runtime(const Config& config);

  struct Allocation {
    CUdeviceptr base = 0;
    size_t bytes = 0;  // reserved (page multiple)
    size_t requested = 0;  // what the program asked for (pointer queries answer this)
    uint64_t buffer_id = 0;  // CU_POINTER_ATTRIBUTE_BUFFER_ID
    std::vector<CUmemGenericAllocationHandle> pages;  // per page; 0 once released
    TagSet tags;
    // What nz_untag took out of the tags: no weight any more, but still part
    // of the tensors the kernels read across (republish clusters with it).
    TagSet untagged;
    // What nz_tag declared (tensors); with NEUZIP_TAG_EXTENTS=1 a tag that is
    // exactly one of them reaches only its own units (republish).
    TagSet declared;
    std::map<CUdeviceptr, std::shared_ptr<Unit>> units;  // by begin
    // Staging handles that became the permanent backing of a range (untagged
    // or changed at every use): begin -> (bytes, handle).
    std::map<CUdeviceptr, std::pair<size_t, StagingPieces>> permanent;
    std::vector<SharedEvent> recent_fills;  // events after tagging copies, not yet seen complete
    size_t largest_extent = 0;  // bytes of its tracked units: what one call touching it may need staged
    // Shared with other processes (cuIpcGetMemHandle; ipc_export.cpp): one
    // exportable handle backs it whole from then on, and it is never tagged
    // or compressed again (other processes read it behind our back).
    struct Shared {
      UniquePhysicalMemory backing;
      fdx::Key key{};
      bool mapped = false;   // at the allocation's address
      bool offered = false;  // its descriptor offered (fd_exchange): the handle can be opened
    };
    std::unique_ptr<Shared> shared;
    // Shared with other processes (ipc_export.cpp) or exported as a dma-buf
    // (dmabuf_export.cpp), or on its way there: never tagged again.
    bool leaving = false;
    // Exported as a dma-buf: the device behind it may still use its pages
    // after cuMemFree (a registration not undone yet), so staging pages that
    // became its backing are never reused (dmabuf_kept_).
    bool dmabuf = false;
  };

  bool ensure_setup() noexcept;  // lock held
  void say_pytorch_conf() noexcept;  // at initialise
  void say_unserved(UnservedKind kind, uint64_t bytes, const char* env_name) noexcept;
  void keep_primary_context(CUcontext ctx, CUdevice device) noexcept;
  std::unique_ptr<Allocation> detach_allocation(CUdeviceptr base) noexcept;  // lock held
  // Lock held, our context current, relaxed capture mode: every range of `a`
  // made resident (decodes queued on the runtime's streams) and never tagged
  // again; its pages stay put until it is freed (dmabuf_export.cpp).
  // CUDA_ERROR_OUT_OF_MEMORY if a range could not be restored.
  CUresult leave_compression_locked(Allocation& a) noexcept;
  // ipc_export.cpp, lock held
  CUresult prepare_share_locked(Allocation& a) noexcept;
  CUresult move_to_exportable_locked(Allocation& a) noexcept;
  CUresult offer_shared_locked(Allocation& a) noexcept;
  void release_allocation(Allocation& a) noexcept;                           // lock held
  Allocation* allocation_containing(CUdeviceptr p) noexcept;
  void tag_locked(Allocation& a, CUdeviceptr begin, CUdeviceptr end, int dtype, SharedEvent filled) noexcept;
  void replan(Allocation& a, AddressWindow window, bool refill) noexcept;
  void recode_declared(Allocation& a) noexcept;
  void retire(Allocation& a, const std::shared_ptr<Unit>& u) noexcept;
  void make_resident(Allocation& a, const std::shared_ptr<Unit>& u) noexcept;
  void untrack(Allocation& a, const std::shared_ptr<Unit>& u) noexcept;
  void republish(Allocation& a) noexcept;
  static std::vector<std::pair<CUdeviceptr, CUdeviceptr>> reach_spans(const Allocation& a);  // may throw
  void collect_units(const TagExtent& extent);  // may throw (allocation)
  void collect_overlapping(const RangeMap<TagExtent>::Snapshot& snapshot, CUdeviceptr begin,
                           CUdeviceptr end);  // may throw (allocation)
  void compress_unit(Allocation& a, const std::shared_ptr<Unit>& u) noexcept;
  void tag_if_state(Allocation& a) noexcept;  // lock held; NEUZIP_COMPRESS=optimizer (idle_buffers.cpp)
  template <typename Visit>
  CUresult hold_touched(CUstream stream, bool per_thread_stream, const char* what, Visit&& visit) noexcept;
  // `pins_to`: the capture record a capturing call's units are pinned under
  // (default: the stream's own; graph_nodes.cpp passes a record of its own).
  CUresult prepare(std::vector<std::shared_ptr<Unit>>& touched, CUstream stream, bool capturing,
                   const char* what, CUstream pins_to = nullptr) noexcept;
  void collect_launch(const LaunchDesc& d, const RangeMap<TagExtent>::Snapshot& snapshot);  // may throw
  std::vector<std::shared_ptr<Unit>> units_touched_by(const GraphContents& c);  // may throw
  // Stages what `c` touches and pins it under `graph` or `exec` (graph_nodes.cpp).
  CUresult pin_graph_contents(const GraphContents& c, CUgraph graph, CUgraphExec exec, CUgraphNode node,
                              const char* what) noexcept;
  // Staging itself (staging_runs.cpp).
  void wait_for_decode(Unit& u, CUstream stream, bool capturing) noexcept;
  // Maps and decodes runs of compressed units (each VA-contiguous, in address
  // order) on `stream`: per run one handle, one cuMemMap and one
  // cuMemSetAccess; one decode launch for all of them (per 64 units).
  // `may_wait` false (a guess): short of memory, no waiting (acquire_runs).
  CUresult stage_runs(const std::vector<std::vector<std::shared_ptr<Unit>>>& runs, CUstream stream,
                      bool capturing, bool may_wait = true) noexcept;
  CUresult stage(const std::shared_ptr<Unit>& u, CUstream stream, bool capturing) noexcept;
  // stage_runs in its three phases (the look-ahead stager drops the lock for the second).
  // `may_wait`: short of memory, evict staged ranges waiting for their last
  // uses, and take the last resorts (held handovers, staged ranges' stores,
  // the encode reserve), which wait too.
  CUresult acquire_runs(const std::vector<std::vector<std::shared_ptr<Unit>>>& runs,
                        std::vector<std::shared_ptr<StagedRun>>& out, bool may_wait = true) noexcept;
  CUresult map_and_decode(const std::vector<std::shared_ptr<StagedRun>>& runs, CUstream stream,
                          uint64_t& launches) noexcept;
  void finish_runs(const std::vector<std::shared_ptr<StagedRun>>& runs, const SharedEvent& ready,
                   CUstream decode_stream, bool capturing, TraceClock::time_point start) noexcept;
  bool reclaim_stream_ordered_frees() noexcept;  // lock held
  void release_runs(std::vector<std::shared_ptr<StagedRun>>& runs, bool mapped) noexcept;
  // The launching thread's guesses (guesses.cpp). Lock held.
  // `units`: what to stage with `next` (default: the compressed units of its
  // tag). Returns true when the guess was not staged for want of room, or
  // because its ranges are in use or handed over: worth asking again at the
  // next calls (not when memory is short or staging failed).
  bool start_prefetch(const std::shared_ptr<Unit>& next,
                      std::vector<std::shared_ptr<Unit>>* units = nullptr) noexcept;
  bool guess_next_call() noexcept;  // false: the uses of the last iteration are not known
  bool guessable(const Unit& u) const noexcept;
  std::vector<std::shared_ptr<Unit>> compressed_tag_of(const std::shared_ptr<Unit>& u);  // may throw
  std::shared_ptr<Unit> first_compressed_guess(const Unit& from) noexcept;
  // The look-ahead stager (lookahead.cpp). Lock held unless stated.
  size_t lookahead_window() const noexcept;
  void request_lookahead(const std::shared_ptr<Unit>& from) noexcept;
  void stager_main() noexcept;  // the thread; takes the lock itself
  void stage_ahead(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Unit>& from) noexcept;
  void wait_for_stager_locked() noexcept;
  std::vector<SharedEvent> lru_pending_uses(std::shared_ptr<Unit>* victim) noexcept;
 public:
  void stop_stager() noexcept;  // at exit; never takes the lock (exit must not hang)
 private:
  // How one unit of a run about to be unmapped came out (see settle()).
  enum class Settled { kStored, kReleased, kRetire, kNoMemory };
  Settled settle(const std::shared_ptr<Unit>& u, bool may_release) noexcept;
  // The change test's outcome for a staged unit about to be unmapped (lock held).
  enum class Verdict { kDrop, kReencode, kRecompress, kRetire };
  Verdict judge_eviction(Unit& u, uint64_t hash) noexcept;
  void drop_store(Unit& u) noexcept;  // its store no longer describes anything worth keeping
  void give_store_up(Unit& u) noexcept;
  static size_t encode_size_hint(const Unit& u, bool reencode) noexcept;
  void adopt_encoding(Unit& u, StoredRange&& fresh, bool reencode, TraceClock::time_point start) noexcept;
  void unmap_settled(const std::shared_ptr<StagedRun>& run, bool released) noexcept;
  // The look-ahead stager's evictions (eviction_ahead.cpp): runs whose uses
  // completed are settled with the lock dropped until `incoming` more bytes
  // fit a fixed budget. Whether they fit.
  bool evict_ahead(std::unique_lock<std::mutex>& lock, size_t incoming) noexcept;
  bool settle_unlocked(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Unit>& victim) noexcept;
  // Holds the staged units of `run` for settling (in_flight, incoming); release_settling ends that.
  std::vector<std::shared_ptr<Unit>> hold_for_settling(const std::shared_ptr<StagedRun>& run) noexcept;
  void release_settling(const std::vector<std::shared_ptr<Unit>>& held) noexcept;
  // Settles `run` (its units held) with the lock dropped: waits for its
  // queued uses, hashes, encodes; then adopts and unmaps. Whether it went.
  bool settle_held(std::unique_lock<std::mutex>& lock, const std::shared_ptr<StagedRun>& run,
                   const std::vector<std::shared_ptr<Unit>>& held) noexcept;
  // A launching thread's eviction handed to the stager (see eviction_ahead.cpp).
  bool defer_eviction(const std::shared_ptr<Unit>& victim) noexcept;
  void settle_queued(std::unique_lock<std::mutex>& lock) noexcept;  // the stager: every queued run
  void drop_settle_queue_locked() noexcept;  // no stager to settle them: the runs stay staged
  // Evicts the run holding `u` (every unit of it); false if it stays staged.
  bool evict(Allocation& a, const std::shared_ptr<Unit>& u) noexcept;
  bool park(Unit& u) noexcept;
  void keep_store_copy(Unit& u, CUstream s) noexcept;
  bool copy_store_to_host(Unit& u, CUstream s) noexcept;
  bool host_copy_ready(Unit& u) noexcept;
  bool restore_store_copy(Unit& u) noexcept;
  // Stores of units an eviction found unchanged, brought back from their
  // host copies once the run's pages went back to the driver (evict's
  // callers, after trimming the pool): the pages and the stores never
  // coexist (issue 13's peaks).
  void restore_due_stores() noexcept;
  // A staging past a fixed budget: stores with a host copy go before it and
  // their ranges are decoded from the copy (see store_copies.cpp).
  void decode_from_host_copies(const std::vector<std::shared_ptr<Unit>>& units) noexcept;
  bool offload_stores(size_t need) noexcept;
  bool give_up_staged_stores() noexcept;
  bool give_up_reserve() noexcept;
  bool run_evictable(const Unit& u, bool may_wait) const noexcept;
  std::shared_ptr<Unit> lru_evictable(bool may_wait) const noexcept;
  // Eviction order: the range needed again last first (reuse_forecast.h),
  // least recently used among equals and while no forecast is made.
  // Whether a guess needed in `only_after` calls may evict `u` (0: any).
  bool evictable_for_guess(const Unit& u, uint64_t only_after) const noexcept;
  bool evict_before(const Unit& a, const Unit& b) const noexcept;
  // Handovers (handoff.h). Lock held.
  bool handoff_eligible(const Unit& u) const noexcept;
  bool hand_over(const std::shared_ptr<Unit>& u) noexcept;  // false: nothing changed, evict otherwise
  // Its guard enqueued; `hold`: the run's pages stay mapped with it until settled.
  bool give_over(const std::shared_ptr<Handoff>& h, const std::shared_ptr<StagedRun>& run,
                 const std::vector<std::shared_ptr<Unit>>& units, bool hold = false) noexcept;
  // Encode handovers (handoff_encode.cpp): rewritten runs encoded on the device.
  bool encode_handoff_eligible(const Unit& u) const noexcept;
  // As hand_over; `hold`: the pages stay with the handover until it is
  // settled (exact handles of another size than the incoming run's).
  bool hand_over_encoding(const std::shared_ptr<Unit>& u, bool hold = false) noexcept;
  bool ensure_guard_workspace(size_t bytes) noexcept;
  // Device memory the host handed to work it does not wait for, and its bound (eviction.cpp).
  size_t device_work_allowance() const noexcept;
  size_t unwaited_bytes() noexcept;
  void settle_encoded(Unit& u, Handoff& h, size_t i) noexcept;
  bool settle_handoff(Handoff& h, bool wait) noexcept;     // false: not done and !wait
  void reap_handoffs(bool wait) noexcept;                  // settles the completed ones (all if `wait`)
  bool settle_handoff_of(Unit& u) noexcept;  // waits for its handover, if any: whether it had one
  void settle_handoffs_of(const std::vector<std::shared_ptr<Unit>>& units) noexcept;  // before mapping them
  void settle_handoffs_of(Allocation& a) noexcept;         // before its units change or its VA goes
  SharedEvent handoff_fence() noexcept;  // what pages given back by handovers are still waiting for
  // patient_wait.cpp: host waits for queued uses, at most NEUZIP_WAIT_PATIENCE_MS,
  // and the streams known to wait for later work (blocked_streams_).
  // Lock held; false: its stream is blocked (marked now or before), not waited for.
  bool wait_run_uses(const std::shared_ptr<Unit>& u) noexcept;
  // Polls until every event completed (true) or the patience ran out.
  bool await_events(const std::vector<SharedEvent>& events, TraceClock::time_point start) const noexcept;
  // Lock held: the streams of the units' unfinished uses marked blocked until those complete.
  void mark_stalled_locked(const std::vector<std::shared_ptr<Unit>>& units) noexcept;
  // marks_mu_ and the lock held: marks the streams of the unit's unfinished uses (true if any).
  bool mark_unit_uses(const Unit& v) noexcept;
  // marks_mu_ held: whether the unit has an unfinished use on a marked stream.
  bool behind_marks(const Unit& u) const noexcept;
  // Lock held: a host wait gave up (counted, traced, said once).
  void note_stall_locked(CUdeviceptr begin, size_t bytes) noexcept;
  // Lock held: the unit's decode completed, or completes within the patience;
  // false at once when it is queued behind a marked stream (see patient_wait.cpp).
  bool await_decode(Unit& u) noexcept;
  // marks_mu_ held: `stream` marked until an event recorded on it now completes.
  void mark_stream(CUstream stream) noexcept;
  // marks_mu_ held: drops the marks that ended; false (and nothing marked) if none is left.
  bool prune_marks() noexcept;
  static std::vector<std::shared_ptr<Unit>> run_members(const std::shared_ptr<Unit>& u);  // may throw
  // A unit (of u's run) has an unfinished use on a stream marked blocked: neither
  // waited for nor handed over (a handover's fence would make the device wait for it).
  bool run_blocked(const Unit& u) const noexcept;
  bool behind_stall(const Unit& u) const noexcept;  // the same for one unit

  // After stage(). `alone`: the unit is its run's only one (see eviction.cpp).
  void release_store_if_pressed(Unit& u, bool alone) noexcept;  // lock held
  // Evicts LRU staged units until `incoming` more bytes fit the budget,
  // waiting for their last uses only if `may_wait` (and the budget is fixed).
  // `only_after` (a guess staged ahead, calls until its use; 0: no limit):
  // evicts only ranges needed again later than that. Returns whether they fit.
  bool enforce_budget(size_t incoming, bool may_wait, uint64_t only_after = 0) noexcept;
  // Evicts every idle staged run; `trim`: also releases the cached handles.
  size_t evict_all(bool wait, bool trim = true) noexcept;
  // Out of device memory for `bytes_wanted`: evicts every idle staged run,
  // settles the stager's evictions, reclaims stores freed in stream order,
  // then gives up staged ranges' stores or the encode reserve. Returns about
  // how many bytes came back (`bytes_wanted` if the epoch moved past
  // `epoch_before`: memory was freed meanwhile). Lock held.
  size_t reclaim_device_memory(size_t bytes_wanted, uint64_t epoch_before) noexcept;
  void finish_use(CUstream stream, CUresult result) noexcept;
  // The units the last before_launch/before_transfer of this thread holds,
  // taken out of the thread's record (after_* will not release them):
  // NCCL calls keep them across the driver calls NCCL makes, and a group's
  // collectives until the group's end.
  std::vector<std::shared_ptr<Unit>> take_touched(bool& capturing) noexcept;
  // Ends the holds on `units`: one event after their use on `stream` (none
  // when it was capturing), in_flight released. Takes the mutex.
  void release_held(std::vector<std::shared_ptr<Unit>>& units, CUstream stream, bool capturing) noexcept;
  // Registrations (pin_external) covering [begin, end): a unit made there is
  // pinned once per registration. Lock held.
  int external_pins_over(CUdeviceptr begin, CUdeviceptr end) const noexcept;
  void pin_unit_for_library(Allocation& a, const std::shared_ptr<Unit>& u) noexcept;  // lock held
  void note_pointer_array(const TransferDesc& d) noexcept;  // lock held
  // trailing_uses.cpp, lock held: a tracked call's units stay in use on its
  // stream until the calling thread's next tracked call there
  // (note_tracked_call_locked); an eviction of such a unit first records an
  // event on that stream (seal_open_use) and waits for it as for a use, and
  // other threads leave it alone for a while (held_elsewhere).
  struct OpenCalls {
    uint64_t seq = 0;                        // tracked calls by the thread on the stream so far
    std::vector<std::weak_ptr<Unit>> units;  // the last one's
    std::shared_ptr<LaunchingThread> owner;  // the thread
  };
  struct OpenKey {
    CUstream stream;
    uint64_t thread;
    bool operator==(const OpenKey&) const = default;
  };
  struct OpenKeyHash {
    size_t operator()(const OpenKey& k) const noexcept {
      return std::hash<const void*>()(k.stream) ^ (k.thread * 0x9e3779b97f4a7c15ull);
    }
  };
  std::unordered_map<OpenKey, OpenCalls, OpenKeyHash> open_calls_;
  uint64_t open_calls_epoch_ = 0;  // stream_destroy_epoch() when open_calls_ was last valid
  size_t open_calls_sweep_at_ = 64;  // sweep_exited_threads_locked when open_calls_ grows past it
  void sweep_exited_threads_locked() noexcept;
  void note_tracked_call_locked(const std::vector<std::shared_ptr<Unit>>& units, CUstream stream,
                                const SharedEvent& done, bool own_legacy) noexcept;
  bool use_open(const Unit::OpenUse& o) const noexcept;
  // Open, by another thread, recently (kOpenHoldNs): that thread may still
  // queue the launch that reads through the pointers; not evictable by this one.
  bool held_elsewhere(const Unit& u) const noexcept;
  // Open by this thread's last call on some stream, recently (kOpenHoldNs).
  bool opened_here_recently(const Unit& u) const noexcept;
  bool trailing_window(const Unit::OpenUse& o) const noexcept;  // open, and launched after since
  bool trailing_busy(const Unit& u) const noexcept;    // one such, and its stream still has work queued
  // This thread's launch was queued (after_launch): what other threads read
  // of it (trailing_uses.cpp).
  void note_launch_queued() noexcept;
  void seal_open_use(Unit& u) noexcept;
  // Lock held (external_work.cpp): the bodies of pin_external / unpin_external.
  void pin_external_locked(PinOwner kind, uintptr_t owner, CUdeviceptr ptr, size_t bytes, const char* api) noexcept;
  void unpin_external_locked(PinOwner kind, uintptr_t owner, const char* why) noexcept;
  // module_globals.cpp, lock held: the global a copy into [ptr, ptr + bytes)
  // writes (nullptr if none); pins for the allocations its words point into;
  // pins into an allocation being freed.
  struct ModuleGlobal;
  ModuleGlobal* module_global_at(CUdeviceptr ptr, size_t bytes) noexcept;
  void pin_global_targets(ModuleGlobal& g, const std::vector<CUdeviceptr>& targets) noexcept;
  void drop_global_pins_into(const Allocation& a) noexcept;
  void forget_module_globals(const void* module) noexcept;  // takes the lock
  // Whether a unit filled now may be compressed at once (see Config::long_lived_uses). Lock held.
  bool compress_when_filled() const noexcept;
  void compress_pending_locked(bool wait_for_producers) noexcept;
  void make_pending(const std::shared_ptr<Unit>& u) noexcept;  // lock held
  void note_iteration_use(const std::shared_ptr<Unit>& u) noexcept;  // lock held
  void note_unpinned(const GraphPins::Units& unpinned, const char* why) noexcept;  // lock held
  void check_status_word() noexcept;
  CUstream resolve(CUstream s, bool per_thread) const noexcept;
  bool memory_plentiful() noexcept;
  void reserve_for_pressure() noexcept;  // lock held
  // Before `bytes` more are allocated: if that would leave less free memory
  // than staging the largest weight takes, evicts idle staged ranges first.
  // Never refuses the allocation. Lock held.
  void make_staging_room(size_t bytes) noexcept;
  void sample_device_used() noexcept;
  // Bytes a launch may need staged at once (see adjust_free_memory). Lock held.
  size_t staging_reserve() const noexcept;
  void update_saved() noexcept;
  void emit(std::string_view event, uint64_t ptr, uint64_t bytes, std::string_view extra = {}) noexcept;
  // emit() with "ns": the host wall time since `start` of the operation the
  // event reports (what the runtime waited for; device work it did not wait
  // for is not in it).
  void emit_timed(std::string_view event, uint64_t ptr, uint64_t bytes, TraceClock::time_point start,
                  std::string_view extra = {}) noexcept;

  static inline std::atomic<bool> active_{false};
  static inline Runtime* instance_ = nullptr;

  Config config_;
  Stats stats_;
  UnservedMemory unserved_;
  std::atomic<bool> unserved_said_[kUnservedKinds] = {};
  std::atomic<uint64_t> device_total_{0};  // cuMemGetInfo's total, once read (on_unserved_alloc)
  Trace trace_;
  std::mutex mutex_;
  bool setup_tried_ = false;
  // Set with the first set-up attempt, never cleared: a process that never
  // allocated through neuzip (a compile worker that asked for the device,
  // a helper of the program) has no exit report to give.
  std::atomic<bool> ever_set_up_{false};
  bool setup_ok_ = false;
  std::mutex share_mu_;  // one cuIpcGetMemHandle of served memory at a time (taken before mutex_)
  CUcontext context_ = nullptr;
  // context_ once set up, for the copy hooks' lock-free check (from_other_device).
  std::atomic<CUcontext> served_context_{nullptr};
  bool serves_current_device() noexcept;  // mutex_ held, before setup (Config::device)
  bool other_device_said_ = false;
  // Peer access enabled before setup: (peer context, accessing device).
  std::vector<std::pair<CUcontext, CUdevice>> pending_peers_;
  void grant_pending_peers() noexcept;  // mutex_ held
  void grant_peer(CUcontext peer, CUdevice accessor) noexcept;  // mutex_ held
  VmmAllocator vmm_;
  StagingPool pool_{vmm_};
  std::unique_ptr<gpu::DeviceCodec> codec_;
  UniqueStream internal_;
  UniqueStream prefetch_stream_;  // decodes ahead of use
  UniqueStream guard_stream_;     // the change tests of handovers (handoff.h)
  UniqueStream release_stream_;   // frees stores given up while staged, after their decode
  UniqueStream return_stream_;    // frees stores nothing reads any more, then is synchronized (free_store_now)
  RescuePool rescue_;
  // Host memory for ranges evicted when the device has no room to encode
  // them (park): restored, as rescued ones are, at their next staging.
  RescuePool parked_;
  // Copies of stores given up while staged (keep_store_copy).
  RescuePool kept_stores_;
  // A staging needed the encode reserve's memory (give_up_reserve): it is
  // not taken again; evictions with no room to encode park instead.
  bool reserve_given_up_ = false;
  std::deque<std::shared_ptr<Handoff>> handoffs_;  // not settled yet, in guard-stream order
  bool handoffs_enabled_ = false;
  struct FreedLater {
    SharedEvent after;  // recorded after the free (the decode's, if that failed)
    size_t bytes;
  };
  std::vector<FreedLater> freed_later_;  // stores freed on release_stream_ after their decode
  // Host memory (parked or rescued copies) a queued decode still reads, kept
  // until the decode's event: the decode may wait behind its stream's work.
  std::vector<std::pair<SharedEvent, std::shared_ptr<RescueSlot>>> kept_until_;
  // Moves `slot` there (reset on success); false: not kept, `slot` untouched.
  bool keep_until(const SharedEvent& after, std::shared_ptr<RescueSlot>& slot) noexcept;
  void reap_kept() noexcept;  // lets go of what completed events no longer need
  // Streams that may wait for work not launched yet (patient_wait.cpp), each
  // with the event after which it may be free: a stream memory wait queued on
  // it, or a use a host wait waited for in vain. An unfinished use on such a
  // stream, or on one CUDA orders after it implicitly (the legacy default
  // stream and the blocking streams, both ways), is neither waited for nor
  // handed over until that event completed.
  enum class LegacyOrder : uint8_t { kNone, kLegacy, kBlocking };  // a stream's implicit ordering
  struct StreamMark {
    CUstream stream = nullptr;
    SharedEvent until;
    LegacyOrder order = LegacyOrder::kNone;
  };
  std::vector<StreamMark> blocked_streams_;
  static LegacyOrder legacy_order(CUstream s) noexcept;
  // Whether work on `s` waits for work queued before it on a stream of `marked`'s order.
  static bool implicitly_after(LegacyOrder marked, CUstream s) noexcept;
  // marks_mu_ held: whether new work on `s` is behind a marked stream's wait.
  bool stream_behind_marks(CUstream s) const noexcept;
  void add_mark(CUstream stream, SharedEvent until) noexcept;  // marks_mu_ held
  // The program's events last recorded on a stream while it was in
  // blocked_streams_ (cleared when no stream is marked any more), and whether
  // any stream may be marked (read without the lock by the event hooks).
  std::vector<CUevent> events_behind_marks_;
  std::atomic<bool> streams_marked_{false};
  // Guards blocked_streams_ and events_behind_marks_; taken after mutex_
  // where both are, never held while waiting (the event hooks take it alone).
  mutable std::mutex marks_mu_;
  // Staging pages that backed allocations exported as dma-bufs, after their
  // cuMemFree: never handed to another range (a NIC may still write them).
  std::vector<StagingPieces> dmabuf_kept_;
  std::vector<std::shared_ptr<Unit>> restores_due_;  // see restore_due_stores (drained at the end of each staging)
  size_t held_bytes_ = 0;  // pages encode handovers keep until settled (Handoff::held)
  size_t encode_handoff_bytes_ = 0;  // runs of encode handovers not settled yet
  UniqueDeviceMemory guard_workspace_;  // the encoder's, for encode handovers on the guard stream
  size_t guard_workspace_bytes_ = 0;
  // The look-ahead stager: where to walk the learned order from next, and
  // whether a staging of it is in progress without the lock.
  std::condition_variable_any stager_cv_;
  std::weak_ptr<Unit> lookahead_from_;
  std::atomic<int> stager_busy_{0};      // read without the lock at exit
  // Evictions the launching threads handed to the stager (defer_eviction),
  // their units held; the bytes they still occupy beyond the budget.
  struct PendingSettle {
    std::shared_ptr<StagedRun> run;
    std::vector<std::shared_ptr<Unit>> held;
  };
  std::deque<PendingSettle> to_settle_;
  size_t deferred_bytes_ = 0;
  bool stager_started_ = false;
  bool stager_failed_ = false;
  bool budget_hint_given_ = false;
  bool call_over_budget_ = false;   // prepare() stages a call larger than a fixed budget, unit by unit  // "one call needs more than NEUZIP_STAGING_MB", said once
  // NEUZIP_REPORT=1: faults by kernel name (or copy entry point), for the
  // exit report: which launches restage (lock held).
  std::map<std::string, uint64_t> faults_by_caller_;
  std::atomic<bool> stop_stager_{false};
  StagingOrder<Unit> order_;
  UseOrder<Unit> use_order_;  // what the calls of the last iteration touched (guesses.cpp)
  bool guess_pending_ = false;  // guess_next_call could not stage its call yet (or not reach one): ask again
  UniqueHostMemory status_host_;
  bool primary_kept_ = false;  // the runtime holds a reference to its primary context
  std::unique_ptr<CompressedStore> store_;
  // The stager's own (words of its own, the same internal stream): it hashes
  // and encodes with the runtime lock dropped (eviction_ahead.cpp).
  std::unique_ptr<CompressedStore> ahead_store_;
  std::map<CUdeviceptr, std::unique_ptr<Allocation>> allocations_;
  // What pointer queries need of each managed allocation, readable without the
  // runtime mutex (Triton queries every pointer argument of every launch; a
  // compression holding the mutex must not stall them).
  struct AllocationInfo {
    CUdeviceptr base;
    size_t requested;
    uint64_t buffer_id;
    CUcontext context;
    int device_ordinal;
  };
  RangeMap<AllocationInfo> allocation_info_;
  RangeMap<TagExtent> tracked_;  // allocations with tracked units (one byte past the end included)
  std::vector<std::shared_ptr<Unit>> pending_;
  std::atomic<size_t> pending_count_{0};

  std::vector<std::shared_ptr<Unit>> staged_;
  GraphPins graph_pins_;  // what captures, graphs and executable graphs keep staged
  // Each exec's last replay (after_graph_launch): a use of its units from
  // the moment its pins drop (settle_exec_replay), so that evictions wait for
  // a replay still queued then. One event per replay, not one use per unit.
  struct ReplayUse {
    SharedEvent done;
    CUstream stream = nullptr;
    bool own_legacy = false;
  };
  std::unordered_map<CUgraphExec, ReplayUse> exec_replays_;
  void settle_exec_replay(CUgraphExec exec) noexcept;  // lock held
  uint64_t tick_ = 0;
  ReuseForecast forecast_;  // which staged range is needed again last (eviction order)
  std::atomic<uint64_t> memory_epoch_{1};  // bumped whenever device memory is given back
  ParamLayoutCache params_;
  TensorMapRegistry tensor_maps_;  // descriptors passed by value by Hopper GEMMs
  // Device ranges filled from the host with words that point into managed
  // allocations (pointer arrays of batched and grouped GEMMs): what each points to.
  RangeMap<std::vector<CUdeviceptr>> pointer_arrays_;
  bool checksum_reported_ = false;
  // Bounds of every managed allocation made so far (never shrunk): a cheap
  // first test for "may this word point into managed memory?".
  CUdeviceptr managed_low_ = ~CUdeviceptr{0};
  CUdeviceptr managed_high_ = 0;
  int device_ordinal_ = 0;
  CUdevice device_ = 0;
  bool context_is_primary_ = false;
  uint64_t next_buffer_id_ = 1u << 20;  // apart from the driver's own ids
  size_t launch_staging_peak_ = 0;      // most bytes one call had to stage
  // cuMemGetInfo without the runtime lock (programs poll it; a staging holds
  // the lock for VMM calls): units tagged so far, their count at the last
  // compress_loaded() scan, and the last room computed for staging.
  std::atomic<uint64_t> units_tagged_{0};
  std::atomic<uint64_t> loaded_scan_mark_{0};
  std::atomic<size_t> free_memory_need_{0};
  std::atomic<bool> free_memory_need_known_{false};
  bool illegal_address_reported_ = false;
  // Buffers a communication library holds outside our view (ncclCommRegister,
  // ncclMemAlloc): (kind, owner) -> [begin, end). Their units stay pinned.
  std::map<std::pair<PinOwner, uintptr_t>, std::pair<CUdeviceptr, CUdeviceptr>> external_pins_;
  // The program's module globals (cuModuleGetGlobal), by address, and the
  // allocations pointers copied into them keep pinned (module_globals.cpp).
  struct ModuleGlobal {
    CUdeviceptr end = 0;
    const void* module = nullptr;
    std::vector<std::pair<CUdeviceptr, uintptr_t>> pinned;  // (allocation base, pin owner)
  };
  std::map<CUdeviceptr, ModuleGlobal> module_globals_;
  uintptr_t next_global_pin_ = 0;
  bool global_pins_reported_ = false;
  bool pending_collective_reported_ = false;
  // Iterations, as far as the runtime can tell: a host-to-device copy into
  // managed memory after launches used tracked memory starts a new one.
  uint64_t generation_ = 0;
  bool launched_in_generation_ = false;
};

}  // namespace nz::rt
