"""The embedded default: scikit-learn's bundled handwritten digits, no download needed.

1,797 real 8x8 grayscale digits (UCI), upscaled bilinearly to 16x16 so that CIFAR-style nets
have room for their two stride-2 stages. A fixed, stratified split keeps 297 images for test.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from resnet_probe.data.dataset import ImageDataset, standardize

DIGITS_SIZE = 16
TEST_IMAGES = 297
SPLIT_SEED = 0


def load_digits(image_size: int = DIGITS_SIZE) -> ImageDataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear",
                           align_corners=False)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    test_idx, train_idx = order[:TEST_IMAGES], order[TEST_IMAGES:]
    train_x, test_x = standardize(images[train_idx], images[test_idx])
    return ImageDataset(
        name="digits", train_x=train_x, train_y=labels[train_idx], test_x=test_x,
        test_y=labels[test_idx], num_classes=10,
        description=(f"scikit-learn digits (1,797 real 8x8 handwritten digits shipped with "
                     f"the package), upscaled to {image_size}x{image_size}; "
                     f"{len(train_idx)} train / {len(test_idx)} test"),
    )
