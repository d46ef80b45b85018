"""The classic CIFAR ResNet of the paper's option A, joining with ``out.add_(shortcut)``:
the shortcut a ``LambdaLayer`` wrapping a lambda that subsamples and zero-pads the channels
(no parameters), or a plain Python lambda for the identity.

Input: one image batch ``x`` of shape (B, in_channels, 32, 32). Output: class logits
(B, num_classes).

Blocks 16 -> 16 (identity lambda), 16 -> 32 (stride 2, option A: pad 8 channels each side),
32 -> 32 (identity lambda).
"""

import torch.nn.functional as F
from torch import nn


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class OptionABlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            pad = (cout - cin) // 2
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)))
        else:
            self.shortcut = lambda x: x

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out.add_(self.shortcut(x))
        return F.relu(out)


class Net(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.stage = nn.Sequential(OptionABlock(16, 16), OptionABlock(16, 32, 2),
                                   OptionABlock(32, 32))
        self.linear = nn.Linear(32, num_classes)

    def forward(self, x):
        out = self.stage(F.relu(self.bn(self.conv(x))))
        return self.linear(F.avg_pool2d(out, out.size()[3]).flatten(1))


def build(num_classes=10, in_channels=3):
    return Net(num_classes, in_channels)
