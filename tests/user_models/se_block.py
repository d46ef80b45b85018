"""Squeeze-and-excitation blocks: the branch's channels are rescaled by a multiply with a
sigmoid gate (two 1x1 convs on the pooled branch) before the add; the projection is an
``nn.Sequential`` of a 1x1 conv and BatchNorm2d.

Input: one image batch ``x`` of shape (B, in_channels, 32, 32). Output: class logits
(B, num_classes).

Blocks 16 -> 32 (stride 2, projected) and 32 -> 32 (identity); the gate squeezes 32 channels
to 8 and back.
"""

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduction=4):
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // reduction, 1)
        self.expand = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        gate = x.mean((2, 3), keepdim=True)
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(gate))))
        return x * gate


class SEBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = SqueezeExcite(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return torch.relu(out + self.shortcut(x))


class SENet(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.blocks = nn.Sequential(SEBlock(16, 32, 2), SEBlock(32, 32))
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.fc(self.blocks(torch.relu(self.stem(x))).mean((2, 3)))


def build(num_classes=10, in_channels=3):
    return SENet(num_classes, in_channels)
