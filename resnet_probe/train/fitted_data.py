"""The training data fitted to the models that train on it: one home for the rule, below every
job and analysis that trains."""

from __future__ import annotations

from resnet_probe.data import ImageDataset
from resnet_probe.sources import ModelSource


def fit_dataset_to(dataset: ImageDataset, sources: list[ModelSource]) -> ImageDataset:
    """Upscale when a model's stride stack needs more pixels (ImageNet stems need 32), and
    give the images the channels a foreign model takes (zoo models adapt to the data)."""
    needed = max(source.min_input_size for source in sources)
    dataset = dataset.resized(needed) if dataset.image_size < needed else dataset
    foreign = {source.in_channels for source in sources if not source.is_zoo}
    return dataset.with_channels(max(foreign)) if foreign else dataset
