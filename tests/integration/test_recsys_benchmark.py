"""The cold-start benchmark script end to end on generated RecBole atomic files (seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metadl.data.synthetic_ratings import planted_ratings

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_writes_every_recommender_and_the_paired_rows(tmp_path):
    r = planted_ratings(n_users=60, n_items=40, seed=0)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += [
        f"{r.user_ids[u]}\t{r.item_ids[i]}\t{y:g}\t{t:g}"
        for u, i, y, t in zip(
            r.user.tolist(), r.item.tolist(), r.rating.tolist(), r.time.tolist(), strict=True
        )
    ]
    (tmp_path / "toy.inter").write_text("\n".join(lines) + "\n")
    out = tmp_path / "section.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "recsys_coldstart.py"), "--recbole", str(tmp_path),
           "--name", "toy", "--splits", "2", "--steps", "2", "--twohead-steps", "2", "--out", str(out), "--json", str(tmp_path / "r.json")]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    text = out.read_text()
    names = ("random", "global_mean", "item_mean", "user_item_bias", "popularity", "mf", "melu", "ridge")
    names += ("twohead",)
    for name in names:
        assert f"| {name} |" in text
    assert all(f"| {m} - " in text for m in ("melu", "ridge", "twohead")) and "12 (user, split) pairs" in text


@pytest.mark.slow  # four runs of the script
def test_benchmark_pools_runs_of_separate_splits(tmp_path):
    r = planted_ratings(n_users=60, n_items=40, seed=0)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += [f"{r.user_ids[u]}\t{r.item_ids[i]}\t{y:g}\t{t:g}"
              for u, i, y, t in zip(r.user.tolist(), r.item.tolist(), r.rating.tolist(), r.time.tolist(), strict=True)]  # fmt: skip
    (tmp_path / "toy.inter").write_text("\n".join(lines) + "\n")
    script = [sys.executable, str(ROOT / "benchmarks" / "recsys_coldstart.py")]
    common = [
        "--recbole",
        str(tmp_path),
        "--name",
        "toy",
        "--meta",
        "twohead",
        "--twohead-steps",
        "2",
        "--mf-fixed",
    ]
    for seeds, name in ((["0", "1"], "both"), (["0"], "a"), (["1"], "b")):
        cmd = [
            *script,
            *common,
            "--seeds",
            *seeds,
            "--json",
            str(tmp_path / f"{name}.json"),
            "--out",
            str(tmp_path / f"{name}.md"),
        ]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    merge = [
        *script,
        "--merge",
        str(tmp_path / "a.json"),
        str(tmp_path / "b.json"),
        "--out",
        str(tmp_path / "m.md"),
    ]
    subprocess.run(merge, check=True, capture_output=True, text=True, timeout=300)
    table = [line for line in (tmp_path / "m.md").read_text().splitlines() if line.startswith("| ")]
    expected = [line for line in (tmp_path / "both.md").read_text().splitlines() if line.startswith("| ")]
    strip = [line.rsplit("|", 2)[0] if "fit + eval" in line or " s |" in line else line for line in table]
    assert strip == [
        line.rsplit("|", 2)[0] if "fit + eval" in line or " s |" in line else line for line in expected
    ]
    assert "| twohead - " in "\n".join(table) and "| melu |" not in "\n".join(table)
