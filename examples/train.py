#!/usr/bin/env python3
"""Train a Llama-style decoder for a few steps: bf16 weights, AdamW, fixed seed.

    python3 examples/train.py --tiny            # CPU, seconds
    python3 examples/train.py --size 1b         # a GPU, 1.2B parameters

Prints one line per step (loss, milliseconds) and a digest of the final
weights: two runs agree bit for bit exactly when the digests are equal.
"""
import argparse
import sys
import time

import torch
import torch.nn.functional as F

import llama


def synchronize(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def train(model, steps, batch, seq, lr, seed, device, on_step=None):
    """`steps` AdamW steps on next-token prediction over seeded random tokens.
    Returns the losses (floats) and the milliseconds of each step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    losses, step_ms = [], []
    for step in range(steps):
        tokens = llama.random_tokens(model.cfg, batch, seq + 1, seed * 1000 + step, device)
        synchronize(device)
        start = time.perf_counter()
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, model.cfg.vocab), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())  # waits for the step
        step_ms.append((time.perf_counter() - start) * 1e3)
        if on_step:
            on_step(step, losses[-1], step_ms[-1])
    return losses, step_ms


def training_arguments(parser, steps, seq, lr):
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=seq)
    parser.add_argument("--lr", type=float, default=lr)
    return parser


def print_step(step, loss, ms):
    print(f"step {step} loss {loss:.6f} ({ms:.1f} ms)", flush=True)


def main(argv=None):
    parser = llama.common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]), "125m")
    args = training_arguments(parser, steps=8, seq=256, lr=1e-4).parse_args(argv)
    device, model = llama.setup(args)
    print(f"train: {args.size} ({llama.parameter_count(model) / 1e6:.1f}M parameters, {args.dtype}) on {device}")
    train(model, args.steps, args.batch, min(args.seq, model.cfg.max_seq - 1), args.lr, args.seed, device,
          on_step=print_step)
    print(f"digest {llama.model_digest(model)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
