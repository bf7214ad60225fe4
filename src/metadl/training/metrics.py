"""The run's learning curves: ``metrics.csv`` (one row per iteration) and, when installed, TensorBoard.

Rows are appended and flushed as they happen. A checkpoint records how many rows existed when it was
written; resuming from it cuts the file back to exactly those rows before appending, so a run that was
killed and resumed has the same ``metrics.csv``, byte for byte, as one that was not. Values are written
with ``repr`` (shortest exact form), so reading the file back gives the logged floats exactly.

TensorBoard is optional: when ``torch.utils.tensorboard`` cannot be imported (the ``tensorboard``
package is missing) nothing is written and nothing is said.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metadl.fileio import atomic_write_bytes

METRICS_FILE = "metrics.csv"


class CorruptRunError(ValueError):
    """The run folder's files disagree with its checkpoint; the message names the file."""


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _open_tensorboard(folder: Path, purge_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the optional `tensorboard` package is not installed
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


class MetricsLog:
    """Append-only ``metrics.csv`` with fixed columns, resumable at a row count.

    Args:
        folder: the run folder.
        columns: the CSV header; the first column is the iteration.
        keep_rows: rows to keep from an existing file (the count a checkpoint recorded); 0 starts afresh.
        tensorboard: also write TensorBoard events under ``folder/tensorboard`` when available.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> log = MetricsLog(folder, ["iteration", "loss"], tensorboard=False)
        >>> log.append({"iteration": 1, "loss": 0.5}); log.append({"iteration": 2, "loss": 0.25}); log.close()
        >>> MetricsLog(folder, ["iteration", "loss"], keep_rows=1, tensorboard=False).close()
        >>> read_metrics(folder / "metrics.csv")
        [{'iteration': 1, 'loss': 0.5}]
    """

    def __init__(
        self, folder: Path, columns: Sequence[str], *, keep_rows: int = 0, tensorboard: bool = True
    ) -> None:
        self.path = Path(folder) / METRICS_FILE
        self.columns = list(columns)
        self._restore(keep_rows)
        self.rows = keep_rows
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 - held open for the whole run
        self._tb = _open_tensorboard(Path(folder) / "tensorboard", keep_rows + 1) if tensorboard else None

    def _restore(self, keep_rows: int) -> None:
        header = ",".join(self.columns) + "\n"
        if keep_rows == 0:
            atomic_write_bytes(self.path, header.encode())
            return
        try:
            lines = _read_text(self.path).splitlines(keepends=True)
        except FileNotFoundError:
            raise CorruptRunError(
                f"{self.path} is missing but the checkpoint records {keep_rows} rows"
            ) from None
        if not lines or lines[0] != header:
            raise CorruptRunError(f"{self.path}: its header is not {header.strip()!r}; the file was changed")
        complete = [line for line in lines[1 : keep_rows + 1] if line.endswith("\n")]
        if len(complete) < keep_rows:
            raise CorruptRunError(
                f"{self.path} has {len(complete)} complete rows but the checkpoint was written after {keep_rows}"
            )
        if len(lines) != keep_rows + 1:  # rows written after the checkpoint: they will be redone
            atomic_write_bytes(self.path, "".join(lines[: keep_rows + 1]).encode())

    def append(self, row: dict[str, Any]) -> None:
        """Write one row (missing columns are left empty) and flush it to the OS."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise KeyError(f"metrics row has columns {sorted(unknown)} that are not in {self.columns}")
        self._file.write(",".join(_format(row.get(c)) for c in self.columns) + "\n")
        self._file.flush()
        self.rows += 1
        if self._tb is not None:
            step = int(row[self.columns[0]])
            for key, value in row.items():
                if key != self.columns[0] and isinstance(value, int | float):
                    self._tb.add_scalar(
                        key.replace("val_", "val/", 1) if key.startswith("val_") else f"train/{key}",
                        value,
                        step,
                    )

    def sync(self) -> None:
        """Make every appended row durable (called before a checkpoint records the row count)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv`` as dicts: the first column as int, others as float, empty cells dropped."""
    path = Path(path)
    reader = csv.reader(io.StringIO(_read_text(path)))
    header = next(reader, None)
    if header is None:
        return []
    rows = []
    for line, cells in enumerate(reader, start=2):
        try:
            row: dict[str, Any] = {header[0]: int(cells[0])}
            row.update({k: float(v) for k, v in zip(header[1:], cells[1:], strict=True) if v != ""})
        except (ValueError, IndexError):
            raise CorruptRunError(
                f"{path}, line {line}: {','.join(cells)[:80]!r} is not a row of {len(header)} numbers; "
                "the file was changed (restore it, or delete the run and train again)"
            ) from None
        rows.append(row)
    return rows


def _read_text(path: Path) -> str:
    """The file as UTF-8 text; other bytes raise :class:`CorruptRunError` naming the file and the offset."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CorruptRunError(
            f"{path}: byte {err.start} is not UTF-8 text; the file was changed (restore it, or delete the "
            "run and train again)"
        ) from None
