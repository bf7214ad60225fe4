"""The experiment database: round trip, filters, refusals, concurrent writers and a writer killed mid-write."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metadl.experiments.database import (
    SCHEMA_VERSION,
    ExperimentDB,
    ExperimentDBError,
    RunRecord,
    default_path,
)


def _record(i: int, *, acc: float = 0.5, distribution: str = "glyphs") -> RunRecord:
    return RunRecord(
        kind="trial",
        distribution=distribution,
        config={"learner": {"name": "maml" if i % 2 else "protonet"}},
        metrics={"val_accuracy": acc},
        metafeatures={"ways": 5.0},
        params={"lr": 0.001 * (i + 1)},
        seconds=1.5,
    )


def test_round_trip_and_filters(tmp_path: Path) -> None:
    db = ExperimentDB(tmp_path / "db.sqlite")
    ids = [db.add(_record(i, acc=i / 10, distribution=f"d{i % 3}")) for i in range(6)]
    assert ids == sorted(ids) and db.count() == 6
    back = db.query()
    assert [r.metrics["val_accuracy"] for r in back] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert back[1].config == {"learner": {"name": "maml"}} and back[1].params == {"lr": 0.002}
    assert back[0].created is not None and back[0].id == ids[0]
    assert [r.id for r in db.query(where=["val_accuracy>0.25"])] == ids[3:]
    assert [r.id for r in db.query(where=["val_accuracy>=0.2", "val_accuracy<0.4"])] == ids[2:4]
    assert [r.id for r in db.query(where=["config.learner.name=maml"])] == ids[1::2]
    assert [r.id for r in db.query(where=["param.lr<=0.002"])] == ids[:2]
    assert len(db.query(where=["mf.ways=5"])) == 6 and db.query(where=["mf.shots=1"]) == []
    assert [r.id for r in db.query(distribution="d1")] == [ids[1], ids[4]]
    assert len(db.query(limit=2)) == 2 and db.query(kind="eval") == []


@pytest.mark.parametrize("where", ["val_accuracy", "val_accuracy>>1", "x; DROP TABLE runs>1", ">1"])
def test_malformed_filter_is_refused(tmp_path: Path, where: str) -> None:
    with pytest.raises(ExperimentDBError, match="NAME OP VALUE"):
        ExperimentDB(tmp_path / "db.sqlite").query(where=[where])


def test_non_finite_metric_and_unknown_kind_are_refused(tmp_path: Path) -> None:
    db = ExperimentDB(tmp_path / "db.sqlite")
    with pytest.raises(ExperimentDBError, match="not finite"):
        db.add(RunRecord(kind="train", distribution="d", config={}, metrics={"loss": float("nan")}))
    with pytest.raises(ExperimentDBError, match="kind="):
        db.add(RunRecord(kind="bench", distribution="d", config={}, metrics={}))
    assert db.count() == 0


def test_newer_schema_and_foreign_files_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as con:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ExperimentDBError, match="newer than this metadl"):
        ExperimentDB(newer)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ExperimentDBError, match="not a usable experiment database"):
        ExperimentDB(garbage)


def test_default_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("METADL_DB", str(tmp_path / "mine.sqlite"))
    assert default_path() == tmp_path / "mine.sqlite"
    monkeypatch.delenv("METADL_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_path() == tmp_path / "metadl" / "experiments.sqlite"


_WRITER = """
import sys
from metadl.experiments.database import ExperimentDB, RunRecord
db = ExperimentDB(sys.argv[1])
for i in range(int(sys.argv[3])):
    rid = db.add(RunRecord(kind="trial", distribution=sys.argv[2], config={"i": i}, metrics={"i": float(i)}))
    print(rid, flush=True)
"""


def test_two_concurrent_writer_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    ExperimentDB(path)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), name, "60"], stdout=subprocess.PIPE, text=True
        )
        for name in ("a", "b")
    ]
    outputs = [w.communicate(timeout=120)[0] for w in writers]
    assert [w.returncode for w in writers] == [0, 0]
    db = ExperimentDB(path)
    for name, out in zip("ab", outputs, strict=True):
        rows = db.query(distribution=name)
        assert [r.metrics["i"] for r in rows] == [float(i) for i in range(60)]  # each writer's rows, in order
        assert [r.id for r in rows] == [int(line) for line in out.split()]
    assert db.count() == 120


_HOLDER = """
import sys, time
from metadl.experiments.database import ExperimentDB, RunRecord
db = ExperimentDB(sys.argv[1])
for i in range(3):
    db.add(RunRecord(kind="trial", distribution="committed", config={}, metrics={"i": float(i)}))
with db._connect() as con, db._transaction(con):
    for i in range(50):
        con.execute("INSERT INTO runs (kind, created, distribution, config, params, metafeatures, metrics) "
                    "VALUES ('trial', 0, 'uncommitted', '{}', '{}', '{}', '{}')")
    print("inside", flush=True)
    time.sleep(60)
"""


def test_writer_killed_mid_transaction_leaves_every_committed_row(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "inside"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    db = ExperimentDB(path, busy_timeout_ms=5000)  # the dead writer's lock is gone with its process
    assert [r.metrics["i"] for r in db.query()] == [0.0, 1.0, 2.0]
    db.add(_record(0))
    assert db.count() == 4
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_writer_killed_at_random_moments_keeps_a_consistent_database(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    acknowledged = 0
    for delay in (0.4, 0.7, 1.0):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), "w", "100000"], stdout=subprocess.PIPE
        )
        time.sleep(delay)
        os.kill(writer.pid, signal.SIGKILL)
        out, _ = writer.communicate(timeout=30)
        acknowledged += len(out.split())
        count = ExperimentDB(path).count()
        assert acknowledged <= count <= acknowledged + 1  # every acknowledged row, at most the one in flight
        acknowledged = count
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
