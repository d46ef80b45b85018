"""Why residual nets train: the classic measurements on trained nets.

* lesions (Veit et al. 2016): ``lesion.py``;
* effective path lengths (Veit et al. 2016, Fig. 6): ``paths.py``;
* layer responses (He et al. 2016, Fig. 7): ``responses.py``;
* loss landscapes (Li et al. 2018's directions; the half-way radius): ``landscape.py``;
* Hessian spectra (Li et al. 2018, Fig. 7; pyhessian's approach): ``hessian.py``.

``measurements.analyse`` runs any of them over the trained nets of a run (``trained.py``
loads them) and returns their tables; ``claims.findings`` tests the papers' claims on those
tables; ``why.why_part`` does both and is what the jobs and the analysis commands call.
"""

from __future__ import annotations

from resnet_probe.analysis.claims import Claim, Outcome, Role, findings
from resnet_probe.analysis.measurements import WhyTables, analyse, data_note
from resnet_probe.analysis.options import Analysis, AnalysisOptions
from resnet_probe.analysis.trained import TrainedRuns, load_trained
from resnet_probe.analysis.why import WhyPart, cached_why_part, why_part

__all__ = ["Analysis", "AnalysisOptions", "Claim", "Outcome", "Role", "TrainedRuns", "WhyPart",
           "WhyTables", "analyse", "cached_why_part", "data_note", "findings", "load_trained",
           "why_part"]
