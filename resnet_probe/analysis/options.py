"""Which analyses of trained nets to run, and on what: the options every analysis command and
the jobs share."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from resnet_probe.errors import InvalidRequest
from resnet_probe.settings import check_settings, setting

SPLITS = ("test", "train")


class Analysis(StrEnum):
    LESION = "lesion"
    RESPONSES = "responses"
    LANDSCAPE = "landscape"
    PATHS = "paths"
    HESSIAN = "hessian"


@dataclass(frozen=True)
class AnalysisOptions:
    # Lesions and responses: the held-out images, as both papers.
    split: str = setting("test", "Which images the nets are evaluated on.", choices=SPLITS)
    limit: int | None = setting(None, "Use the first N images of the split.", minimum=1,
                                none_means="all")
    lesion_views: tuple[str, ...] = ("block", "count")  # single deletions, k-block curve
    lesion_samples: int = setting(10, "Random draws per k in the k-block deletion curve.",
                                  minimum=1, flag="--samples")
    lesion_max_removed: int | None = setting(None, "Largest k in the k-block deletion curve.",
                                             minimum=1, none_means="every shape-preserving "
                                             "block", flag="--max-removed")
    landscape_points: int = setting(21, "Grid points per axis (odd, so the trained weights "
                                    "are on the grid).", minimum=3, flag="--points")
    landscape_dims: int = setting(1, "1-D slice or 2-D surface.", minimum=1, maximum=2,
                                  flag="--dims")
    landscape_extent: float = setting(1.0, "The grid spans [-extent, extent] along each "
                                      "direction.", above=0, flag="--extent")
    landscape_split: str = "train"  # the training loss, as Li et al. plot
    landscape_limit: int | None = setting(512, "Training images the loss is computed on (a "
                                          "fixed subset).", minimum=1, none_means="all",
                                          flag="--limit")
    direction_seed: int = setting(0, "Seed of the random directions.")
    landscape_directions: int = setting(5, "Filter-normalised random directions per net; the "
                                        "rise at ±0.5 is averaged over them, with its spread.",
                                        minimum=1, flag="--directions")
    hessian_images: int = setting(128, "Training images the Hessian of the loss is taken on.",
                                  minimum=1, flag="--images")
    hessian_iterations: int = setting(20, "Lanczos iterations (Hessian-vector products) per "
                                      "net.", minimum=2, flag="--iterations")
    path_images: int = setting(16, "Test images whose input gradients the path-length "
                               "samples average.", minimum=1, flag="--images")
    path_samples: int = setting(3, "Random branch choices sampled per path length.",
                                minimum=1, flag="--samples")
    deep_pair_only: bool = False  # compare analyses only the deepest plain and residual nets

    def __post_init__(self) -> None:
        check_settings(self)
        if self.landscape_points % 2 == 0:
            raise InvalidRequest(f"the landscape grid needs an odd number of points, at "
                                 f"least 3, so it holds the trained weights: "
                                 f"points={self.landscape_points}")
        unknown = set(self.lesion_views) - {"block", "count"}
        if unknown or not self.lesion_views:
            raise InvalidRequest(f"lesion views are 'block' and 'count': {self.lesion_views}")

    def work(self, analyses: tuple[Analysis, ...], nets: int) -> int:
        """Progress units: one per net and analysis, plus one per landscape point."""
        points = self.landscape_points ** self.landscape_dims * (
            self.landscape_directions if self.landscape_dims == 1 else 1)
        return nets * sum(points if a is Analysis.LANDSCAPE else 1 for a in analyses)


DEFAULT_OPTIONS = AnalysisOptions()
