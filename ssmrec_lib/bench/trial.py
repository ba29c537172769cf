"""One fault-injection trial's outcome, shared by the reliability trials (kill.py, faults.py, bad_inputs.py), their
tests and the report (reliability.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Trial:
    """category: the report's section ("kill -9 during training", "disk full", ...); name: this trial.
    survived: the work ended in a usable state (finished, or stopped with a clear error and the fix);
    lost_nothing: nothing a user had was lost or corrupted, and nothing damaged was used (for training: the
    results equal an uninterrupted run's exactly). detail: what happened, in words (the error message, the diff)."""

    category: str
    name: str
    survived: bool
    lost_nothing: bool
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.survived and self.lost_nothing

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
