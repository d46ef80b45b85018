"""The Why part: the analyses of a run's trained nets with the papers' claims tested on them,
computed once and kept in the cache of results."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from resnet_probe.analysis.claims import findings
from resnet_probe.analysis.measurements import WhyTables, analyse, analysis_work, data_note
from resnet_probe.analysis.options import DEFAULT_OPTIONS, Analysis, AnalysisOptions
from resnet_probe.analysis.trained import TrainedRuns
from resnet_probe.cache import DamagedEntry, json_decoder, json_encoder, results_store
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.results import declared_tables, frame, table, to_json_records
from resnet_probe.train.verdict import TRAINED_FRACTION
from resnet_probe.untrusted import checked


@dataclass(frozen=True)
class WhyPart:
    """The analyses of the trained nets, and the papers' claims tested on them."""

    tables: WhyTables
    findings: pd.DataFrame = table("why_findings")
    data: str = ""  # which nets and images, in words
    not_analysed: tuple[str, ...] = ()
    untrained: tuple[str, ...] = ()
    reused: bool = False
    seconds: float = 0.0

    @property
    def empty(self) -> bool:
        return self.tables.empty and self.findings.empty


def why_part(runs: TrainedRuns, analyses: tuple[Analysis, ...] = tuple(Analysis),
             options: AnalysisOptions = DEFAULT_OPTIONS, progress: Progress = NO_PROGRESS
             ) -> WhyPart:
    """The analyses' tables, the papers' claims tested on them, and what the report says
    about them (data, nets not analysed, nets that did not train); the rule is
    ``report.words.FINDINGS_RULE``."""
    started = time.perf_counter()
    tables = analyse(runs, analyses, options, progress)
    bar = TRAINED_FRACTION * (1 - 1 / runs.dataset.num_classes)
    return WhyPart(
        tables, findings(tables, runs.dataset.num_classes), data=data_note(runs, options),
        not_analysed=tuple(runs.skipped),
        untrained=tuple(f"{net.model} seed {net.seed} ({net.final_train_error:.3f} ≥ "
                        f"{bar:.3f})" for net in runs.nets if net.final_train_error >= bar),
        seconds=round(time.perf_counter() - started, 1))


def cached_why_part(runs: TrainedRuns, cached_runs: list[dict[str, Any]],
                    analyses: tuple[Analysis, ...], options: AnalysisOptions,
                    progress: Progress, fresh: bool = False) -> WhyPart:
    """``why_part``, reused from the cache of results when every net is a cached run
    (``cached_runs``: rows naming each run's cache key) and the analyses and options are the
    same; else computed and stored."""
    run_keys = {(row["model"], row["seed"]): row["cache_key"] for row in cached_runs}
    keys = [run_keys.get((net.model, net.seed)) for net in runs.nets]
    if not keys or None in keys:
        return why_part(runs, analyses, options, progress)
    # format 3: the k-curve claim read plain − residual before (a double negation); format
    # 4: the half-way radius, the controls and typed findings (issue 37)
    content = {"format": 4, "runs": sorted(k for k in keys if k),
               "analyses": [a.value for a in analyses], "options": asdict(options)}
    started = time.perf_counter()
    cached = results_store(fresh).get_or_compute(
        content, lambda: _encoded(why_part(runs, analyses, options, progress)),
        json_encoder, _checked_why)
    if cached.reused:
        progress.update(analysis_work(runs.nets, analyses, options))
    value = cached.value
    tables = {name: pd.DataFrame.from_records(rows) for name, rows in value["tables"].items()}
    facts = {**value["facts"], "not_analysed": tuple(value["facts"]["not_analysed"]),
             "untrained": tuple(value["facts"]["untrained"]), "reused": cached.reused}
    if cached.reused:  # this run's time, not the stored run's
        facts["seconds"] = round(time.perf_counter() - started, 1)
    found = tables.pop("why_findings", frame([]))
    return WhyPart(WhyTables.of(tables), found, **facts)


def _encoded(part: WhyPart) -> dict[str, Any]:
    tables = {name: json.loads(to_json_records(df)) for name, df in declared_tables(part).items()}
    facts = {name: getattr(part, name) for name in ("data", "seconds")}
    facts.update(not_analysed=list(part.not_analysed), untrained=list(part.untrained))
    return {"tables": tables, "facts": facts}


def _checked_why(folder: Path) -> dict[str, Any]:
    value = json_decoder(folder)
    checked(value, {"tables": dict, "facts": dict}, f"cached analyses {folder}")
    checked(value["facts"], {"data": str, "seconds": float, "not_analysed": list,
                             "untrained": list}, f"cached analyses {folder}")
    for name, rows in value["tables"].items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DamagedEntry(f"table {name!r} is not a list of rows")
    return value
