#!/usr/bin/env python3
"""Batched inference with a Llama-style decoder: one forward pass over a batch
of prompts, then greedy generation, bf16, fixed seed.

    python3 examples/infer.py --tiny            # CPU, seconds
    python3 examples/infer.py --size 1b --batch 16

Prints the time per forward and per generated token, and digests of the
logits and of the generated tokens.
"""
import argparse
import sys
import time

import torch

import llama


def synchronize(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def forward(model, tokens, repeats=1):
    """Logits of the last forward and the milliseconds of each."""
    times = []
    for _ in range(repeats):
        synchronize(tokens.device)
        start = time.perf_counter()
        logits = model(tokens)
        synchronize(tokens.device)
        times.append((time.perf_counter() - start) * 1e3)
    return logits, times


@torch.no_grad()
def greedy(model, prompt, new_tokens):
    """Greedy continuation (no KV cache: the whole sequence each step, which
    is the simplest thing that is exactly reproducible)."""
    tokens = prompt
    times = []
    for _ in range(new_tokens):
        synchronize(prompt.device)
        start = time.perf_counter()
        nxt = model(tokens)[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, nxt], dim=1)
        synchronize(prompt.device)
        times.append((time.perf_counter() - start) * 1e3)
    return tokens[:, prompt.shape[1]:], times


def main(argv=None):
    parser = llama.common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]), "125m")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128, help="prompt length")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes")
    args = parser.parse_args(argv)
    device, model = llama.setup(args)
    model.eval()
    print(f"infer: {args.size} ({llama.parameter_count(model) / 1e6:.1f}M parameters, {args.dtype}) on {device}")
    seq = min(args.seq, model.cfg.max_seq - args.new_tokens)
    prompt = llama.random_tokens(model.cfg, args.batch, seq, args.seed + 1, device)
    logits, forward_ms = forward(model, prompt, args.repeats)
    print(f"forward batch {args.batch} x {seq}: {min(forward_ms):.1f} ms (best of {args.repeats})")
    generated, token_ms = greedy(model, prompt, args.new_tokens)
    print(f"greedy {args.new_tokens} tokens: {sum(token_ms) / max(1, len(token_ms)):.1f} ms per token")
    print(f"first row: {generated[0].tolist()}")
    print(f"logits digest {llama.digest([logits])}")
    print(f"digest {llama.digest([generated])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
