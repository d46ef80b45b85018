"""Blocks that join with ``torch.add(branch, shortcut)``, the projection kept as two sibling
modules of the block (``down_conv`` then ``down_bn``), not grouped in a container.

Input: one image batch ``x`` of shape (B, in_channels, 32, 32). Output: class logits
(B, num_classes).

Blocks 16 -> 16 (identity), 16 -> 32 (stride 2, projected), 32 -> 32 (identity).
"""

import torch
from torch import nn


class AddBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.project = stride != 1 or cin != cout
        if self.project:
            self.down_conv = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.down_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        branch = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        shortcut = self.down_bn(self.down_conv(x)) if self.project else x
        return torch.relu(torch.add(branch, shortcut))


class Net(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.ModuleList([AddBlock(16, 16), AddBlock(16, 32, 2), AddBlock(32, 32)])
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean((2, 3)))


def build(num_classes=10, in_channels=3):
    return Net(num_classes, in_channels)
