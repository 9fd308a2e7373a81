#!/usr/bin/python3
"""PyTorch reference for `npm run bench`: nanoGPT's GPT and training step.

The model is nanoGPT's model.py with bias=False (its manual attention path:
torch < 2.0 has no scaled_dot_product_attention), AdamW with betas 0.9/0.99,
eps 1e-8, weight decay 0.1 on the 2-D weights only, and global-norm clipping
at 1.0 -- the step qlr's TfjsModel takes. Prints one JSON object:
{"torch": version, "blas": [loaded BLAS libraries], "results": [{"threads", "train_tokens_per_s", "eval_tokens_per_s"}]}.

Usage: torch_gpt.py '{"n_layer":4,"n_head":4,"n_embd":128,"block_size":64,
  "batch_size":12,"vocab_size":65,"dropout":0,"steps":10,"warmup":3,
  "eval_steps":5,"threads":[1,2]}'
"""
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
from torch.nn import functional as F


class LayerNorm(nn.Module):
    """LayerNorm with a gain and no bias (bias=False)."""

    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_attn = nn.Linear(c["n_embd"], 3 * c["n_embd"], bias=False)
        self.c_proj = nn.Linear(c["n_embd"], c["n_embd"], bias=False)
        self.attn_dropout = nn.Dropout(c["dropout"])
        self.resid_dropout = nn.Dropout(c["dropout"])
        self.n_head = c["n_head"]
        t = c["block_size"]
        self.register_buffer("bias", torch.tril(torch.ones(t, t)).view(1, 1, t, t))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        hs = C // self.n_head
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c["n_embd"], 4 * c["n_embd"], bias=False)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * c["n_embd"], c["n_embd"], bias=False)
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = LayerNorm(c["n_embd"])
        self.attn = CausalSelfAttention(c)
        self.ln_2 = LayerNorm(c["n_embd"])
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(c["vocab_size"], c["n_embd"]),
                wpe=nn.Embedding(c["block_size"], c["n_embd"]),
                drop=nn.Dropout(c["dropout"]),
                h=nn.ModuleList([Block(c) for _ in range(c["n_layer"])]),
                ln_f=LayerNorm(c["n_embd"]),
            )
        )
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c["n_layer"]))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        _, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def optimizer(self, lr):
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), eps=1e-8)


def measure(c, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(1337)
    model = GPT(c)
    opt = model.optimizer(1e-3)
    B, T, V = c["batch_size"], c["block_size"], c["vocab_size"]
    batch = lambda: (torch.randint(V, (B, T)), torch.randint(V, (B, T)))
    tokens = B * T

    model.train()
    times = []
    for _ in range(c["warmup"] + c["steps"]):
        x, y = batch()
        start = time.perf_counter()
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)

    model.eval()
    evals = []
    with torch.no_grad():
        for _ in range(1 + c["eval_steps"]):
            x, y = batch()
            start = time.perf_counter()
            model(x, y).item()
            evals.append(time.perf_counter() - start)

    return {
        "threads": threads,
        "train_tokens_per_s": tokens / statistics.median(times[c["warmup"]:]),
        "eval_tokens_per_s": tokens / statistics.median(evals[1:]),
        "train_steps": c["steps"],
    }


def blas_libraries():
    """The BLAS shared libraries loaded: Debian's torch uses whichever libblas.so.3 the alternatives pick."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.lower()}
    return sorted(paths)


def main():
    c = json.loads(sys.argv[1])
    results = [measure(c, n) for n in c["threads"]]
    print(json.dumps({"torch": torch.__version__, "blas": blas_libraries(), "results": results}))


if __name__ == "__main__":
    main()
