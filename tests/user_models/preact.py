"""Pre-activation blocks (He et al. 2016, "Identity Mappings"): BN and ReLU come before each
conv, the projection shortcut (a bare 1x1 ``nn.Conv2d``) reads the block's pre-activated
input, and nothing follows the add.

Input: one image batch ``x`` of shape (B, in_channels, 32, 32). Output: class logits
(B, num_classes).

Blocks 16 -> 16 (identity) and 16 -> 32 (stride 2, projected from the shared pre-activation).
"""

import torch
from torch import nn


class PreActBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + shortcut


class PreActNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.block1 = PreActBlock(16, 16)
        self.block2 = PreActBlock(16, 32, 2)
        self.bn = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.block2(self.block1(self.conv(x)))
        return self.fc(torch.relu(self.bn(x)).mean((2, 3)))


def build(num_classes=10, in_channels=3):
    return PreActNet(num_classes, in_channels)
