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
    landscape_points: int = setting(21, "Grid points per axis of the 2-D surface (--dims 2; "
                                    "odd, so the trained weights are on the grid).", minimum=3,
                                    flag="--points")
    landscape_dims: int = setting(1, "1: the half-way radius along each direction; 2: also "
                                  "Li et al.'s 2-D surface on a grid.", minimum=1, maximum=2,
                                  flag="--dims")
    landscape_extent: float = setting(1.0, "The farthest step probed along a direction (in "
                                      "units of each filter's norm); a side that stays below "
                                      "the half-way loss is censored there.", above=0,
                                      flag="--extent")
    landscape_split: str = "train"  # the training loss, as Li et al. plot
    landscape_limit: int | None = setting(512, "Training images the loss is computed on (a "
                                          "fixed subset).", minimum=1, none_means="all",
                                          flag="--limit")
    direction_seed: int = setting(0, "Seed of the random directions.")
    # 10 directions: the half-way radius is averaged over 20 sides, and its interval over
    # the directions has 9 degrees of freedom (t = 2.26).
    landscape_directions: int = setting(10, "Filter-normalised random directions per net; the "
                                        "half-way radius is averaged over both sides of each, "
                                        "with an interval over the directions.", minimum=1,
                                        flag="--directions")
    hessian_images: int = setting(128, "Training images the Hessian of the loss is taken on.",
                                  minimum=1, flag="--images")
    hessian_iterations: int = setting(20, "Lanczos iterations (Hessian-vector products) per "
                                      "net.", minimum=2, flag="--iterations")
    path_images: int = setting(16, "Test images whose input gradients the path-length "
                               "samples average.", minimum=1, flag="--images")
    path_samples: int = setting(3, "Random branch choices sampled per path length.",
                                minimum=1, flag="--samples")
    # compare analyses the deepest plain and residual nets, and the shallowest pair (its
    # siblings) with the CONTROLLED analyses only, as their no-degradation control
    deep_pair_only: bool = False

    def __post_init__(self) -> None:
        check_settings(self)
        if self.landscape_points % 2 == 0:
            raise InvalidRequest(f"the landscape grid needs an odd number of points, at "
                                 f"least 3, so it holds the trained weights: "
                                 f"points={self.landscape_points}")
        unknown = set(self.lesion_views) - {"block", "count"}
        if unknown or not self.lesion_views:
            raise InvalidRequest(f"lesion views are 'block' and 'count': {self.lesion_views}")

    def work(self, analyses: tuple[Analysis, ...], nets: int, control_nets: int = 0) -> int:
        """Progress units: per net and analysis one, but per side of each landscape
        direction one, plus one per point of a 2-D surface; ``control_nets`` run only the
        CONTROLLED analyses (``deep_pair_only``)."""
        def units(analysis: Analysis) -> int:
            if analysis is not Analysis.LANDSCAPE:
                return 1
            return 2 * self.landscape_directions + (
                self.landscape_points ** 2 if self.landscape_dims == 2 else 0)

        return (nets * sum(units(a) for a in analyses)
                + control_nets * sum(units(a) for a in analyses if a in CONTROLLED))


# The analyses whose claims carry a no-degradation control: the same difference on a shallow
# pair trained the same way (analysis.claims).
CONTROLLED = (Analysis.LANDSCAPE, Analysis.HESSIAN)
DEFAULT_OPTIONS = AnalysisOptions()
