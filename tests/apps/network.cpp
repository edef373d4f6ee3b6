// network.cpp: see network.h. Kernel choice is deliberate: Q/K/V and the
// attention projection get their weights as plain pointers (Q/K/V as
// interior pointers into the fused QKV weight), the MLP layers inside a
// by-value LinearParams struct; weight gradients and a few others go
// through cuLaunchKernelEx.
#include "network.h"

namespace minifw {
namespace {

constexpr size_t kBf16Bytes = 2;

size_t elem_bytes(const Parameter& p) { return p.dtype == kDtypeBF16 ? kBf16Bytes : sizeof(float); }

CUdeviceptr offset_floats(CUdeviceptr base, size_t floats) { return base + floats * sizeof(float); }

LinearParams linear_params(const Parameter& w, const Parameter* b, size_t w_offset_elems, size_t b_offset_elems,
                           int out, int in) {
  LinearParams p{};
  p.weight = reinterpret_cast<const void*>(w.data.get() + w_offset_elems * elem_bytes(w));
  p.bias = b == nullptr ? nullptr : reinterpret_cast<const float*>(offset_floats(b->data.get(), b_offset_elems));
  p.out_features = out;
  p.in_features = in;
  p.dtype = w.dtype;
  return p;
}

const float* cf(CUdeviceptr p) { return reinterpret_cast<const float*>(p); }
float* mf(CUdeviceptr p) { return reinterpret_cast<float*>(p); }

// A TMA descriptor over the [out x in] weight slice at `weight` (row-major),
// as cuBLAS builds one per operand for its Hopper GEMMs.
CUtensorMap weight_map(const void* weight, int32_t dtype, int out, int in) {
  CUtensorMap map;
  const size_t elem = dtype == kDtypeBF16 ? kBf16Bytes : sizeof(float);
  const CUtensorMapDataType type = dtype == kDtypeBF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
  cuuint64_t dims[2] = {static_cast<cuuint64_t>(in), static_cast<cuuint64_t>(out)};
  cuuint64_t strides[1] = {static_cast<cuuint64_t>(in) * elem};
  cuuint32_t box[2] = {64, 64}, element_strides[2] = {1, 1};
  MINIFW_CHECK(cuTensorMapEncodeTiled(&map, type, 2, const_cast<void*>(weight), dims, strides, box, element_strides,
                                      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                      CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  return map;
}

}  // namespace

Network::Network(Model& model, CachingAllocator& allocator, const KernelLauncher& kernels,
                 SlicedLauncher& sliced)
    : model_(model), allocator_(allocator), kernels_(kernels), sliced_(sliced) {}

DeviceBuffer Network::activation(size_t floats, const char* what) {
  return DeviceBuffer(allocator_, floats * sizeof(float), what);
}

void Network::rmsnorm(CUstream compute, const DeviceBuffer& x, DeviceBuffer& y, DeviceBuffer& inv) {
  const ModelConfig& c = model_.config();
  y = activation(static_cast<size_t>(c.batch) * c.dim, "rmsnorm output");
  inv = activation(static_cast<size_t>(c.batch), "rmsnorm 1/rms");
  kernels_.launch(Kernel::rmsnorm_forward, compute, LaunchVia::launch_kernel, x.as<const float>(), y.as<float>(),
                  inv.as<float>(), c.batch, c.dim);
}

DeviceBuffer Network::rmsnorm_backward_plus(CUstream compute, const DeviceBuffer& x, const DeviceBuffer& inv,
                                            const DeviceBuffer& dy, const DeviceBuffer& residual, const char* what) {
  const ModelConfig& c = model_.config();
  DeviceBuffer dx = activation(static_cast<size_t>(c.batch) * c.dim, what);
  // The residual gradient is copied device to device, then the norm's
  // gradient accumulates onto it.
  MINIFW_CHECK(cuMemcpyDtoDAsync(dx.get(), residual.get(), dx.bytes(), compute));
  kernels_.launch(Kernel::rmsnorm_backward, compute, LaunchVia::launch_kernel, x.as<const float>(),
                  inv.as<const float>(), dy.as<const float>(), dx.as<float>(), c.batch, c.dim, int32_t{1});
  return dx;
}

void Network::linear(CUstream compute, CUdeviceptr x, const Parameter& w, const Parameter* b,
                     size_t w_offset_elems, size_t b_offset_elems, int out, int in, CUdeviceptr y, int ldy,
                     bool by_struct) {
  const int32_t rows = model_.config().batch;
  sliced_.run(compute, out, [&](int begin, int end, CUstream stream) {
    // A slice of output columns = a slice of weight rows: more interior pointers.
    const size_t w_off = w_offset_elems + static_cast<size_t>(begin) * in;
    const size_t b_off = b_offset_elems + begin;
    const CUdeviceptr y_slice = offset_floats(y, begin);
    const int32_t n = end - begin;
    if (tma_) {
      const void* weight = reinterpret_cast<const void*>(w.data.get() + w_off * elem_bytes(w));
      const float* bias = b == nullptr ? nullptr : cf(offset_floats(b->data.get(), b_off));
      kernels_.launch(Kernel::linear_forward_tma, stream, LaunchVia::launch_kernel_ex,
                      weight_map(weight, w.dtype, n, in), cf(x), bias, mf(y_slice), rows, n,
                      static_cast<int32_t>(in), static_cast<int32_t>(ldy), static_cast<int32_t>(w.dtype));
    } else if (by_struct) {
      const LinearParams p = linear_params(w, b, w_off, b_off, n, in);
      kernels_.launch(Kernel::linear_forward_struct, stream, LaunchVia::launch_kernel, cf(x), p, mf(y_slice),
                      rows, static_cast<int32_t>(ldy));
    } else {
      const void* weight = reinterpret_cast<const void*>(w.data.get() + w_off * elem_bytes(w));
      const float* bias = b == nullptr ? nullptr : cf(offset_floats(b->data.get(), b_off));
      kernels_.launch(Kernel::linear_forward_ptr, stream, LaunchVia::launch_kernel, cf(x), weight, bias,
                      mf(y_slice), rows, n, static_cast<int32_t>(in), static_cast<int32_t>(ldy),
                      static_cast<int32_t>(w.dtype));
    }
  });
}

void Network::forward(CUdeviceptr tokens, CUdeviceptr target, bool training, CUstream compute,
                      StepActivations& act) {
  const ModelConfig& c = model_.config();
  const size_t bd = static_cast<size_t>(c.batch) * c.dim;
  const size_t bh = static_cast<size_t>(c.batch) * c.hidden;
  DeviceBuffer x = activation(bd, "embedding output");
  kernels_.launch(Kernel::embedding_forward, compute, LaunchVia::launch_kernel,
                  reinterpret_cast<const int32_t*>(tokens), model_.embedding().data.as<const uint16_t>(),
                  x.as<float>(), c.batch, c.dim, c.vocab);
  act.blocks.clear();
  act.blocks.resize(static_cast<size_t>(c.blocks));
  for (int b = 0; b < c.blocks; ++b) {
    const BlockParams& p = model_.block(b);
    BlockActivations& a = act.blocks[b];
    a.input = std::move(x);
    rmsnorm(compute, a.input, a.norm1, a.inv1);
    a.qkv = activation(3 * bd, "qkv");
    for (int part = 0; part < 3; ++part) {  // Q, K, V: interior pointers into the fused weight
      linear(compute, a.norm1.get(), *p.qkv_w, p.qkv_b, static_cast<size_t>(part) * c.dim * c.dim,
             static_cast<size_t>(part) * c.dim, c.dim, c.dim, offset_floats(a.qkv.get(), part * c.dim),
             3 * c.dim, false);
    }
    if (adapters_ != nullptr) adapters_->forward(compute, b, LoraLayer::qkv, a.norm1, a.qkv);
    a.probs = activation(static_cast<size_t>(c.batch) * c.batch, "attention probabilities");
    a.attn = activation(bd, "attention output");
    kernels_.launch(Kernel::attention_forward, compute, LaunchVia::launch_kernel_ex, a.qkv.as<const float>(),
                    a.probs.as<float>(), a.attn.as<float>(), c.batch, c.dim);
    DeviceBuffer projected = activation(bd, "projection");
    linear(compute, a.attn.get(), *p.proj_w, p.proj_b, 0, 0, c.dim, c.dim, projected.get(), c.dim, false);
    if (adapters_ != nullptr) adapters_->forward(compute, b, LoraLayer::proj, a.attn, projected);
    a.mid = activation(bd, "residual 1");
    kernels_.launch(Kernel::add, compute, LaunchVia::launch_kernel, a.input.as<const float>(),
                    projected.as<const float>(), a.mid.as<float>(), static_cast<uint64_t>(bd));
    rmsnorm(compute, a.mid, a.norm2, a.inv2);
    a.up = activation(bh, "mlp up");
    linear(compute, a.norm2.get(), *p.up_w, p.up_b, 0, 0, c.hidden, c.dim, a.up.get(), c.hidden, true);
    if (adapters_ != nullptr) adapters_->forward(compute, b, LoraLayer::up, a.norm2, a.up);
    a.relu = activation(bh, "relu");
    kernels_.launch(Kernel::relu_forward, compute, LaunchVia::launch_kernel, a.up.as<const float>(),
                    a.relu.as<float>(), static_cast<uint64_t>(bh));
    DeviceBuffer down = activation(bd, "mlp down");
    linear(compute, a.relu.get(), *p.down_w, p.down_b, 0, 0, c.dim, c.hidden, down.get(), c.dim, true);
    if (adapters_ != nullptr) adapters_->forward(compute, b, LoraLayer::down, a.relu, down);
    x = activation(bd, "residual 2");
    kernels_.launch(Kernel::add, compute, LaunchVia::launch_kernel, a.mid.as<const float>(),
                    down.as<const float>(), x.as<float>(), static_cast<uint64_t>(bd));
    // `projected` and `down` are freed here while their kernels may still be
    // queued; their next users are on this same stream (PyTorch semantics).
  }
  act.last = std::move(x);
  rmsnorm(compute, act.last, act.output, act.inv_last);
  act.loss = activation(1, "loss");
  if (training) act.dpred = activation(bd, "loss gradient");
  kernels_.launch(Kernel::mse_loss, compute, LaunchVia::launch_kernel, act.output.as<const float>(),
                  cf(target), act.loss.as<float>(), training ? act.dpred.as<float>() : nullptr,
                  static_cast<uint64_t>(bd));
  if (tied_head_ && !training) {
    // GPT-2's and Llama 3.2's language-model head: the embedding matrix
    // ([vocab x dim], bf16) used as the output projection.
    act.logits = activation(static_cast<size_t>(c.batch) * c.vocab, "logits");
    linear(compute, act.output.get(), model_.embedding(), nullptr, 0, 0, c.vocab, c.dim, act.logits.get(), c.vocab,
           false);
  }
}

void Network::backward(CUdeviceptr tokens, StepActivations& act, GradientSink& sink, CUstream compute) {
  const ModelConfig& c = model_.config();
  const size_t bd = static_cast<size_t>(c.batch) * c.dim;
  const size_t bh = static_cast<size_t>(c.batch) * c.hidden;
  sink.prepare(compute);
  if (adapters_ != nullptr) adapters_->prepare_backward(compute);
  // The weight (and bias) gradient of one linear layer, then its completion.
  // `parts` row blocks of `out` rows each (the fused QKV weight has three).
  auto weight_grad = [&](const Parameter& w, const Parameter& bias, CUdeviceptr dy, int ldy, CUdeviceptr x, int out,
                         int in, int parts) {
    const CUdeviceptr dw = sink.gradient(w, compute);
    const CUdeviceptr db = sink.gradient(bias, compute);
    if (dw != 0) {
      for (int part = 0; part < parts; ++part) {
        const size_t w_off = static_cast<size_t>(part) * out * in;
        kernels_.launch(Kernel::linear_backward_weight, compute, LaunchVia::launch_kernel_ex,
                        cf(offset_floats(dy, static_cast<size_t>(part) * out)), cf(x), mf(offset_floats(dw, w_off)),
                        db == 0 ? nullptr : mf(offset_floats(db, static_cast<size_t>(part) * out)), c.batch,
                        static_cast<int32_t>(out), static_cast<int32_t>(in), static_cast<int32_t>(ldy));
      }
    }
    sink.complete(w, compute);
    sink.complete(bias, compute);
  };
  auto input_grad = [&](CUdeviceptr dy, int ldy, const LinearParams& p, CUdeviceptr dx, bool accumulate) {
    if (tma_) {
      kernels_.launch(Kernel::linear_backward_input_tma, compute, LaunchVia::launch_kernel_ex,
                      weight_map(p.weight, p.dtype, p.out_features, p.in_features), cf(dy), mf(dx), c.batch,
                      static_cast<int32_t>(ldy), static_cast<int32_t>(accumulate ? 1 : 0), p.out_features,
                      p.in_features, p.dtype);
      return;
    }
    kernels_.launch(Kernel::linear_backward_input, compute, LaunchVia::launch_kernel, cf(dy), p, mf(dx), c.batch,
                    static_cast<int32_t>(ldy), static_cast<int32_t>(accumulate ? 1 : 0));
  };
  auto adapter = [&](int b, LoraLayer layer, const DeviceBuffer& x, CUdeviceptr dy, const DeviceBuffer& dx) {
    if (adapters_ != nullptr) adapters_->backward(compute, b, layer, x, dy, dx);
  };

  // Gradient w.r.t. the current block output, starting through the final norm.
  DeviceBuffer dx = activation(bd, "grad last");
  kernels_.launch(Kernel::rmsnorm_backward, compute, LaunchVia::launch_kernel, act.last.as<const float>(),
                  act.inv_last.as<const float>(), act.dpred.as<const float>(), dx.as<float>(), c.batch, c.dim,
                  int32_t{0});
  for (int b = c.blocks - 1; b >= 0; --b) {
    const BlockParams& p = model_.block(b);
    BlockActivations& a = act.blocks[b];
    // MLP: out = mid + down(relu(up(mid)))
    DeviceBuffer drelu = activation(bh, "grad relu");
    input_grad(dx.get(), c.dim, linear_params(*p.down_w, nullptr, 0, 0, c.dim, c.hidden), drelu.get(), false);
    adapter(b, LoraLayer::down, a.relu, dx.get(), drelu);
    weight_grad(*p.down_w, *p.down_b, dx.get(), c.dim, a.relu.get(), c.dim, c.hidden, 1);
    DeviceBuffer dup = activation(bh, "grad up");
    kernels_.launch(Kernel::relu_backward, compute, LaunchVia::launch_kernel, a.up.as<const float>(),
                    drelu.as<const float>(), dup.as<float>(), static_cast<uint64_t>(bh));
    DeviceBuffer dnorm2 = activation(bd, "grad norm2");
    input_grad(dup.get(), c.hidden, linear_params(*p.up_w, nullptr, 0, 0, c.hidden, c.dim), dnorm2.get(), false);
    adapter(b, LoraLayer::up, a.norm2, dup.get(), dnorm2);
    weight_grad(*p.up_w, *p.up_b, dup.get(), c.hidden, a.norm2.get(), c.hidden, c.dim, 1);
    DeviceBuffer dmid = rmsnorm_backward_plus(compute, a.mid, a.inv2, dnorm2, dx, "grad mid");
    // Attention: mid = input + proj(attention(qkv(input)))
    DeviceBuffer dattn = activation(bd, "grad attn");
    input_grad(dmid.get(), c.dim, linear_params(*p.proj_w, nullptr, 0, 0, c.dim, c.dim), dattn.get(), false);
    adapter(b, LoraLayer::proj, a.attn, dmid.get(), dattn);
    weight_grad(*p.proj_w, *p.proj_b, dmid.get(), c.dim, a.attn.get(), c.dim, c.dim, 1);
    DeviceBuffer dqkv = activation(3 * bd, "grad qkv");
    kernels_.launch(Kernel::attention_backward, compute, LaunchVia::launch_kernel, a.qkv.as<const float>(),
                    a.probs.as<const float>(), dattn.as<const float>(), dqkv.as<float>(), c.batch, c.dim);
    DeviceBuffer dnorm1 = activation(bd, "grad norm1");
    for (int part = 0; part < 3; ++part) {  // Q, K, V: interior pointers into the fused weight
      const size_t w_off = static_cast<size_t>(part) * c.dim * c.dim;
      const CUdeviceptr dy = offset_floats(dqkv.get(), static_cast<size_t>(part) * c.dim);
      input_grad(dy, 3 * c.dim, linear_params(*p.qkv_w, nullptr, w_off, 0, c.dim, c.dim), dnorm1.get(), part > 0);
    }
    adapter(b, LoraLayer::qkv, a.norm1, dqkv.get(), dnorm1);
    weight_grad(*p.qkv_w, *p.qkv_b, dqkv.get(), 3 * c.dim, a.norm1.get(), c.dim, c.dim, 3);
    dx = rmsnorm_backward_plus(compute, a.input, a.inv1, dnorm1, dmid, "grad input");
  }
  sink.embedding(model_.embedding(), tokens, dx, c.batch, c.dim, compute);
}

}  // namespace minifw
