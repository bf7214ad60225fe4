"""What the bench records: small dataclasses, stored as one JSON file per row (``results/<row>.json``).

The runner produces them, the report reads them; neither imports the other's internals. The JSON
layout is the dataclasses' fields (``dataclasses.asdict``), so results written by earlier versions read
back unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Training:
    """A cell's training run as it stands: how far it got, in how long, at what peak memory."""

    run: str
    run_dir: str
    iterations: int
    planned: int
    complete: bool
    seconds: float | None
    peak_rss_mib: float | None


@dataclass(frozen=True)
class ScoreKey:
    """What a test score was computed on; a score is reused only while its key is unchanged."""

    run: str
    iteration: int
    ways: int | None
    shots: int
    episodes: int


@dataclass(frozen=True)
class Score:
    """A cell's test score: mean and 95% CI of ``metric`` over ``episodes`` seeded test episodes."""

    key: ScoreKey
    mean: float
    ci95: float
    episodes: int
    metric: str
    seconds: float

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Score:
        return cls(**{**raw, "key": ScoreKey(**raw["key"])})


@dataclass(frozen=True)
class CellResult:
    """One published figure and metadl's result for it (``None`` where the cell was not trained or tested)."""

    label: str
    published: float | None
    training: Training | None
    score: Score | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CellResult:
        training, score = raw.get("training"), raw.get("score")
        return cls(
            raw["label"],
            raw["published"],
            None if training is None else Training(**training),
            None if score is None else Score.from_json(score),
        )


@dataclass(frozen=True)
class RowResult:
    """A row of the reproduction table: its setting, its source and its cells' results."""

    setting: str
    source: str
    cells: tuple[CellResult, ...]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RowResult:
        return cls(raw["setting"], raw["source"], tuple(CellResult.from_json(c) for c in raw["cells"]))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"


def read_row(path: Path) -> RowResult | None:
    """The results stored in ``path``, or ``None`` when there is no such file yet."""
    return RowResult.from_json(json.loads(path.read_text())) if path.is_file() else None


def read_results(folder: Path) -> dict[str, RowResult]:
    """Every row's results under ``folder/results``, by row name."""
    rows = {f.stem: read_row(f) for f in sorted((folder / "results").glob("*.json"))}
    return {name: row for name, row in rows.items() if row is not None}
