// workload.cpp: the step loop. Streams: `data` copies inputs in (and loads
// the checkpoint), `compute` runs forward/backward after waiting on the
// data event, `side` reads the loss back and runs the optimizer after
// waiting on compute's events; the next forward waits on the optimizer's
// event. Each step ends with a loss read-back (like loss.item()).
#include "workload.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include <fmt/core.h>

#include "caching_allocator.h"
#include "checkpoint_writer.h"
#include "data_parallel.h"
#include "device_buffer.h"
#include "digest.h"
#include "driver.h"
#include "gradient_sink.h"
#include "kernel_launcher.h"
#include "lora.h"
#include "model.h"
#include "network.h"
#include "neuzip_tags.h"
#include "optimizer.h"
#include "sliced_launch.h"
#include "weight_source.h"

namespace minifw {
namespace {

constexpr int kExitSetupError = 1;
// LOMO's learning rate: large enough that most bf16 weights change every
// step (as in fine-tuning, and so that the runtime sees them rewritten).
constexpr float kLomoLr = 0.5f;

const char* train_name(const Options& o) {
  if (o.lora_rank > 0) return o.optimizer == OptimizerKind::adam ? " lora adam" : " lora sgd";
  switch (o.optimizer) {
    case OptimizerKind::sgd: return " sgd";
    case OptimizerKind::adam: return " adam";
    case OptimizerKind::lomo: return " lomo";
  }
  return "";
}

// Deterministic inputs for step `step`: token ids and a regression target.
void make_inputs(const ModelConfig& c, int step, int32_t* tokens, float* target) {
  for (int r = 0; r < c.batch; ++r) {
    tokens[r] = static_cast<int32_t>((static_cast<uint64_t>(step) * 7919u + static_cast<uint64_t>(r) * 104729u + 17u) %
                                     static_cast<uint64_t>(c.vocab));
  }
  uint64_t state = 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(step);
  const size_t n = static_cast<size_t>(c.batch) * c.dim;
  for (size_t i = 0; i < n; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const auto bits = static_cast<uint32_t>(state >> 40);  // 24 bits
    target[i] = (static_cast<float>(bits) / 16777216.0f - 0.5f) * 0.5f;
  }
}

}  // namespace

int run_workload(const Options& o) {
  WeightSource source;
  std::string error;
  if (!source.load(o.weights_dir, error)) {
    fmt::print(stderr, "minifw: {}\n", error);
    return kExitSetupError;
  }
  PrimaryContext context(0);
  Module module(o.kernels_path, o.module_load);
  KernelLauncher kernels(module);
  // Outlives every DeviceBuffer below.
  CachingAllocator allocator(o.segments == SegmentKind::expandable       ? vmm_segment_source()
                             : o.segments == SegmentKind::stream_ordered ? stream_ordered_segment_source()
                                                                         : driver_segment_source());
  Stream data, compute, side;
  Event loaded, masters_ready, inputs_ready, loss_ready, grads_ready, optimizer_done;

  // Inference loads an all-bf16 checkpoint (as real inference does), unless
  // --mixed-dtypes; training keeps fp32 MLP up weights, except LOMO (bf16
  // weights updated in place) and LoRA (a frozen bf16 base).
  const bool training = o.workload == Options::Workload::train;
  const bool lomo = training && o.optimizer == OptimizerKind::lomo;
  const bool lora = training && o.lora_rank > 0;
  const bool all_bf16 = training ? (lomo || lora) : !o.mixed_dtypes;
  const ModelConfig config = ModelConfig::for_size(o.size_mb, o.batch, all_bf16, o.weight_mb);
  Model model(config);
  fmt::print("minifw {}{}: dim {} hidden {} vocab {} blocks {} batch {} steps {} threads {}\n",
             training ? "train" : "infer",
             training ? train_name(o) : "", config.dim, config.hidden,
             config.vocab, config.blocks, config.batch, o.steps, o.threads);

  NeuzipTagger tagger;
  if (o.nz_tag) {
    model.load(allocator, kernels, source, data.get(), loaded, [&](const Parameter& p) { tagger.declare(p); });
    tagger.report();
  } else {
    model.load(allocator, kernels, source, data.get(), loaded);
  }
  loaded.wait_on(compute.get());
  // --dist: NCCL after the load (DDP's broadcast from rank 0, FSDP's shards).
  std::optional<DataParallel> dist;
  if (o.dist != DistMode::none) {
    dist.emplace(o.dist, model, allocator, data.get());
    dist->after_load(compute.get());
  }

  SlicedLauncher sliced(context, o.threads);
  Network network(model, allocator, kernels, sliced);
  network.set_tma(o.tma);
  network.set_tied_head(o.tied_head);
  std::optional<Optimizer> optimizer;
  std::optional<LoraAdapters> adapters;
  Gradients grads;
  std::unique_ptr<GradientSink> sink;
  if (lomo) {
    sink = std::make_unique<FusedSgd>(allocator, kernels, kLomoLr);
  } else if (lora) {
    adapters.emplace(config, o.lora_rank, allocator, kernels, data.get());
    network.set_adapters(&*adapters);
    sink = std::make_unique<FrozenBase>();
    optimizer.emplace(o.optimizer, adapters->parameters(), allocator, kernels);
  } else if (training) {
    sink = std::make_unique<KeptGradients>(model.parameters(), allocator, kernels, grads);
    optimizer.emplace(o.optimizer, model.parameters(), allocator, kernels);
    optimizer->create_masters(data.get());
  }
  if (training) {
    masters_ready.record(data.get());
    masters_ready.wait_on(side.get());
    if (lora) masters_ready.wait_on(compute.get());  // the adapters were initialised on `data`
  }

  const size_t target_floats = static_cast<size_t>(config.batch) * config.dim;
  PinnedBuffer host_tokens(sizeof(int32_t) * config.batch);
  PinnedBuffer host_target(sizeof(float) * target_floats);
  PinnedBuffer host_loss(sizeof(float));
  Digest digest;

  for (int step = 0; step < o.steps; ++step) {
    // Training fits one fixed batch (its loss must fall); inference sees a new batch each step.
    make_inputs(config, training ? 0 : step, static_cast<int32_t*>(host_tokens.data()), static_cast<float*>(host_target.data()));
    DeviceBuffer tokens(allocator, host_tokens.size(), "input tokens");
    DeviceBuffer target(allocator, host_target.size(), "input target");
    MINIFW_CHECK(cuMemcpyHtoDAsync(tokens.get(), host_tokens.data(), host_tokens.size(), data.get()));
    MINIFW_CHECK(cuMemcpyHtoDAsync(target.get(), host_target.data(), host_target.size(), data.get()));
    inputs_ready.record(data.get());
    inputs_ready.wait_on(compute.get());
    if (optimizer && step > 0) optimizer_done.wait_on(compute.get());

    if (dist) dist->before_forward(compute.get());
    StepActivations act;
    network.forward(tokens.get(), target.get(), training, compute.get(), act);
    loss_ready.record(compute.get());
    loss_ready.wait_on(side.get());
    MINIFW_CHECK(cuMemcpyDtoHAsync(host_loss.data(), act.loss.get(), sizeof(float), side.get()));
    if (training) {
      // LOMO's updates run inside backward, on the compute stream.
      network.backward(tokens.get(), act, *sink, compute.get());
      if (dist) dist->reduce_gradients(grads, compute.get());
      grads_ready.record(compute.get());
      grads_ready.wait_on(side.get());
      if (optimizer) {
        optimizer->step(adapters ? adapters->gradients() : grads, side.get());
        if (dist) dist->after_optimizer(side.get());
        optimizer_done.record(side.get());
      }
    }
    // Everything of this step is done once `side` is: it waited on compute,
    // which waited on data. Only then are the step's blocks freed (scope end).
    side.synchronize();
    float loss;
    std::memcpy(&loss, host_loss.data(), sizeof loss);
    uint32_t bits;
    std::memcpy(&bits, &loss, sizeof bits);
    fmt::print("step {} loss 0x{:08x} {:.9g}\n", step, bits, loss);
    digest.add(&bits, sizeof bits);
    if (act.logits.get() != 0) {
      std::vector<unsigned char> logits(act.logits.bytes());
      MINIFW_CHECK(cuMemcpyDtoH(logits.data(), act.logits.get(), logits.size()));
      digest.add(logits.data(), logits.size());
    }
  }

  // Checkpoint save: every weight back to the host.
  CheckpointWriter writer;
  model.save(side.get(), [&](const Parameter& p, const std::vector<unsigned char>& bytes) {
    digest.add(bytes.data(), bytes.size());
    if (!o.save_path.empty()) writer.add(p, bytes);
  });
  if (adapters) {  // the trained part of a LoRA run
    std::vector<unsigned char> bytes;
    for (const auto& p : adapters->parameters()) {
      copy_parameter_to_host(p, side.get(), bytes);
      digest.add(bytes.data(), bytes.size());
      if (!o.save_path.empty()) writer.add(p, bytes);
    }
  }
  if (!o.save_path.empty() && !writer.write(o.save_path, error)) {
    fmt::print(stderr, "minifw: {}\n", error);
    return kExitSetupError;
  }
  const AllocatorStats stats = allocator.stats();
  fmt::print(stderr, "weights-bytes: {}\n", model.total_bytes());
  fmt::print(stderr, "segments-bytes: {}\n", stats.peak_segment_bytes);
  fmt::print(stderr, "segments: {} created, {} cache hits, peak allocated {} bytes\n", stats.segments_created,
             stats.cache_hits, stats.peak_allocated_bytes);
  fmt::print("digest: {:016x}\n", digest.value());
  std::fflush(stdout);
  return 0;
}

}  // namespace minifw
