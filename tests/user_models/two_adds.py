"""A small vision transformer: each block adds twice, attention then MLP
(``x = self.res_scale1(x) + self.attn(...)``, PoolFormer's ``nn.Identity`` on the stream, then
``x = x + self.mlp(self.norm2(x))``); attention is ``nn.MultiheadAttention``. A learned
position embedding is added to the patches (an add that is not a shortcut).

Input: one image batch ``x`` of shape (B, in_channels, 32, 32) (a multiple of 8). Output:
class logits (B, num_classes).

Patches 8x8 embedded to 32 dimensions, 2 blocks with 4 heads, MLP 32 -> 64 -> 32.
"""

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.res_scale1 = nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = self.res_scale1(x) + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return x


class TinyViT(nn.Module):
    def __init__(self, num_classes=10, in_channels=3, image_size=32, patch=8, dim=32):
        super().__init__()
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, (image_size // patch) ** 2, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(Block(dim, 4, 2 * dim), Block(dim, 4, 2 * dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x.mean(1))


def build(num_classes=10, in_channels=3):
    return TinyViT(num_classes, in_channels)
