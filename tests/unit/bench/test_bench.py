"""``metadl bench``: every row names shipped configs, and the runner trains, resumes, reuses and reports."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from metadl.bench import ROWS, BenchSettings, Cell, Row, find_rows, run_bench
from metadl.bench.report import plot_curves, scored_points
from metadl.bench.results import CellResult, RowResult, Score, ScoreKey, Training, read_row
from metadl.bench.runner import save_row, training_overrides
from metadl.cli import main
from metadl.config import find_config, load_config


def test_every_cell_names_a_shipped_config_whose_settings_match_the_cell():
    for row in ROWS:
        for cell in row.cells:
            cfg = load_config(find_config(cell.config), list(cell.overrides))
            assert cfg.eval.shots == cell.shots or cell.ways is not None, (row.name, cell.label)
            if cell.ways is None:
                assert cfg.dataset.name == "sinusoid" and cfg.sampler.shots == cell.shots
            elif cfg.learner.name != "protonet":  # ProtoNet trains 60-way and is tested at 5 and 20 ways
                assert cfg.sampler.ways == cell.ways, (row.name, cell.label)


def test_cells_that_share_a_run_share_its_training_settings():
    runs: dict[str, tuple] = {}
    for row in ROWS:
        for cell in row.cells:
            assert runs.setdefault(cell.run_name, (cell.config, cell.overrides)) == (
                cell.config,
                cell.overrides,
            )


def test_unknown_rows_are_refused_with_the_known_names():
    with pytest.raises(ValueError, match="maml-sinusoid"):
        find_rows(["maml-sinusiod"])
    with pytest.raises(ValueError, match="its cells are 1-shot, 5-shot"):
        find_rows(["maml-omniglot-5way:2-shot"])
    rows = find_rows(["maml-sinusoid:5-shot", "maml-omniglot-5way", "maml-sinusoid:20-shot"])
    assert [(r.name, [c.label for c in r.cells]) for r in rows] == [
        ("maml-omniglot-5way", ["1-shot", "5-shot"]),
        ("maml-sinusoid", ["5-shot", "20-shot"]),
    ]


def test_data_root_and_quick_mode_become_overrides(tmp_path):
    omniglot = next(c for row in ROWS for c in row.cells if c.config == "maml_omniglot_5w1s")
    sets = training_overrides(omniglot, BenchSettings(tmp_path, quick=True, data_root=Path("/data")))
    assert "dataset.root=/data/omniglot" in sets and "dataset.download=false" in sets
    assert "train.iterations=5" in sets and "train.val_every=0" in sets
    sinusoid = next(c for row in ROWS for c in row.cells if c.ways is None)
    assert not any(
        s.startswith("dataset.")
        for s in training_overrides(sinusoid, BenchSettings(tmp_path, data_root=Path("/d")))
    )


def tiny_row(tmp_path: Path) -> Row:
    raw = {
        "seed": 0,
        "device": "cpu",
        "dataset": {"name": "sinusoid"},
        "sampler": {"shots": 5, "queries": 5, "meta_batch": 4},
        "backbone": {"name": "mlp", "hidden": [16]},
        "learner": {"name": "maml", "inner_lr": 0.01},
        "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"iterations": 40, "val_every": 10, "checkpoint_every": 5, "val_episodes": 20},
        "eval": {"queries": 20, "episodes": 30},
    }
    config = tmp_path / "tiny_sinusoid.yaml"
    config.write_text(yaml.safe_dump(raw))
    cells = tuple(
        Cell(
            f"{k}-shot",
            str(config),
            k,
            1.0,
            run=f"tiny_{k}",
            overrides=(f"sampler.shots={k}", f"eval.shots={k}"),
        )
        for k in (5, 10)
    )
    return Row("tiny-sinusoid", "tiny sinusoid", "a test", cells, episodes=30)


def test_the_runner_trains_evaluates_resumes_and_reuses(tmp_path):
    row, out = tiny_row(tmp_path), tmp_path / "bench"
    log: list[str] = []
    untrained = run_bench(
        [row], BenchSettings(out, train=False), log=log.append
    )  # --no-train: nothing exists yet
    assert [c.score for c in untrained["tiny-sinusoid"].cells] == [None, None]
    assert "5-shot: not run / 10-shot: not run" in (out / "table.md").read_text()
    first = run_bench([row], BenchSettings(out, time_limit=1e-3), log=log.append)  # every run stops at once
    cells = first["tiny-sinusoid"].cells
    assert [c.training.complete for c in cells] == [False, False]
    assert all(1 <= c.training.iterations < 40 for c in cells)
    assert "stopped early" in (out / "table.md").read_text()

    second = run_bench([row], BenchSettings(out), log=log.append)  # resumed to the end, then evaluated
    for cell in second["tiny-sinusoid"].cells:
        assert cell.training.complete and cell.training.iterations == 40
        assert cell.score.metric == "mse" and cell.score.episodes == 30 and cell.score.mean > 0
        sessions = json.loads((out / "runs" / cell.training.run / "bench.json").read_text())["sessions"]
        assert [s["to"] for s in sessions][-1] == 40 and all(s["peak_rss_mib"] > 50 for s in sessions)
        assert cell.training.seconds > 0
    assert (out / "curves.png").stat().st_size > 1000

    log.clear()
    third = run_bench([row], BenchSettings(out), log=log.append)  # nothing left to do
    assert not any(line.startswith(("training", "evaluating")) for line in log)
    assert third == second
    one_cell = Row(row.name, row.setting, row.source, row.cells[:1], row.episodes)  # --rows ROW:LABEL
    assert (
        run_bench([one_cell], BenchSettings(out), log=log.append) == second
    )  # the other cell keeps its result
    table = (out / "table.md").read_text()
    assert "| tiny sinusoid | 1 / 1 | 5-shot: " in table and "`metadl bench --rows tiny-sinusoid`" in table


def test_bench_lists_its_rows(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(row.name in out for row in ROWS)
    assert main(["bench", "--rows", "nope", "--out", "unused"]) == 2


def test_runs_that_never_validated_still_get_their_test_score_plotted(tmp_path):
    training = Training("slow_run", str(tmp_path / "slow_run"), 3, 100, False, 1800.0, None)
    score = Score(ScoreKey("slow_run", 3, 20, 5, 10), 0.9, 0.01, 10, "accuracy", 1.0)
    cells = (CellResult("5-shot", 99.0, training, score), CellResult("1-shot", 98.0, None, None))
    results = {"row": RowResult("setting", "source", cells)}
    assert scored_points(results) == [("slow_run", "test, 20-way 5-shot", "val_accuracy", 0.5, 0.9, 0.01)]
    assert plot_curves(results, tmp_path / "curves.png") and (tmp_path / "curves.png").stat().st_size > 1000
    untimed_cell = CellResult("5-shot", 99.0, replace(training, seconds=None), score)
    untimed = {"row": RowResult("setting", "source", (untimed_cell,))}
    assert scored_points(untimed) == [] and not plot_curves(untimed, tmp_path / "none.png")


def test_saving_one_cell_keeps_the_cells_another_bench_saved_meanwhile(tmp_path):
    row, row_file = ROWS[0], tmp_path / "row.json"
    one, five = (CellResult(c.label, c.published, None, None) for c in row.cells)
    save_row(row_file, Row(row.name, row.setting, row.source, row.cells[1:]), [five])
    # a second bench, on the row's other cell, saves after the first
    save_row(row_file, Row(row.name, row.setting, row.source, row.cells[:1]), [one])
    assert [c["label"] for c in json.loads(row_file.read_text())["cells"]] == ["1-shot", "5-shot"]
    scored = replace(five, score=Score(ScoreKey("run", 1, 5, 5, 10), 0.9, 0.01, 10, "accuracy", 1.0))
    save_row(row_file, row, [scored])
    assert read_row(row_file) == RowResult(row.setting, row.source, (one, scored))
