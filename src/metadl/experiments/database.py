"""The experiment database: one SQLite file that remembers every run, for warm-started tuning.

Every ``metadl train`` / ``metadl eval`` run and every tuning trial is one row of ``runs``: what was run
(the config as JSON, and for a trial the tuned parameters), on what (the task distribution's name and its
meta-features, see :mod:`metadl.experiments.metafeatures`), and how it went (final metrics, seconds, peak
memory). The file is ``$METADL_DB`` or ``~/.local/share/metadl/experiments.sqlite``.

Safe under concurrent writers and kills, with nothing but the standard library:

- **WAL journal**: readers never block the writer and a writer never blocks readers;
- **one transaction per record**, opened with ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two
  writers never deadlock upgrading a read lock) and waiting up to ``busy_timeout`` for another writer;
- a process killed mid-transaction leaves its rows uncommitted: SQLite rolls the journal back the next time
  the file is opened, and every committed row is still there (tested with SIGKILL);
- the schema is versioned (``PRAGMA user_version``): a file written by a newer metadl is refused by name.

Example:
    >>> import tempfile, pathlib
    >>> db = ExperimentDB(pathlib.Path(tempfile.mkdtemp()) / "x.sqlite")
    >>> rid = db.add(RunRecord(kind="train", distribution="glyphs", config={"seed": 0},
    ...                        metrics={"val_accuracy": 0.8}))
    >>> [r.metrics["val_accuracy"] for r in db.query(where=["val_accuracy>0.5"])]
    [0.8]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
ENV_VAR = "METADL_DB"
KINDS = ("train", "eval", "trial")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind           TEXT NOT NULL,
    created        REAL NOT NULL,
    config_name    TEXT,
    distribution   TEXT NOT NULL,
    config         TEXT NOT NULL,
    params         TEXT NOT NULL,
    metafeatures   TEXT NOT NULL,
    metrics        TEXT NOT NULL,
    seconds        REAL,
    peak_memory_mb REAL,
    study          TEXT
);
CREATE INDEX IF NOT EXISTS runs_distribution ON runs (distribution);
"""
_OPS = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "=": "=", "==": "=", "!=": "!="}
_WHERE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|!=|>|<|=)\s*([^<>=!\s].*?)\s*")


class ExperimentDBError(ValueError):
    """The database file cannot be used (newer schema, not an experiment database) or a filter is malformed."""


@dataclass
class RunRecord:
    """One run: what was run (``config``, tuned ``params``), on what (``distribution``, ``metafeatures``), and how it went.

    ``kind`` is ``"train"``, ``"eval"`` or ``"trial"``. ``metrics`` holds finite numbers only (e.g.
    ``val_accuracy``, ``test_accuracy``, ``test_ci95``); ``id`` and ``created`` are set by the database.
    """

    kind: str
    distribution: str
    config: dict[str, Any]
    metrics: dict[str, float]
    metafeatures: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    config_name: str | None = None
    seconds: float | None = None
    peak_memory_mb: float | None = None
    study: str | None = None
    id: int | None = None
    created: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def default_path() -> Path:
    """``$METADL_DB``, else ``$XDG_DATA_HOME/metadl/experiments.sqlite`` (``~/.local/share`` by default)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "metadl" / "experiments.sqlite"


class ExperimentDB:
    """An experiment database file (created on first use); every method opens its own short connection."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.busy_timeout_ms = busy_timeout_ms
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ExperimentDBError(
                    f"{self.path} has schema version {version}, newer than this metadl's {SCHEMA_VERSION}; "
                    f"upgrade metadl or point ${ENV_VAR} at another file"
                )
            if version < SCHEMA_VERSION:
                with self._transaction(con):
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        con.execute(statement)  # not executescript: it commits the open transaction
                    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None)
        except sqlite3.Error as err:
            raise ExperimentDBError(f"cannot open the experiment database {self.path}: {err}") from None
        try:
            con.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a commit survives a process kill
            yield con
        except sqlite3.DatabaseError as err:
            raise ExperimentDBError(f"{self.path} is not a usable experiment database: {err}") from None
        finally:
            con.close()

    @staticmethod
    @contextlib.contextmanager
    def _transaction(con: sqlite3.Connection) -> Iterator[None]:
        con.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def add(self, record: RunRecord) -> int:
        """Insert one record in its own transaction and return its id."""
        if record.kind not in KINDS:
            raise ExperimentDBError(f"kind={record.kind!r}; choose one of {list(KINDS)}")
        bad = [k for k, v in {**record.metrics, **record.metafeatures}.items() if not _finite(v)]
        if bad:
            raise ExperimentDBError(f"metrics/meta-features {bad} are not finite numbers; leave them out")
        row = (
            record.kind, time.time(), record.config_name, record.distribution, _dumps(record.config),
            _dumps(record.params), _dumps(record.metafeatures), _dumps(record.metrics),
            record.seconds, record.peak_memory_mb, record.study,
        )  # fmt: skip
        with self._connect() as con, self._transaction(con):
            cursor = con.execute(
                "INSERT INTO runs (kind, created, config_name, distribution, config, params, metafeatures, "
                "metrics, seconds, peak_memory_mb, study) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def query(
        self,
        *,
        config_name: str | None = None,
        distribution: str | None = None,
        kind: str | None = None,
        where: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Records in insertion order, filtered by name, distribution, kind and ``where`` conditions.

        A condition is ``NAME OP VALUE`` with OP one of ``> >= < <= = !=``: NAME is a metric
        (``val_accuracy>0.6``), ``mf.NAME`` a meta-feature, ``param.NAME`` a tuned parameter, ``config.a.b``
        a config value; a row without that value never matches.
        """
        sql, args = ["SELECT * FROM runs WHERE 1"], []
        for column, value in (("config_name", config_name), ("distribution", distribution), ("kind", kind)):
            if value is not None:
                sql.append(f"AND {column} = ?")
                args.append(value)
        for condition in where:
            clause, json_path, value = _condition(condition)
            sql.append(clause)
            args += [json_path, value]
        sql.append("ORDER BY id")
        if limit is not None:
            sql.append(f"LIMIT {int(limit)}")
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            rows = con.execute(" ".join(sql), args).fetchall()
        return [_record(row) for row in rows]

    def count(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def _condition(text: str) -> tuple[str, str, Any]:
    """``("AND json_extract(metrics, ?) > ?", "$.x", 0.5)`` from ``"x>0.5"``."""
    match = _WHERE.fullmatch(text)
    if match is None:
        raise ExperimentDBError(
            f"--where {text!r} is not NAME OP VALUE; write e.g. val_accuracy>0.6, mf.ways=5 or config.learner.name=maml"
        )
    name, op, raw = match.groups()
    column, _, path = (
        name.partition(".") if name.split(".")[0] in ("mf", "param", "config") else ("", "", name)
    )
    column = {"mf": "metafeatures", "param": "params", "config": "config", "": "metrics"}[column]
    value: Any = raw
    with contextlib.suppress(ValueError):
        value = float(raw)
    return f"AND json_extract({column}, ?) {_OPS[op]} ?", f"$.{path}", value


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        kind=row["kind"],
        distribution=row["distribution"],
        config=json.loads(row["config"]),
        metrics=json.loads(row["metrics"]),
        metafeatures=json.loads(row["metafeatures"]),
        params=json.loads(row["params"]),
        config_name=row["config_name"],
        seconds=row["seconds"],
        peak_memory_mb=row["peak_memory_mb"],
        study=row["study"],
        id=row["id"],
        created=row["created"],
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False)
