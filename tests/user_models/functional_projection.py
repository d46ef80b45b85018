"""Blocks whose projection shortcut is a bare ``nn.Parameter`` applied with ``F.conv2d``
(no module holds it), and whose body calls its layers functionally too.

Input: one image batch ``x`` of shape (B, in_channels, 32, 32). Output: class logits
(B, num_classes).

Blocks 16 -> 16 (identity) and 16 -> 32, stride 2 (the projection: a 32x16x1x1 weight).
"""

import torch
import torch.nn.functional as F
from torch import nn


class FunctionalBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.projection = None
        if stride != 1 or cin != cout:
            self.projection = nn.Parameter(torch.empty(cout, cin, 1, 1))
            nn.init.kaiming_normal_(self.projection)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.projection is None else F.conv2d(x, self.projection,
                                                             stride=self.stride)
        return F.relu(out + shortcut)


class Net(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.block1 = FunctionalBlock(16, 16, 1)
        self.block2 = FunctionalBlock(16, 32, 2)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.block2(self.block1(F.relu(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build(num_classes=10, in_channels=3):
    return Net(num_classes, in_channels)
