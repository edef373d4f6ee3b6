#!/usr/bin/env python3
"""Train a Llama-style decoder for a few steps: bf16 weights, AdamW, fixed seed.

    python3 examples/train.py --tiny            # CPU, seconds
    python3 examples/train.py --size 1b         # a GPU, 1.2B parameters
    python3 examples/train.py --optimizer lomo  # SGD fused into backward (LOMO)
    torchrun --nproc-per-node 1 examples/train.py --dist ddp    # DistributedDataParallel (NCCL)
    torchrun --nproc-per-node 1 examples/train.py --dist fsdp   # FullyShardedDataParallel (NCCL)

Prints one line per step (loss, milliseconds) and a digest of the final
weights: two runs agree bit for bit exactly when the digests are equal.
"""
import argparse
import contextlib
import os
import sys
import time

import torch
import torch.nn.functional as F

import llama


def synchronize(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def fuse_sgd_into_backward(model, lr):
    """LOMO-style fused update: each parameter is updated in place by plain
    SGD as soon as its gradient is complete, and the gradient is freed at
    once, so neither optimizer state nor a full set of gradients ever exists
    (the weights are rewritten every step). Returns the hook handles."""
    def update(p):
        with torch.no_grad():
            p.add_(p.grad, alpha=-lr)
        p.grad = None
    return [p.register_post_accumulate_grad_hook(update) for p in model.parameters() if p.requires_grad]


def train(model, steps, batch, seq, lr, seed, device, on_step=None, optimizer="adamw"):
    """`steps` steps on next-token prediction over seeded random tokens, with
    AdamW or, for optimizer="lomo", SGD fused into backward.
    Returns the losses (floats) and the milliseconds of each step."""
    if optimizer == "lomo":
        hooks = fuse_sgd_into_backward(model, lr)
        optimizer = None
    else:
        hooks = []
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    losses, step_ms = [], []
    for step in range(steps):
        tokens = llama.random_tokens(model.cfg, batch, seq + 1, seed * 1000 + step, device)
        synchronize(device)
        start = time.perf_counter()
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, model.cfg.vocab), tokens[:, 1:].reshape(-1))
        if optimizer:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if optimizer:
            optimizer.step()
        losses.append(loss.item())  # waits for the step
        step_ms.append((time.perf_counter() - start) * 1e3)
        if on_step:
            on_step(step, losses[-1], step_ms[-1])
    for h in hooks:
        h.remove()
    return losses, step_ms


def training_arguments(parser, steps, seq, lr):
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=seq)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--optimizer", choices=["adamw", "lomo"], default="adamw",
                        help="lomo: SGD fused into backward, no optimizer state, gradients freed at once")
    return parser


def print_step(step, loss, ms):
    print(f"step {step} loss {loss:.6f} ({ms:.1f} ms)", flush=True)


def distribute(args):
    """--dist ddp|fsdp (under torchrun): the process group over NCCL (gloo on a
    CPU) and the wrapped model, as multi-GPU training scripts do. DDP
    broadcasts the parameters from rank 0 when it wraps the model and
    all-reduces the gradients in backward; FSDP is given the model on the
    CPU, then the checkpoint is loaded into the wrapped model, so the flat
    parameter shards are filled by host-to-device copies; then FSDP
    all-gathers and reduce-scatters.
    Returns (device, model to train, model for the digest, a context in which
    the full parameters can be read)."""
    import torch.distributed as dist

    device = llama.pick_device(args.device)
    cuda = str(device).startswith("cuda")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    llama.make_deterministic()
    if args.dist == "ddp":
        from torch.nn.parallel import DistributedDataParallel
        model = llama.build(args.size, device, llama.dtype_of(args.dtype), args.seed)
        wrapped = DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)
        wrapped.cfg = model.cfg
        return device, wrapped, model, contextlib.nullcontext
    from torch.distributed.fsdp import FullyShardedDataParallel
    model = llama.build(args.size, "cpu", llama.dtype_of(args.dtype), args.seed)
    checkpoint = {k: v.clone() for k, v in model.state_dict().items()}
    wrapped = FullyShardedDataParallel(model, device_id=local_rank if cuda else None, use_orig_params=True)
    wrapped.cfg = model.cfg
    # The checkpoint loaded into the wrapped model (the usual order for
    # sharded training): host-to-device copies fill the flat parameters,
    # which FSDP otherwise builds on the device with torch.cat.
    wrapped.load_state_dict(checkpoint)
    return device, wrapped, model, lambda: FullyShardedDataParallel.summon_full_params(wrapped)


def main(argv=None):
    parser = llama.common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]), "125m")
    parser.add_argument("--dist", choices=["none", "ddp", "fsdp"], default="none",
                        help="data parallel over NCCL; run under torchrun")
    args = training_arguments(parser, steps=8, seq=256, lr=1e-4).parse_args(argv)
    if args.dist == "none":
        device, model = llama.setup(args)
        trained, full_params = model, contextlib.nullcontext
    else:
        device, trained, model, full_params = distribute(args)
    print(f"train: {args.size} ({llama.parameter_count(model) / 1e6:.1f}M parameters, {args.dtype}) on {device}"
          + ("" if args.dist == "none" else f", {args.dist}"))
    train(trained, args.steps, args.batch, min(args.seq, model.cfg.max_seq - 1), args.lr, args.seed, device,
          on_step=print_step, optimizer=args.optimizer)
    with full_params():
        print(f"digest {llama.model_digest(model)}")
    if args.dist == "ddp":
        exchange_parameters(model)
    if args.dist != "none":
        import torch.distributed as dist
        dist.destroy_process_group()
    return 0


def exchange_parameters(model):
    """An expert-parallel style exchange: all_to_all_single of every
    parameter with equal splits (NCCL's ncclAlltoAll since NCCL 2.28) into a
    fresh buffer, and its digest. Under neuzip the parameters may be held
    compressed; the exchange must read them whole. With one rank the output
    is the input."""
    import torch.distributed as dist

    received = []
    for _, p in sorted(model.named_parameters()):
        flat = p.detach().reshape(-1)
        whole = flat.numel() - flat.numel() % dist.get_world_size()
        out = torch.empty_like(flat[:whole])
        dist.all_to_all_single(out, flat[:whole].contiguous())
        received.append(out)
    print(f"digest all_to_all {llama.digest(received)}")


if __name__ == "__main__":
    sys.exit(main())
