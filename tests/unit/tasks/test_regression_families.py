"""The harder synthetic families and the real fertility family: shapes, the functions they draw, the split."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metadl.tasks import create_task_source
from metadl.tasks.fertility import AGGREGATES, read_fertility, split_countries, statsmodels_fertility_csv
from metadl.tasks.functions import Sinusoid2DSampler, StepFunctionSampler
from metadl.tasks.source import TaskSourceError


def test_step_functions_are_piecewise_constant_with_at_most_max_steps_jumps():
    batch = StepFunctionSampler(k_shot=30, n_query=30, max_steps=2, noise=0.0, seed=0).sample_batch(50)
    x = torch.cat([batch.support_x, batch.query_x], 1).squeeze(-1)
    y = torch.cat([batch.support_y, batch.query_y], 1).squeeze(-1)
    jumps = []
    for xs, ys in zip(x, y, strict=True):
        ordered = ys[xs.argsort()]
        jumps.append(int((ordered[1:] != ordered[:-1]).sum()))
        assert len(ys.unique()) <= 3 and ys.abs().max() <= 2
    assert max(jumps) <= 2 and min(jumps) <= 1 < max(jumps)  # both 1 and 2 steps occur


def test_step_function_noise_has_the_requested_scale():
    clean = StepFunctionSampler(k_shot=40, n_query=1, noise=0.0, seed=3).sample_batch(20)
    noisy = StepFunctionSampler(k_shot=40, n_query=1, noise=0.5, seed=3).sample_batch(20)
    assert torch.equal(clean.support_x, noisy.support_x)
    assert (noisy.support_y - clean.support_y).std().item() == pytest.approx(0.5, rel=0.1)


def test_sinusoid_2d_is_a_plane_wave():
    """Each task is fitted almost exactly by ``a sin(w . x) + b cos(w . x)`` for some ``w`` on a grid of
    frequencies and directions (least squares for all grid points at once)."""
    batch = Sinusoid2DSampler(k_shot=40, n_query=10, seed=0).sample_batch(8)
    x, y = batch.support_x, batch.support_y
    assert x.shape == (8, 40, 2) and y.abs().max() <= 5
    f, a = torch.meshgrid(torch.linspace(0.5, 1.5, 41), torch.linspace(0, 2 * torch.pi, 181), indexing="ij")
    ws = torch.stack([f * a.cos(), f * a.sin()], -1).reshape(-1, 2)  # (W, 2)
    for xs, ys in zip(x, y, strict=True):
        proj = (xs @ ws.T).T  # (W, 40)
        design = torch.stack([proj.sin(), proj.cos()], -1)  # (W, 40, 2)
        coef = torch.linalg.lstsq(design, ys.expand(len(ws), -1, -1)).solution
        best = (design @ coef - ys).pow(2).sum((1, 2)).min()
        assert best < 0.05 * ys.pow(2).sum() + 1e-3


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (StepFunctionSampler, {"k_shot": 0, "n_query": 1}, "k_shot and n_query"),
        (StepFunctionSampler, {"k_shot": 1, "n_query": 1, "max_steps": 0}, "max_steps"),
        (Sinusoid2DSampler, {"k_shot": 2, "n_query": 0}, "k_shot and n_query"),
    ],
)
def test_bad_arguments_name_the_value(cls, kwargs, message):
    with pytest.raises(TaskSourceError, match=message):
        cls(**kwargs)


def _wide_csv(path: Path, rows: dict[str, list[str]]) -> Path:
    years = ",".join(str(1960 + i) for i in range(len(next(iter(rows.values())))))
    lines = [f"Country Name,Country Code,Indicator Name,Indicator Code,{years}"]
    lines += [f"{code} land,{code},Fertility,SP.DYN.TFRT.IN,{','.join(v)}" for code, v in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fertility_reader_keeps_float_years_and_rates_and_drops_aggregates_and_sparse_countries(tmp_path):
    path = _wide_csv(
        tmp_path / "f.csv",
        {"AAA": ["6.5", "6.0", "", "5.0"], "OED": ["2", "2", "2", "2"], "BBB": ["", "", "", "3.0"]},
    )
    table = read_fertility(path, min_years=3)
    assert table.group_names == ("AAA",) and "OED" in AGGREGATES
    assert table.x.dtype == table.y.dtype == torch.float32
    assert table.x.flatten().tolist() == pytest.approx(
        [0.0, 0.1, 0.3]
    )  # decades since 1960; the missing 1962 skipped
    assert table.y.flatten().tolist() == [6.5, 6.0, 5.0]


def test_fertility_reader_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(TaskSourceError, match=r"f.csv:2: .*AAA"):
        read_fertility(_wide_csv(tmp_path / "f.csv", {"AAA": ["6.5", "x"]}), min_years=1)
    (tmp_path / "g.csv").write_text("a,b\n1,2\n")
    with pytest.raises(TaskSourceError, match="World Bank wide format"):
        read_fertility(tmp_path / "g.csv")


def test_country_splits_are_disjoint_and_cover_every_country():
    names = tuple(f"C{i:03d}" for i in range(190))
    parts = [set(split_countries(names, s)) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [114, 38, 38]
    assert set.union(*parts) == set(names) and not parts[0] & parts[1] and not parts[1] & parts[2]
    assert split_countries(names, "test") == split_countries(tuple(reversed(names)), "test")


def test_the_real_fertility_family_from_statsmodels():
    try:
        path = statsmodels_fertility_csv()
    except TaskSourceError:
        pytest.skip("statsmodels is not installed (pip install metadl[regression])")
    sizes = {
        s: len(create_task_source("fertility", split=s, path=path).names) for s in ("train", "val", "test")
    }
    assert sizes == {"train": 114, "val": 38, "test": 38}
    task = create_task_source("fertility", split="test", k_shot=5, n_query=20, seed=0).sample()
    assert task.support_y.dtype == torch.float32 and task.support_y.shape == (5, 1)
    assert task.query_y.min() > 0.5 and task.query_y.max() < 10  # births per woman
