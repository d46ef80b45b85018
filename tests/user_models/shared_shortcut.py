"""A shortcut shared across scales, for which no plain twin can be made: the stride-2
projection ``proj`` is the shortcut of the first join (at 16x16) and also the input of the
next scale's ``block2`` (at 8x8). Removing that shortcut cannot remove the projection, which
the rest of the network still reads.

Input: one image batch ``x`` of shape (B, in_channels, 32, 32). Output: class logits
(B, num_classes), from both scales' pooled features concatenated.
"""

import torch
from torch import nn


def body(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(cout))


class SharedShortcutNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.proj = nn.Conv2d(16, 32, 1, 2, bias=False)
        self.block1 = body(16, 32, 2)
        self.block2 = body(32, 32, 2)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        shortcut = self.proj(x)
        h = torch.relu(self.block1(x) + shortcut)  # the join: proj is its shortcut
        g = torch.relu(self.block2(shortcut))  # ... and the next scale's input
        return self.fc(torch.cat([h.mean((2, 3)), g.mean((2, 3))], dim=1))


def build(num_classes=10, in_channels=3):
    return SharedShortcutNet(num_classes, in_channels)
