"""What a training run records: its ``RunStatus``, the ``RunResult`` with one row per step,
evaluation and recorded layer, that result as plain data and back (``RECORD_FIELDS``, checked
field by field), and the ``final_metrics`` the experiments compare.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from resnet_probe.untrusted import UntrustedFileError, checked


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"  # non-finite loss or above DIVERGENCE_FACTOR x the first (train.loop)
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM; the checkpoint resumes it


ENDED = (RunStatus.FINISHED, RunStatus.DIVERGED)  # final: nothing left to resume


@dataclass
class RunResult:
    model: str
    seed: int
    status: RunStatus
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per step
    evals: list[dict[str, Any]] = field(default_factory=list)  # eval-mode errors
    grad_norms: list[dict[str, Any]] = field(default_factory=list)  # per layer, every N steps
    samples_per_rank: list[int] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the run, evaluations and checkpoints included
    step_seconds: float = 0.0  # time inside training steps only (throughput)
    diverged_at: int | None = None
    diverged_because: str | None = None  # "non-finite loss" or "loss above 100x the first"
    depth: int | None = None  # of the model, in weighted layers (its source's traits)
    shortcut: bool | None = None
    dynamics: list[dict[str, Any]] = field(default_factory=list)  # per layer, recorded steps
    joins: list[dict[str, Any]] = field(default_factory=list)  # whole-net ratio, recorded steps

    def record(self) -> dict[str, Any]:
        """The run as plain data, what a checkpoint stores (enums become their strings)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_record(cls, data: Any, where: str) -> RunResult:
        """A record read from a file, checked field by field (UntrustedFileError names the
        field)."""
        record = checked(data, RECORD_FIELDS, where)
        if record["status"] not in {status.value for status in RunStatus}:
            raise UntrustedFileError(f"{where}: unknown run status {record['status']!r}")
        for table in ("history", "evals", "grad_norms", "dynamics", "joins"):
            if not all(isinstance(row, dict) for row in record[table]):
                raise UntrustedFileError(f"{where}: {table} must be a list of row objects")
        if not all(isinstance(n, int) for n in record["samples_per_rank"]):
            raise UntrustedFileError(f"{where}: samples_per_rank must be integers")
        return cls(**{**{name: record[name] for name in RECORD_FIELDS},
                      "status": RunStatus(record["status"])})


RECORD_FIELDS = {"model": str, "seed": int, "status": str, "history": list, "evals": list,
                 "grad_norms": list, "samples_per_rank": list, "seconds": float,
                 "step_seconds": float, "diverged_at": (int, None),
                 "diverged_because": (str, None), "depth": (int, None),
                 "shortcut": (bool, None), "dynamics": list, "joins": list}


def final_metrics(result: RunResult, tail_fraction: float = 0.1) -> dict[str, Any]:
    """Final train-mode error averaged over the last steps (the primary curve), and the last
    eval-mode train and test errors beside it."""
    history = result.history
    tail = history[-max(1, int(len(history) * tail_fraction)):] if history else []
    last_eval = result.evals[-1] if result.evals else {}
    return {
        "final_train_error": (sum(r["train_error"] for r in tail) / len(tail)
                              if tail else math.nan),
        "final_train_loss": (sum(r["train_loss"] for r in tail) / len(tail)) if tail else math.nan,
        "final_train_error_eval": last_eval.get("train_error_eval", math.nan),
        "final_test_error": last_eval.get("test_error", math.nan),
        "steps_done": len(history),
        "status": result.status,
        "seconds": result.seconds,
    }
