// options.cpp: see options.h.
#include "options.h"

#include <unistd.h>

#include <charconv>
#include <climits>
#include <cstring>

#ifndef MINIFW_WEIGHTS_DIR
#define MINIFW_WEIGHTS_DIR "../shared/weights"
#endif

namespace minifw {
namespace {

bool parse_int(const char* text, int min, int max, int& out) {
  const char* end = text + std::strlen(text);
  auto [ptr, ec] = std::from_chars(text, end, out);
  return ec == std::errc() && ptr == end && out >= min && out <= max;
}

std::string executable_dir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

const char* usage() {
  return "usage: minifw infer [--size-mb N] [--weight-mb M] [--steps S] [--batch B] [options]\n"
         "       minifw train [--optimizer sgd|adam|lomo] [--lora R] [--size-mb N] [--weight-mb M] [--steps S] [--batch B] [options]\n"
         "options: --threads N       launch each forward layer from N host threads on N streams\n"
         "         --weights DIR     folder with the real safetensors weights\n"
         "         --kernels PATH    the kernel module (default: beside the executable)\n"
         "         --module-load path|ref  cuModuleLoad(path) or cuModuleLoadData(nzsim_module_ref)\n"
         "         --save FILE       write the final weights as safetensors\n"
         "         --nz-tag          declare every weight (with its dtype) through neuzip's nz_tag, if loaded\n"
         "         --mixed-dtypes    infer: keep the fp32 MLP up weights of the training model\n"
         "         --dist ddp|fsdp   train: data parallel through libnccl.so.2 (one rank): DDP's broadcast\n"
         "                           and gradient all-reduce, or FSDP's shards, all-gather, reduce-scatter\n"
         "         --optimizer lomo  all-bf16 weights updated in place by SGD fused into backward\n"
         "         --lora R          train rank-R fp32 adapters with Adam; the bf16 base is frozen\n"
         "         --tma             linear layers read their weights through TMA descriptors (Hopper cuBLAS)\n"
         "         --alloc native|expandable|async  where the caching allocator's segments come from:\n"
         "                           cuMemAlloc (default), the program's own cuMemCreate/cuMemMap (PyTorch's\n"
         "                           expandable_segments:True) or cuMemAllocAsync (backend:cudaMallocAsync)\n"
         "         --tied-head       infer: logits through the embedding matrix at the end of each step\n"
         "                           (a language model whose input and output embeddings are tied)\n";
}

bool parse_options(int argc, char** argv, Options& out, std::string& error) {
  out = Options{};
  out.weights_dir = MINIFW_WEIGHTS_DIR;
  out.kernels_path = executable_dir() + "/libminifw_kernels.so";
  if (argc < 2) {
    error = "missing workload";
    return false;
  }
  const std::string workload = argv[1];
  if (workload == "infer") {
    out.workload = Options::Workload::infer;
  } else if (workload == "train") {
    out.workload = Options::Workload::train;
  } else {
    error = "unknown workload '" + workload + "'";
    return false;
  }
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    // Flags without a value.
    if (flag == "--nz-tag") {
      out.nz_tag = true;
      continue;
    }
    if (flag == "--mixed-dtypes") {
      out.mixed_dtypes = true;
      continue;
    }
    if (flag == "--tma") {
      out.tma = true;
      continue;
    }
    if (flag == "--tied-head") {
      out.tied_head = true;
      continue;
    }
    if (i + 1 >= argc) {
      error = "missing value for " + flag;
      return false;
    }
    const char* value = argv[++i];
    bool ok = true;
    if (flag == "--size-mb") {
      ok = parse_int(value, 1, 1 << 16, out.size_mb);
    } else if (flag == "--weight-mb") {
      ok = parse_int(value, 1, 1 << 12, out.weight_mb);
    } else if (flag == "--steps") {
      ok = parse_int(value, 1, 1 << 20, out.steps);
    } else if (flag == "--batch") {
      ok = parse_int(value, 1, 4096, out.batch);
    } else if (flag == "--threads") {
      ok = parse_int(value, 1, 64, out.threads);
    } else if (flag == "--optimizer") {
      ok = out.workload == Options::Workload::train && parse_optimizer(value, out.optimizer);
    } else if (flag == "--lora") {
      ok = out.workload == Options::Workload::train && parse_int(value, 1, 256, out.lora_rank);
    } else if (flag == "--weights") {
      out.weights_dir = value;
    } else if (flag == "--kernels") {
      out.kernels_path = value;
    } else if (flag == "--module-load") {
      const std::string how = value;
      ok = how == "path" || how == "ref";
      out.module_load = how == "ref" ? Module::LoadBy::ref_image : Module::LoadBy::path;
    } else if (flag == "--alloc") {
      const std::string how = value;
      ok = how == "native" || how == "expandable" || how == "async";
      out.segments = how == "expandable" ? SegmentKind::expandable
                     : how == "async"    ? SegmentKind::stream_ordered
                                         : SegmentKind::native;
    } else if (flag == "--dist") {
      const std::string how = value;
      ok = out.workload == Options::Workload::train && (how == "none" || how == "ddp" || how == "fsdp");
      out.dist = how == "ddp" ? DistMode::ddp : how == "fsdp" ? DistMode::fsdp : DistMode::none;
    } else if (flag == "--save") {
      out.save_path = value;
    } else {
      error = "unknown option " + flag;
      return false;
    }
    if (!ok) {
      error = "bad value '" + std::string(value) + "' for " + flag;
      return false;
    }
  }
  if (out.tied_head && out.workload != Options::Workload::infer) {
    error = "--tied-head is for infer (its backward pass is not modelled)";
    return false;
  }
  if (out.lora_rank > 0 && out.optimizer == OptimizerKind::lomo) {
    error = "--lora trains its adapters with adam or sgd, not lomo";
    return false;
  }
  if (out.dist != DistMode::none && (out.lora_rank > 0 || out.optimizer == OptimizerKind::lomo)) {
    error = "--dist reduces full gradients: not with --lora or --optimizer lomo";
    return false;
  }
  return true;
}

}  // namespace minifw
