"""A Llama-style decoder in plain PyTorch (RMSNorm, rotary attention, SwiGLU),
shared by train.py, infer.py and lora.py.

Nothing here knows about neuzip: these are ordinary programs, run as they are
and under LD_PRELOAD=libneuzip.so, whose outputs must then be bit-identical.
Weights are initialised on the CPU from a fixed seed and then copied to the
device, which is how frameworks load checkpoints (host-to-device copies).
"""
import argparse
import dataclasses
import hashlib
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class Config:
    vocab: int
    dim: int
    layers: int
    heads: int
    hidden: int
    max_seq: int = 2048
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5


# Parameter counts (untied embedding and head): tiny 0.2M, 125m 134M,
# 350m 374M, 1b 1.21B.
SIZES = {
    "tiny": Config(vocab=512, dim=64, layers=2, heads=4, hidden=172, max_seq=256),
    "125m": Config(vocab=32000, dim=768, layers=12, heads=12, hidden=2048),
    "350m": Config(vocab=32000, dim=1024, layers=24, heads=16, hidden=2816),
    "1b": Config(vocab=32000, dim=2048, layers=16, heads=32, hidden=8192),
}


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # Normalise in fp32 (as Llama does), return in the input's dtype.
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.to(x.dtype) * self.weight


def rotary_tables(cfg, seq, device):
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.dim // cfg.heads, 2, device=device).float()
                                    / (cfg.dim // cfg.heads)))
    angles = torch.outer(torch.arange(seq, device=device).float(), inv)
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    # x: (batch, heads, seq, head_dim); rotate pairs (even, odd).
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return out.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.heads = cfg.heads
        self.wq = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def forward(self, x, cos, sin):
        b, s, d = x.shape
        split = lambda t: t.view(b, s, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.wq(x)), split(self.wk(x)), split(self.wv(x))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(y.transpose(1, 2).reshape(b, s, d))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.hidden, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.hidden, bias=False)
        self.w2 = nn.Linear(cfg.hidden, cfg.dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab, bias=False)

    def forward(self, tokens):
        cos, sin = rotary_tables(self.cfg, tokens.shape[1], tokens.device)
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(self.norm(x))


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def build(size, device, dtype, seed):
    """The model of `size`, initialised on the CPU from `seed`, then copied to `device`."""
    torch.manual_seed(seed)
    model = Llama(SIZES[size])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    return model.to(device=device, dtype=dtype)


def digest(tensors):
    """sha256 of the tensors' bytes, in order: equal only when bit-identical."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def model_digest(model):
    return digest(p for _, p in sorted(model.named_parameters()))


def random_tokens(cfg, batch, seq, seed, device):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab, (batch, seq), generator=g).to(device)


def pick_device(name):
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def make_deterministic():
    """Same inputs, same bits: the comparison with and without neuzip needs
    runs that are reproducible on their own first."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # The fused attention kernels' backward passes may accumulate with atomics
    # (run-to-run differences); the math path is plain matmuls and softmax.
    torch.backends.cuda.enable_flash_sdp(False)
    torch.backends.cuda.enable_mem_efficient_sdp(False)
    if hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)


def common_arguments(parser: argparse.ArgumentParser, default_size):
    parser.add_argument("--size", choices=sorted(SIZES), default=default_size,
                        help="model size (tiny runs on a CPU in seconds)")
    parser.add_argument("--tiny", action="store_const", const="tiny", dest="size",
                        help="same as --size tiny")
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu or cuda")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def setup(args):
    """Deterministic mode, the device, and the model of the common arguments."""
    make_deterministic()
    device = pick_device(args.device)
    return device, build(args.size, device, dtype_of(args.dtype), args.seed)


def dtype_of(name):
    return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]
