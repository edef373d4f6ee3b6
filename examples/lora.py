#!/usr/bin/env python3
"""LoRA fine-tuning of a frozen Llama-style decoder with peft: only the
low-rank adapters on the attention projections train.

    python3 examples/lora.py --tiny

Prints the losses, a digest of the adapters and one of the frozen base
(which must not change). Without peft it says so in one line and exits 0.
"""
import argparse
import sys


import llama
import train as train_example


def lora_model(base, rank):
    """The base wrapped by peft, or None when peft is not installed."""
    try:
        import peft
    except ImportError:
        return None
    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=["wq", "wv"])
    return peft.get_peft_model(base, config)


def adapter_digest(model):
    return llama.digest(p for n, p in sorted(model.named_parameters()) if "lora_" in n)


def base_digest(model):
    return llama.digest(p for n, p in sorted(model.named_parameters()) if "lora_" not in n)


def main(argv=None):
    parser = llama.common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]), "125m")
    parser.add_argument("--rank", type=int, default=8)
    args = train_example.training_arguments(parser, steps=4, seq=128, lr=1e-3).parse_args(argv)
    device, base = llama.setup(args)
    model = lora_model(base, args.rank)
    if model is None:
        print("lora: peft is not installed; skipped")
        return 0
    # peft's adapters start in fp32 and with a fixed init; keep them in the
    # model's dtype so the whole step runs in one precision.
    model.to(llama.dtype_of(args.dtype))
    base_before = base_digest(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"lora: {args.size} base, rank {args.rank}: {trainable} trainable parameters on {device}")
    model.cfg = base.cfg  # train() reads the vocabulary from the model
    train_example.train(model, args.steps, args.batch, min(args.seq, base.cfg.max_seq - 1), args.lr, args.seed, device,
                        on_step=train_example.print_step)
    if base_digest(model) != base_before:
        print("lora: the frozen base changed", file=sys.stderr)
        return 1
    print(f"base digest {base_before}")
    print(f"digest {adapter_digest(model)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
