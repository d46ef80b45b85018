"""A tiny text transformer taking token ids and an attention mask, as a Hugging Face encoder
does: its own attention (one ``qkv`` linear, the mask applied with ``masked_fill``), pre-norm
blocks with two residual adds each, and a classifier over the masked mean of the tokens.

Inputs (keyword): ``input_ids`` (B, T) int64 in [0, vocab_size), ``attention_mask`` (B, T)
bool, True for real tokens. On the command line:
``--input input_ids=2x16:int64[0,1000) --input attention_mask=2x16:bool``.
Output: class logits (B, num_classes).

vocab_size 1000, 16 positions at most, width 32, 4 heads, 2 blocks, MLP 32 -> 128 -> 32.
"""

import torch
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(
            2, 0, 3, 1, 4).unbind(0)
        scores = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        # finite, so that a row of padding only (an all-False mask) stays a number
        scores = scores.masked_fill(~mask[:, None, None, :], -1e9)
        out = scores.softmax(-1) @ v
        return self.out(out.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, mask):
        x = x + self.attention(self.ln1(x), mask)
        x = x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))
        return x


class TinyTransformer(nn.Module):
    def __init__(self, num_classes=2, vocab_size=1000, max_len=16, dim=32, heads=4, depth=2):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Embedding(max_len, dim)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, 4 * dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, input_ids, attention_mask):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.tokens(input_ids) + self.positions(positions)
        for layer in self.layers:
            x = layer(x, attention_mask)
        x = self.norm(x)
        weights = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self.classifier(pooled)


def build(num_classes=2):
    return TinyTransformer(num_classes)
