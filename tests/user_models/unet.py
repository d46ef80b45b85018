"""A small U-Net for segmentation whose encoder and decoder stages are residual blocks with a
projection shortcut (a 1x1 ``nn.Conv2d`` wherever the channels change), and whose decoder
concatenates the encoder's features (``torch.cat``: long skips, not residual shortcuts).

Input: one image batch ``x`` of shape (B, in_channels, 64, 64) (a multiple of 4). Output:
per-pixel logits (B, out_channels, 64, 64) -- not a classifier: there is no ``num_classes``.

Channels: enc1 3 -> 16 (64x64), enc2 16 -> 32 (32x32), middle 32 -> 64 (16x16), up to 32
and concatenated with enc2 (64 channels) -> dec2 64 -> 32, up to 16 and concatenated with enc1
(32 channels) -> dec1 32 -> 16, a 1x1 head to out_channels.
"""

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()

    def forward(self, x):
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + self.skip(x))


class UNet(nn.Module):
    def __init__(self, in_channels=3, out_channels=2):
        super().__init__()
        self.enc1 = ResidualBlock(in_channels, 16)
        self.enc2 = ResidualBlock(16, 32)
        self.middle = ResidualBlock(32, 64)
        self.up2 = nn.ConvTranspose2d(64, 32, 2, stride=2)
        self.dec2 = ResidualBlock(64, 32)
        self.up1 = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec1 = ResidualBlock(32, 16)
        self.head = nn.Conv2d(16, out_channels, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.middle(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


def build(in_channels=3, out_channels=2):
    return UNet(in_channels, out_channels)
