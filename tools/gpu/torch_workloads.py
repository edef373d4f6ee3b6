#!/usr/bin/env python3
"""PyTorch workloads for one GPU try, run the same way with and without
neuzip; one-try runs this script once per mode and compares the outputs.

    python3 torch_workloads.py --out results.jsonl [--only infer,train] [--size 350m]

Each workload writes one JSON line to --out as soon as it finishes (so a crash
loses only the workload it happened in): its outputs (digests, losses: equal
across modes exactly when bit-identical), step times, peak device memory
taken from NVML (physical memory in use: it sees what neuzip saves, torch's
allocator cannot) and from cuMemGetInfo (which neuzip lowers by the room it
keeps for staging), per phase for infer, torch's own peak for comparison,
and neuzip's counters (nz_stats) when the library is preloaded.

Workloads (most valuable first): infer (a Llama-style decoder from examples/,
weights copied from the host, bf16), train (8 AdamW steps), graph (CUDA-graph
capture and replay of the forward), hf (a transformers Llama from a config:
forward and greedy generation; 3 forwards, the first not timed), lora (4 peft LoRA steps,
the first not timed), lomo (8 steps
of SGD fused into backward: weights rewritten in place every step).
"""
import argparse
import ctypes
import json
import os
import sys
import threading
import time
import traceback

WORKLOADS = ["infer", "train", "graph", "hf", "lora", "lomo", "fork", "ipc", "moe"]


# ---- measurement ---------------------------------------------------------------

class Nvml:
    """Device memory in use as NVML sees it (libnvidia-ml, ctypes): physical
    memory, whatever cuMemGetInfo answers. Under neuzip cuMemGetInfo reports
    free memory less the room staging keeps (README: a cache sized from it
    leaves that room), so a peak taken from it overstates neuzip's memory by
    up to that room; NVML does not go through the hooked driver API."""

    class Memory(ctypes.Structure):
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

    def __init__(self, torch):
        self.handle, self.why = None, ""
        try:
            self.lib = ctypes.CDLL("libnvidia-ml.so.1")
            if self.lib.nvmlInit_v2() != 0:
                raise OSError("nvmlInit_v2 failed")
            handle = ctypes.c_void_p()
            uuid = getattr(torch.cuda.get_device_properties(0), "uuid", None)
            found = uuid is not None and self.lib.nvmlDeviceGetHandleByUUID(
                f"GPU-{uuid}".encode(), ctypes.byref(handle)) == 0
            if not found and self.lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(handle)) != 0:
                raise OSError("no NVML handle for device 0")
            self.handle = handle
        except (OSError, AttributeError) as e:
            self.why = str(e)

    def used(self):
        if self.handle is None:
            return None
        m = Nvml.Memory()
        return m.used if self.lib.nvmlDeviceGetMemoryInfo(self.handle, ctypes.byref(m)) == 0 else None


class DeviceMemorySampler:
    """Peak of (total - free) from cuMemGetInfo, and of NVML's used memory
    (Nvml: what neuzip really holds), sampled every `period` s in a thread;
    mark() records the peaks of a phase (load, forwards, generation).
    Paused around CUDA-graph capture: a driver call from another thread may
    invalidate a capture in progress."""

    def __init__(self, torch, period=0.002):
        self.torch, self.period = torch, period
        self.nvml = Nvml(torch)
        self.peak, self.peak_nvml, self.samples = 0, None, 0
        self.phases, self._phase_peak, self._phase_peak_nvml = {}, 0, None
        self._run = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def used(self):
        free, total = self.torch.cuda.mem_get_info()
        return total - free

    def used_nvml(self):
        return self.nvml.used()

    def _sample(self):
        used, nv = self.used(), self.used_nvml()
        self.peak, self._phase_peak = max(self.peak, used), max(self._phase_peak, used)
        if nv is not None:
            self.peak_nvml = nv if self.peak_nvml is None else max(self.peak_nvml, nv)
            self._phase_peak_nvml = nv if self._phase_peak_nvml is None else max(self._phase_peak_nvml, nv)

    def _loop(self):
        self.torch.cuda.set_device(0)
        while not self._stop.is_set():
            if not self._run.is_set():
                self._idle.set()
                self._run.wait(0.05)
                continue
            self._idle.clear()
            self._sample()
            self.samples += 1
            time.sleep(self.period)

    def start(self):
        self.peak, self.peak_nvml, self.phases = 0, None, {}
        self._phase_peak, self._phase_peak_nvml = 0, None
        self._sample()
        self._run.set()
        if not self._thread.is_alive():
            self._thread.start()

    def mark(self, phase):
        """The peaks since the last mark (or start), under `phase`."""
        self._sample()
        self.phases[phase] = {"cumemgetinfo": self._phase_peak, "nvml": self._phase_peak_nvml}
        self._phase_peak, self._phase_peak_nvml = 0, None

    def pause(self):
        self._run.clear()
        self._idle.wait(1.0)

    def resume(self):
        self._run.set()

    def stop(self):
        self.pause()
        self._sample()
        return self.peak


class HostOnlySampler:
    """--device cpu: no device memory to watch."""
    peak = samples = 0
    peak_nvml = None
    phases = {}

    def used(self):
        return 0

    def used_nvml(self):
        return None

    def mark(self, phase):
        pass

    def start(self):
        pass

    pause = resume = start

    def stop(self):
        return 0


class NzStats(ctypes.Structure):
    """include/neuzip/runtime.h, nz_runtime_stats."""
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "bytes_tagged", "bytes_compressible", "bytes_original_compressed", "bytes_compressed",
        "staging_bytes", "staging_bytes_peak", "staging_budget", "device_bytes_saved",
        "device_bytes_saved_peak", "faults", "decompressions", "recompressions", "drops",
        "prefetches", "launches_seen", "checksum_failures")]


def nz_stats():
    """neuzip's counters when libneuzip.so is preloaded, else why not."""
    try:
        fn = ctypes.CDLL(None).nz_stats
    except AttributeError:
        return {"available": False, "why": "libneuzip.so not preloaded"}
    out = NzStats()
    rc = fn(ctypes.byref(out), ctypes.c_size_t(ctypes.sizeof(out)))
    if rc != 0:
        return {"available": False, "why": f"nz_stats returned {rc} (runtime inactive?)"}
    return {"available": True, **{name: getattr(out, name) for name, _ in NzStats._fields_}}


def declare_parameters(torch, model):
    """With NZ_DECLARE_PARAMS=1 (one-try's neuzip_budget_declared): each
    parameter declared to neuzip (nz_tag with its dtype), as a framework hook
    calling neuzip.tag would; with NEUZIP_TAG_EXTENTS=1 a kernel's pointer
    into one then stages that parameter's pages only, not the rest of its
    caching-allocator segment. Returns the model."""
    if os.environ.get("NZ_DECLARE_PARAMS") != "1":
        return model
    try:
        fn = ctypes.CDLL(None).nz_tag
    except AttributeError:
        return model
    fn.argtypes = [ctypes.c_uint64, ctypes.c_size_t, ctypes.c_int]
    codes = {torch.bfloat16: 1, torch.float16: 2, torch.float32: 3}
    taken = refused = 0
    for p in model.parameters():
        size = p.numel() * p.element_size()
        if size == 0 or not p.is_cuda:
            continue
        if fn(p.data_ptr(), size, codes.get(p.dtype, 0)) == 0:
            taken += 1
        else:
            refused += 1
    print(f"torch_workloads: {taken} parameters declared to neuzip, {refused} refused", file=sys.stderr, flush=True)
    return model


# ---- workloads -------------------------------------------------------------------
# Each returns a dict: "outputs" (compared across modes), "step_ms" (timings).

def sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def workload_infer(torch, llama, infer, args, sampler):
    model = llama.build(args.size, args.device, torch.bfloat16, 0).eval()
    sync(torch, args.device)
    sampler.mark("load")
    prompt = llama.random_tokens(model.cfg, args.batch, 128, 1, args.device)
    logits, forward_ms = infer.forward(model, prompt, repeats=4)
    sync(torch, args.device)
    sampler.mark("forwards")
    after_forward = nz_stats()  # what the forwards alone did, apart from generation's
    generated, token_ms = infer.greedy(model, prompt[:, :64], args.tokens)
    sync(torch, args.device)
    sampler.mark("generation")
    result = {"outputs": {"logits": llama.digest([logits]), "tokens": llama.digest([generated]),
                          "weights": llama.model_digest(model)},
              "step_ms": forward_ms, "token_ms": token_ms, "parameters": llama.parameter_count(model),
              "nz_stats_after_forward": after_forward}
    if args.profile:
        result["profile"] = profile_token(torch, model, prompt[:, :64 + args.tokens])
    return result


def profile_token(torch, model, tokens):
    """torch.profiler (host activity only: no CUPTI beside the hooks) over one
    generation-sized forward: the operators whose host time grew under
    neuzip, printed to stderr and returned (top 25 by self host time)."""
    from torch.profiler import profile, ProfilerActivity
    with torch.no_grad():
        model(tokens)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(tokens)
            torch.cuda.synchronize()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:25]
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr, flush=True)
    return [{"op": e.key, "calls": e.count, "self_us": round(e.self_cpu_time_total, 1),
             "total_us": round(e.cpu_time_total, 1)} for e in rows]


def workload_train(torch, llama, train, args, sampler):
    model = llama.build(args.train_size, args.device, torch.bfloat16, 0)
    losses, step_ms = train.train(model, 8, 4, 256, 1e-4, 0, args.device)
    return {"outputs": {"losses": [float.hex(x) for x in losses], "weights": llama.model_digest(model)},
            "losses": losses, "step_ms": step_ms, "parameters": llama.parameter_count(model)}


def workload_lomo(torch, llama, train, args, sampler):
    """Fused-update training (examples/train.py --optimizer lomo): bf16
    weights rewritten in place every step, no optimizer state."""
    model = llama.build(args.train_size, args.device, torch.bfloat16, 0)
    losses, step_ms = train.train(model, 8, 4, 256, 1e-3, 0, args.device, optimizer="lomo")
    return {"outputs": {"losses": [float.hex(x) for x in losses], "weights": llama.model_digest(model)},
            "losses": losses, "step_ms": step_ms, "parameters": llama.parameter_count(model)}


def workload_graph(torch, llama, args, sampler):
    if not args.device.startswith("cuda"):
        return {"skipped": "CUDA graphs need a CUDA device"}
    model = llama.build(args.size, args.device, torch.bfloat16, 0).eval()
    static_in = llama.random_tokens(model.cfg, args.batch, 128, 1, args.device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        for _ in range(2):  # warm-up outside capture (cuBLAS handles, lazy loading)
            model(static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    sampler.pause()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out = model(static_in)
    sampler.resume()
    outs, step_ms = [], []
    for i in range(6):
        static_in.copy_(llama.random_tokens(model.cfg, args.batch, 128, 100 + i, args.device))
        sync(torch, args.device)
        start = time.perf_counter()
        graph.replay()
        sync(torch, args.device)
        step_ms.append((time.perf_counter() - start) * 1e3)
        outs.append(static_out.clone())
    with torch.no_grad():
        eager = model(static_in)
    static = graph_static_input(torch, llama, args)
    forked = graph_forked_stream(torch, llama, args)
    return {"outputs": {"replays": llama.digest(outs), "eager_equals_replay": bool(torch.equal(eager, outs[-1])),
                        **static, **forked},
            "step_ms": step_ms}


def graph_forked_stream(torch, llama, args):
    """A capture that forks onto a second stream and joins back (side streams
    inside torch.cuda.graph): the second stream's reads belong to the capture
    by its sequence id (docs/RUNTIME.md "Capture pins"; before, they were
    pinned for good). Replays, with other weights read eagerly in between,
    must equal eager."""
    g = torch.Generator().manual_seed(11)
    layers = []
    for _ in range(3):
        lin = torch.nn.Linear(2048, 2048, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(2048, 2048, generator=g) * 0.02)
        layers.append(lin.to(device=args.device, dtype=torch.bfloat16))
    a, b, other = layers
    x = torch.randn(64, 2048, generator=g).to(device=args.device, dtype=torch.bfloat16)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        a(x), b(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        origin = torch.cuda.current_stream()
        side.wait_stream(origin)  # the fork: `side` joins the capture
        ya = a(x)
        with torch.cuda.stream(side):
            yb = b(x)
        origin.wait_stream(side)  # the join
        y = ya + yb
    outs = []
    for _ in range(3):
        with torch.no_grad():
            other(x)  # eager work between replays
        graph.replay()
        sync(torch, args.device)
        outs.append(y.clone())
    with torch.no_grad():
        eager = a(x) + b(x)
    return {"forked_capture_replays": llama.digest(outs),
            "forked_capture_equals_eager": all(bool(torch.equal(eager, o)) for o in outs)}


def graph_static_input(torch, llama, args):
    """PyTorch's CUDA-graph loop with a large static input made on the device
    and filled from each host batch after the capture: neuzip tags the buffer
    only at the first host copy (docs/RUNTIME.md "Memory a graph reads that is
    tagged only later"); under a budget the replays must still read it."""
    g = torch.Generator().manual_seed(7)
    lin = torch.nn.Linear(1024, 1024, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(1024, 1024, generator=g) * 0.02)
    lin = lin.to(device=args.device, dtype=torch.bfloat16)
    static_x = torch.zeros(4096, 1024, device=args.device, dtype=torch.bfloat16)  # 8 MiB, made on the device
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        lin(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_y = lin(static_x)
    outs, equal = [], True
    for i in range(4):
        batch = torch.randn(4096, 1024, generator=g).to(torch.bfloat16).pin_memory()
        static_x.copy_(batch, non_blocking=True)
        graph.replay()
        sync(torch, args.device)
        outs.append(static_y.clone())
        with torch.no_grad():
            equal = equal and bool(torch.equal(lin(batch.to(args.device)), outs[-1]))
    return {"static_input_replays": llama.digest(outs), "static_input_equals_eager": equal}


def hf_model(torch, size, device):
    import transformers
    dims = {"tiny": (64, 2, 4, 172, 512), "125m": (768, 12, 12, 2048, 32000),
            "350m": (1024, 24, 16, 2816, 32000), "1b": (2048, 16, 32, 8192, 32000)}[size]
    config = transformers.LlamaConfig(hidden_size=dims[0], num_hidden_layers=dims[1], num_attention_heads=dims[2],
                                      num_key_value_heads=dims[2], intermediate_size=dims[3], vocab_size=dims[4],
                                      max_position_embeddings=1024)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)  # initialised on the CPU from the seed
    return model.to(device=device, dtype=torch.bfloat16).eval(), transformers.__version__


def workload_hf(torch, llama, args, sampler):
    model, version = hf_model(torch, args.hf_size, args.device)
    prompt = llama.random_tokens(llama.SIZES["125m"], args.batch, 64, 2, args.device) % model.config.vocab_size
    with torch.no_grad():
        forward_ms = []
        for _ in range(3):  # the first forward stages what neuzip compressed: steady state after it
            sync(torch, args.device)
            start = time.perf_counter()
            logits = model(prompt).logits
            sync(torch, args.device)
            forward_ms.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        generated = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=16,
                                   do_sample=False, pad_token_id=0)
        sync(torch, args.device)
        generate_ms = (time.perf_counter() - start) * 1e3
    return {"outputs": {"logits": llama.digest([logits]), "generated": llama.digest([generated])},
            "step_ms": forward_ms[1:], "first_forward_ms": forward_ms[0], "generate_ms": generate_ms,
            "transformers": version}


def workload_lora(torch, llama, train, lora, args, sampler):
    base = llama.build(args.train_size, args.device, torch.bfloat16, 0)
    model = lora.lora_model(base, 8)
    if model is None:
        return {"skipped": "peft is not installed"}
    model.to(torch.bfloat16)
    model.cfg = base.cfg
    losses, step_ms = train.train(model, 4, 4, 128, 1e-3, 0, args.device)
    return {"outputs": {"losses": [float.hex(x) for x in losses], "adapters": lora.adapter_digest(model),
                        "base": lora.base_digest(model)},
            "losses": losses, "step_ms": step_ms[1:], "first_step_ms": step_ms[0]}


def workload_moe(torch, llama, args, sampler):
    """Expert weights read by torch._grouped_mm, PyTorch's MoE path: a setup
    kernel writes each expert's operand pointers on the device and the
    grouped GEMM reads the experts through them, its parameters naming none
    (RESULTS §4.9.32: without trailing uses, an eviction between the two
    unmapped the experts). Six layers of 8 experts, 64 MiB each: past the
    256 MiB budget, so staging evicts every step."""
    if not hasattr(torch, "_grouped_mm"):
        return {"skipped": "torch._grouped_mm is missing"}
    if not args.device.startswith("cuda") or torch.cuda.get_device_capability() < (9, 0):
        return {"skipped": "torch._grouped_mm needs an sm90 GPU"}
    experts, k, n, layers, tokens = 8, 2048, 2048, 6, 1024
    g = torch.Generator(device="cpu").manual_seed(11)
    # (E, N, K) contiguous, read as (E, K, N): the layout the CUTLASS path wants.
    weights = [(torch.randn(experts, n, k, generator=g) * 0.02).to(torch.bfloat16).to(args.device)
               for _ in range(layers)]
    x = torch.randn(tokens, k, generator=g).to(torch.bfloat16).to(args.device)
    offs = torch.arange(tokens // experts, tokens + 1, tokens // experts, dtype=torch.int32, device=args.device)
    outs, step_ms = [], []
    for _ in range(3):
        start = time.perf_counter()
        h = x
        for w in weights:
            h = torch._grouped_mm(h, w.transpose(-2, -1), offs=offs)
        sync(torch, args.device)
        step_ms.append((time.perf_counter() - start) * 1e3)
        outs.append(h)
    return {"outputs": {"moe": llama.digest(outs)}, "step_ms": step_ms[1:], "first_step_ms": step_ms[0]}


# ---- driver ----------------------------------------------------------------------

def workload_fork(torch, llama, args, sampler):
    """Processes forked after CUDA started, from a process whose weights
    neuzip may hold compressed (docs/RESULTS.md §4.9.28): a DataLoader with
    two forked workers feeding forwards, then a bare os.fork() child that asks
    the driver (CUDA_ERROR_NOT_INITIALIZED expected, as without neuzip) and
    leaves through libc's exit(), so neuzip's atexit handlers run there.
    Hangs are bounded: the loader's timeout, a kill of the child after 60 s."""
    import ctypes
    import signal
    model = llama.build(args.train_size, args.device, torch.bfloat16, 0).eval()
    vocab = model.cfg.vocab

    class Tokens(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):  # in a forked worker: CPU only
            return torch.randint(0, vocab, (128,), generator=torch.Generator().manual_seed(i))

    loader = torch.utils.data.DataLoader(Tokens(), batch_size=2, num_workers=2, multiprocessing_context="fork",
                                         timeout=120)
    logits = []
    with torch.no_grad():
        for batch in loader:
            logits.append(model(batch.to(args.device)))
    sync(torch, args.device)
    sampler.mark("loader")
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            cuda = ctypes.CDLL("libcuda.so.1")
            count = ctypes.c_int(0)
            answers = (cuda.cuInit(0), cuda.cuDeviceGetCount(ctypes.byref(count)))
            code = 0 if answers == (3, 3) else 10 + min(answers[0], 40) if answers[0] != 3 else 60 + min(answers[1], 40)
        finally:
            ctypes.CDLL(None).exit(code)
    deadline, status = time.monotonic() + 60, None
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = f"exit {os.waitstatus_to_exitcode(raw)}"
        elif time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = "hung (killed after 60 s)"
        else:
            time.sleep(0.05)
    with torch.no_grad():
        after = model(torch.randint(0, vocab, (2, 128), generator=torch.Generator().manual_seed(99)).to(args.device))
    sync(torch, args.device)
    return {"outputs": {"logits": llama.digest(logits + [after]), "fork_child": status,
                        "weights": llama.model_digest(model)},
            "parameters": llama.parameter_count(model)}


def ipc_consumer(requests, replies):
    """The other process of workload_ipc (spawned: a fresh interpreter that
    inherits LD_PRELOAD). Receives CUDA tensors by CUDA IPC, sums them,
    doubles the first one in place, and answers."""
    import torch
    tensors = requests.get(timeout=300)
    sums = {k: float(v.float().sum().item()) for k, v in sorted(tensors.items())}
    tensors[sorted(tensors)[0]].mul_(2)  # written here, read by the producer
    torch.cuda.synchronize()
    replies.put(sums)
    requests.get(timeout=300)  # the producer has what it needs: let go of the tensors
    del tensors


def workload_ipc(torch, llama, args, sampler):
    """Weights shared with another process by CUDA IPC, as torch.multiprocessing
    sends CUDA tensors (and RLHF trainers hand weights to an inference engine):
    a spawned consumer sums every parameter and doubles the first in place;
    the producer's next forward reads that write. Under neuzip the shared
    segments leave compression for good (docs/RESULTS.md §4.9.29)."""
    import torch.multiprocessing as mp
    model = llama.build(args.train_size, args.device, torch.bfloat16, 0).eval()
    vocab = model.cfg.vocab
    params = {n: t.detach() for n, t in model.named_parameters()}
    local = {k: float(v.float().sum().item()) for k, v in sorted(params.items())}
    context = mp.get_context("spawn")
    requests, replies = context.Queue(), context.Queue()
    consumer = context.Process(target=ipc_consumer, args=(requests, replies))
    consumer.start()
    sampler.mark("spawned")
    requests.put(params)
    try:
        sums = replies.get(timeout=300)
    finally:
        requests.put("done")
        consumer.join(120)
        if consumer.exitcode is None:
            consumer.kill()
            consumer.join()
    with torch.no_grad():
        after = model(torch.randint(0, vocab, (2, 128), generator=torch.Generator().manual_seed(98)).to(args.device))
    sync(torch, args.device)
    return {"outputs": {"logits": llama.digest([after]), "weights": llama.model_digest(model),
                        "sums_equal": sums == local, "consumer_exit": consumer.exitcode},
            "parameters": llama.parameter_count(model)}


def run_one(name, torch, modules, args, sampler):
    llama, infer, train, lora = modules
    calls = {
        "infer": lambda: workload_infer(torch, llama, infer, args, sampler),
        "train": lambda: workload_train(torch, llama, train, args, sampler),
        "graph": lambda: workload_graph(torch, llama, args, sampler),
        "hf": lambda: workload_hf(torch, llama, args, sampler),
        "lora": lambda: workload_lora(torch, llama, train, lora, args, sampler),
        "lomo": lambda: workload_lomo(torch, llama, train, args, sampler),
        "fork": lambda: workload_fork(torch, llama, args, sampler),
        "ipc": lambda: workload_ipc(torch, llama, args, sampler),
        "moe": lambda: workload_moe(torch, llama, args, sampler),
    }
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    baseline, baseline_nvml = sampler.used(), sampler.used_nvml()
    sampler.start()
    start = time.perf_counter()
    try:
        result = calls[name]()
        result["ok"] = True
    except Exception as e:  # reported, and the next workload still runs
        result = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:],
                  "out_of_memory": "OutOfMemoryError" in type(e).__name__ or "out of memory" in str(e)}
    sync(torch, args.device)
    peak = sampler.stop()
    result.update({
        "workload": name, "seconds": round(time.perf_counter() - start, 3),
        "device_used_baseline": baseline, "device_used_peak": peak, "device_peak_above_baseline": peak - baseline,
        "torch_max_allocated": torch.cuda.max_memory_allocated() if cuda else 0,
        "torch_max_reserved": torch.cuda.max_memory_reserved() if cuda else 0,
        "memory_samples": sampler.samples, "nz_stats": nz_stats(),
    })
    if baseline_nvml is not None and sampler.peak_nvml is not None:
        result.update({"device_used_baseline_nvml": baseline_nvml, "device_used_peak_nvml": sampler.peak_nvml,
                       "device_peak_above_baseline_nvml": sampler.peak_nvml - baseline_nvml})
    if sampler.phases:
        result["peak_by_phase"] = {k: {m: (v - (baseline_nvml if m == "nvml" else baseline)) if v is not None else None
                                       for m, v in p.items()} for k, p in sampler.phases.items()}
    if cuda:
        torch.cuda.empty_cache()
    return result


def hold_all_but(torch, leave_bytes):
    """Allocates device memory until `leave_bytes` stay free: the physical
    memory of a smaller GPU. Nothing is compressed yet (no weights loaded), so
    cuMemGetInfo's figure is the driver's under neuzip too. The filler is one
    tensor, never written: neuzip never tags it (no host copy), so it stays
    resident and counts as memory in use. Returns (tensor or None, record)."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    want = free - leave_bytes
    record = {"free_before": free, "total": total, "leave": leave_bytes, "held": 0}
    if want <= 0:
        record["why"] = "less than that is free already"
        return None, record
    want -= want % (2 << 20)
    try:
        filler = torch.empty(want, dtype=torch.uint8, device="cuda")
    except RuntimeError as e:  # torch.OutOfMemoryError derives from it
        record["why"] = f"{type(e).__name__}: {e}"[:300]
        return None, record
    torch.cuda.synchronize()
    record["held"] = want
    record["free_after"] = torch.cuda.mem_get_info()[0]
    return filler, record


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON lines file, appended to")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated subset, in order")
    parser.add_argument("--examples", default=os.path.join(here, "..", "..", "examples"),
                        help="folder of examples/llama.py, train.py, infer.py, lora.py")
    parser.add_argument("--size", default="350m", help="model size of infer and graph")
    parser.add_argument("--train-size", default="125m", help="model size of train and lora")
    parser.add_argument("--hf-size", default="125m", help="size of the transformers model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: try the workloads here (no memory figures, no graphs)")
    parser.add_argument("--label", default="", help="recorded in each line (the mode)")
    parser.add_argument("--tokens", type=int, default=8, help="tokens infer generates")
    parser.add_argument("--no-sampler", action="store_true",
                        help="no memory-sampling thread (its cuMemGetInfo calls and GIL use left out: diagnosis)")
    parser.add_argument("--profile", action="store_true", help="infer: torch.profiler over one generation forward")
    parser.add_argument("--leave-free-mib", type=int, default=0,
                        help="a smaller GPU: hold all device memory but this many MiB in a filler before the "
                             "workloads (a run that needs more must run out of memory without neuzip)")
    args = parser.parse_args(argv)
    wanted = [w for w in args.only.split(",") if w]
    unknown = [w for w in wanted if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; known: {WORKLOADS}")

    try:
        import torch
    except ImportError:
        print("torch_workloads: torch is not installed; skipped", file=sys.stderr)
        return 3
    if args.device == "cuda" and not torch.cuda.is_available():
        print("torch_workloads: no CUDA device visible to torch; skipped", file=sys.stderr)
        return 3
    sys.path.insert(0, os.path.abspath(args.examples))
    import llama, infer, train, lora  # noqa: E401 (examples/, after the path is known)
    llama.make_deterministic()
    if os.environ.get("NZ_DECLARE_PARAMS") == "1":
        build = llama.build
        llama.build = lambda *a, **k: declare_parameters(torch, build(*a, **k))
    sampler = DeviceMemorySampler(torch) if args.device == "cuda" and not args.no_sampler else HostOnlySampler()
    header = {"workload": "_process", "label": args.label, "torch": torch.__version__, "cuda": torch.version.cuda,
              "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu", "pid": os.getpid(),
              "ld_preload": os.environ.get("LD_PRELOAD", ""), "neuzip": os.environ.get("NEUZIP", "")}
    filler = None
    if args.leave_free_mib > 0 and args.device == "cuda":
        filler, header["filler"] = hold_all_but(torch, args.leave_free_mib << 20)
    with open(args.out, "a") as out:
        out.write(json.dumps(header) + "\n")
        out.flush()
        for name in wanted:
            print(f"torch_workloads: {name} ...", file=sys.stderr, flush=True)
            result = run_one(name, torch, (llama, infer, train, lora), args, sampler)
            result["label"] = args.label
            out.write(json.dumps(result) + "\n")
            out.flush()
            print(f"torch_workloads: {name} {'ok' if result.get('ok') else 'FAILED'} in {result['seconds']} s",
                  file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
