"""Reading the rows of task files: CSV (with a header), header-less TSV, JSON Lines.

Everything a file controls is bounded before it is allocated: the file's size is checked with
``stat`` before a byte is read, and the row count while parsing. Bad input fails with one line naming
the file, the line and the fix (:class:`~metadl.tasks.source.TaskSourceError`): undecodable bytes
(the line number is found from the byte offset, not guessed from a decoder's chunk), a missing
column, a value that is not a number, feature vectors of different widths.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
    >>> _ = path.write_text("text,label\\ngreat phone,pos\\nbroke in a day,neg\\n")
    >>> table = read_table(path, "csv")
    >>> table.texts("text"), table.labels("label")
    (['great phone', 'broke in a day'], ['pos', 'neg'])
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from metadl.tasks.source import TaskSourceError

TableFormat = Literal["csv", "tsv", "jsonl"]
FORMATS: tuple[TableFormat, ...] = ("csv", "tsv", "jsonl")
MAX_FILE_BYTES = 256 * 2**20  # 256 MiB: far above any task file, far below the memory of a laptop
MAX_ROWS = 2_000_000


@dataclass(frozen=True)
class Table:
    """The rows of one file: ``rows[i][column]`` read from line ``lines[i]`` (1-based, for messages).

    CSV and TSV values are strings; JSON Lines values are whatever JSON holds.
    """

    path: Path
    columns: tuple[str, ...]
    rows: list[dict[str, object]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.rows)

    def _values(self, column: str, option: str) -> list[object]:
        if column not in self.columns:
            raise TaskSourceError(
                f"{self.path}: missing column {column!r}; its columns are {list(self.columns)}; "
                f"set {option} to one of them"
            )
        values = [row.get(column) for row in self.rows]
        for value, line in zip(values, self.lines, strict=True):
            if value is None or value == "":
                raise TaskSourceError(
                    f"{self.path} line {line}: missing or empty {column!r}; every row needs one"
                )
        return values

    def texts(self, column: str, option: str = "text_column") -> list[str]:
        """The column as non-empty strings."""
        values = self._values(column, option)
        for value, line in zip(values, self.lines, strict=True):
            if not isinstance(value, str):
                raise TaskSourceError(f"{self.path} line {line}: {column!r} must be a string, got {value!r}")
        return [str(v) for v in values]

    def labels(self, column: str, option: str = "label_column") -> list[str]:
        """The column as label names (JSON numbers such as ``1`` become ``"1"``)."""
        values = self._values(column, option)
        for value, line in zip(values, self.lines, strict=True):
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise TaskSourceError(
                    f"{self.path} line {line}: label {value!r} in {column!r} must be a string or an integer"
                )
        return [str(v) for v in values]

    def numbers(self, columns: Sequence[str], option: str = "feature_columns") -> Tensor:
        """The columns as one float32 row per example ``(n, width)``; a JSON column may hold a list."""
        per_column = [self._values(c, option) for c in columns]
        out: list[list[float]] = []
        width = -1
        for i, line in enumerate(self.lines):
            row: list[float] = []
            for column, values in zip(columns, per_column, strict=True):
                row.extend(self._floats(values[i], column, line))
            if width >= 0 and len(row) != width:
                raise TaskSourceError(
                    f"{self.path} line {line}: {len(row)} features but line {self.lines[0]} has {width}; "
                    "every example needs the same number of features"
                )
            width = len(row)
            out.append(row)
        return torch.tensor(out, dtype=torch.float32).reshape(len(out), max(width, 0))

    def _floats(self, value: object, column: str, line: int) -> list[float]:
        items = value if isinstance(value, list) else [value]
        try:
            numbers = [float(v) for v in items if not isinstance(v, bool)]  # type: ignore[arg-type]
        except (TypeError, ValueError):
            numbers = []
        if len(numbers) != len(items) or not all(math.isfinite(v) for v in numbers):
            raise TaskSourceError(
                f"{self.path} line {line}: {column!r} = {value!r} is not a finite number (or list of numbers)"
            )
        return numbers


def format_of(path: Path) -> TableFormat | None:
    """The table format named by a file's extension, or None."""
    return {f".{f}": f for f in FORMATS}.get(path.suffix.lower())


def read_text(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The file decoded as UTF-8 (a byte-order mark is dropped), its size checked before reading."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise TaskSourceError(
                f"{path} is {size:,} bytes, above max_file_bytes={max_bytes:,}; raise max_file_bytes to read it"
            )
        data = path.read_bytes()
    except OSError as err:
        raise TaskSourceError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise TaskSourceError(
            f"{path} line {line}: byte {data[err.start]:#04x} is not UTF-8; re-save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def read_table(
    path: Path,
    format: TableFormat,
    *,
    tsv_columns: Sequence[str] = ("text", "label"),
    max_bytes: int = MAX_FILE_BYTES,
    max_rows: int = MAX_ROWS,
) -> Table:
    """Read one CSV (header row), TSV (no header; ``tsv_columns`` name the fields) or JSON Lines file.

    Blank lines are skipped. Raises :class:`TaskSourceError` with the file and line for anything malformed.
    """
    text = read_text(path, max_bytes=max_bytes)
    rows: list[dict[str, object]] = []
    lines: list[int] = []

    def add(row: dict[str, object], line: int) -> None:
        if len(rows) >= max_rows:
            raise TaskSourceError(
                f"{path} has more than max_rows={max_rows:,} rows; raise max_rows to read it"
            )
        rows.append(row)
        lines.append(line)

    if format == "csv":
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
            if header is None:
                raise TaskSourceError(f"{path} is empty; a CSV task file needs a header row and examples")
            columns = tuple(h.strip() for h in header)
            for fields in reader:
                if not fields:
                    continue
                if len(fields) != len(columns):
                    raise TaskSourceError(
                        f"{path} line {reader.line_num}: {len(fields)} fields but the header has {len(columns)}"
                    )
                add(dict(zip(columns, fields, strict=True)), reader.line_num)
        except csv.Error as err:
            raise TaskSourceError(f"{path} line {reader.line_num}: {err}") from None
        return Table(path, columns, rows, lines)

    columns = tuple(tsv_columns)
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if format == "tsv":
            fields = raw.split("\t")
            if len(fields) != len(columns):
                raise TaskSourceError(
                    f"{path} line {number}: {len(fields)} tab-separated fields, expected {len(columns)} "
                    f"({'<TAB>'.join(columns)})"
                )
            add(dict(zip(columns, fields, strict=True)), number)
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as err:
            raise TaskSourceError(f"{path} line {number}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise TaskSourceError(
                f"{path} line {number}: expected a JSON object per line, got {type(row).__name__}"
            )
        seen.update(row)
        add(row, number)
    return Table(path, columns if format == "tsv" else tuple(sorted(seen)), rows, lines)
