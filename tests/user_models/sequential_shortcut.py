"""A CIFAR ResNet whose block body and shortcut are each an ``nn.Sequential`` (the cifarnet
of issue 35): ``relu(self.body(x) + self.shortcut(x))``, the identity shortcut an empty
``nn.Sequential``, the projection ``nn.Sequential(conv1x1, BatchNorm2d)``.

Input: one image batch ``x`` of shape (B, in_channels, 32, 32) (any size that is a multiple
of 4). Output: class logits (B, num_classes).

Stages 16, 32, 64 channels with one block each; the second and third blocks halve the size
and project their shortcut (16 -> 32 and 32 -> 64 channels).
"""

from torch import nn


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class CifarNet(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        self.layers = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


def build(num_classes=10, in_channels=3):
    return CifarNet(num_classes, in_channels)
