"""Meta-regression on the real family over several training seeds and splits of the countries.

``benchmarks/meta_regression.py`` trains one model per learner on one split of the countries; this
script repeats its fertility protocol (K support years and 20 query years per task, meta-batch 16,
Adam 1e-3, the MLP 1-40-40 backbone; 10 test episodes per test country, seed 0) for every
``(split seed, training seed)`` pair: the split seed deals the 190 countries into 114 / 38 / 38
(``create_task_source("fertility", split_seed=...)``), the training seed sets the initial weights and
the training task stream. MAML and Meta-SGD get their constant variance from the split's validation
countries, as in ``meta_regression.py``; the per-task baselines (Bayesian ridge, GP) depend on the
split only.

Two kinds of interval are reported, both 95% (Student t):

* **over entities**: a unit is a (split, test country) pair; its score is the mean over its 10 episodes
  and over the training seeds; intervals are over all units (3 splits x 38 countries = 114 units);
* **over seeds**: the per-seed mean of each score over all units; intervals are over training seeds.

The margin is the paired difference of MSE, best baseline minus best meta-learner (both chosen by their
mean MSE over units), per unit and per seed. The target of issue 22 asks for the margin's interval to
exclude zero and the best meta-learner's 95%-interval coverage to lie in 90-97%.

Usage:
    python benchmarks/meta_regression_seeds.py --iterations 3000 --seeds 0,1,2 --splits 0,1,2 --shots 5 \
        --out fertility_seeds.json --cells fertility_cells.json --baseline-cells fertility_baselines.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from meta_regression import LEARNERS

from metadl.algorithms import create_learner
from metadl.evaluation.baselines import BASELINES
from metadl.evaluation.confidence import mean_ci95
from metadl.evaluation.regression import (
    Interval,
    RegressionScores,
    calibrate_variance,
    learner_regressor,
    score_regressor,
)
from metadl.models import create_backbone
from metadl.tasks import create_task_source
from metadl.tasks.task import Task
from metadl.training import meta_train

SCORES = ("mse", "nll", "coverage")


def countries(split: str, k: int, per_country: int, seed: int, split_seed: int) -> list[Task]:
    source = create_task_source(
        "fertility", split=split, k_shot=k, n_query=20, seed=seed, split_seed=split_seed
    )
    return [source.sample(name) for name in source.names for _ in range(per_country)]


def train_and_score(name: str, k: int, seed: int, split_seed: int, iterations: int,
                    val: list[Task], test: list[Task]) -> tuple[RegressionScores, float]:  # fmt: skip
    """One learner trained with ``seed`` on the train countries of ``split_seed``, scored on ``test``."""
    torch.manual_seed(seed)  # seed 0 gives meta_regression.py's initial weights
    learner = create_learner(name, backbone=create_backbone("mlp", in_features=1, hidden=[40, 40]),
                             out_features=1, **LEARNERS[name])  # fmt: skip
    train = create_task_source(
        "fertility", split="train", k_shot=k, n_query=20, seed=seed, split_seed=split_seed
    )
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
    start = time.perf_counter()
    meta_train(learner, train, optimizer, iterations=iterations, meta_batch=16, progress=False)
    seconds = time.perf_counter() - start
    variance = None if learner.capabilities.uncertainty else calibrate_variance(learner, val)
    return score_regressor(learner_regressor(learner, variance), test), seconds


@dataclass
class Grid:
    """Per learner: ``{(split, seed): per-country scores}``; baselines have seed ``None``."""

    scores: dict[str, dict[tuple[int, int | None], dict[str, tuple[float, float, float]]]]

    def units(self, name: str) -> dict[tuple[int, str], np.ndarray]:
        """Per (split, country): the scores averaged over training seeds, ``(3,)``."""
        rows: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
        for (split, _), groups in self.scores[name].items():
            for country, values in groups.items():
                rows.setdefault((split, country), []).append(values)
        return {unit: np.mean(values, axis=0) for unit, values in rows.items()}

    def per_seed(self, name: str, seeds: list[int]) -> np.ndarray:
        """``(seeds, 3)``: each training seed's mean over all units (baselines: the same every seed)."""
        out = []
        for seed in seeds:
            values = [
                v
                for (_, s), groups in self.scores[name].items()
                if s in (seed, None)
                for v in groups.values()
            ]
            out.append(np.mean(values, axis=0))
        return np.array(out)


def interval(values: np.ndarray) -> Interval:
    return Interval(*mean_ci95(values))


def report(grid: Grid, seeds: list[int], k: int) -> dict:
    names = [*LEARNERS, *BASELINES]
    rows = {}
    for name in names:
        units = np.array(list(grid.units(name).values()))
        seed_means = grid.per_seed(name, seeds)
        rows[name] = {
            "units": len(units),
            **{f"{s}_entities": interval(units[:, j]).__dict__ for j, s in enumerate(SCORES)},
            **{f"{s}_seeds": interval(seed_means[:, j]).__dict__ for j, s in enumerate(SCORES)},
        }
    best_meta = min(LEARNERS, key=lambda n: rows[n]["mse_entities"]["mean"])
    best_base = min(BASELINES, key=lambda n: rows[n]["mse_entities"]["mean"])
    meta_units, base_units = grid.units(best_meta), grid.units(best_base)
    per_unit = np.array([base_units[u][0] - meta_units[u][0] for u in meta_units])
    per_seed = grid.per_seed(best_base, seeds)[:, 0] - grid.per_seed(best_meta, seeds)[:, 0]
    margin = {"entities": interval(per_unit).__dict__, "seeds": interval(per_seed).__dict__}
    return {
        "shots": k,
        "rows": rows,
        "best_meta": best_meta,
        "best_baseline": best_base,
        "margin_mse": margin,
    }


def _show(row: dict, key: str, percent: bool = False) -> str:
    mean, half = row[key]["mean"], row[key]["half"]
    return f"{100 * mean:.1f}% ± {100 * half:.1f}%" if percent else f"{mean:.4f} ± {half:.4f}"


def markdown(result: dict) -> str:
    lines = [
        "| K | learner | MSE (CI over entities) | MSE (CI over seeds) | NLL (entities) | 95% coverage (entities) | coverage (seeds) |",
        "|---|---|---|---|---|---|---|",
    ]
    k = result["shots"]
    for name, r in result["rows"].items():
        lines.append(f"| {k} | {name} | {_show(r, 'mse_entities')} | {_show(r, 'mse_seeds')} | {_show(r, 'nll_entities')} | "
                     f"{_show(r, 'coverage_entities', True)} | {_show(r, 'coverage_seeds', True)} |")  # fmt: skip
    m = result["margin_mse"]
    lines.append(
        f"\nMSE margin ({result['best_baseline']} - {result['best_meta']}): "
        f"{m['entities']['mean']:.4f} ± {m['entities']['half']:.4f} over entities, "
        f"{m['seeds']['mean']:.4f} ± {m['seeds']['half']:.4f} over seeds"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--seeds", default="0,1,2", help="training seeds")
    parser.add_argument("--splits", default="0,1,2", help="seeds of the splits of the countries")
    parser.add_argument("--shots", default="5")
    parser.add_argument("--per-country", type=int, default=10, help="test episodes per test country")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--cells", help="JSON file of finished cells: written after each, read to resume")
    parser.add_argument("--baseline-cells", help="the same for the per-task baselines' scores")
    parser.add_argument(
        "--baselines-only", action="store_true", help="score the baselines (and cache them) only"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    splits = [int(s) for s in args.splits.split(",")]
    cells: dict[str, dict] = {}  # "K/split/seed/name" -> {"groups": per-country scores, "seconds": ...}
    if args.cells and Path(args.cells).is_file():  # resume: cells already trained are kept
        cells = json.loads(Path(args.cells).read_text())
    fitted: dict[str, dict] = {}  # "K/split/name/episodes" -> per-country scores of a per-task baseline
    if args.baseline_cells and Path(args.baseline_cells).is_file():
        fitted = json.loads(Path(args.baseline_cells).read_text())
    results = []
    for k in (int(s) for s in args.shots.split(",")):
        grid = Grid({name: {} for name in [*LEARNERS, *BASELINES]})
        for split in splits:
            test = countries("test", k, args.per_country, seed=0, split_seed=split)
            val = countries("val", k, 5, seed=1, split_seed=split)
            for name, fit in BASELINES.items():
                key = f"{k}/{split}/{name}/{args.per_country}"
                if key not in fitted:
                    fitted[key] = score_regressor(fit, test).per_group
                    if args.baseline_cells:
                        Path(args.baseline_cells).write_text(json.dumps(fitted))
                grid.scores[name][(split, None)] = {c: tuple(v) for c, v in fitted[key].items()}
            if args.baselines_only:
                continue
            for seed in seeds:
                for name in LEARNERS:
                    key = f"{k}/{split}/{seed}/{name}/{args.iterations}"
                    if key not in cells:
                        scores, seconds = train_and_score(name, k, seed, split, args.iterations, val, test)
                        cells[key] = {"groups": scores.per_group, "seconds": round(seconds, 1)}
                        print(f"K={k} split {split} seed {seed} {name}: MSE {scores.mse} NLL {scores.nll} "
                              f"coverage {scores.coverage} ({seconds:.0f} s)", flush=True)  # fmt: skip
                        if args.cells:
                            Path(args.cells).write_text(json.dumps(cells))
                    grid.scores[name][(split, seed)] = {c: tuple(v) for c, v in cells[key]["groups"].items()}
        if args.baselines_only:
            continue
        result = report(grid, seeds, k)
        results.append(result)
        print(markdown(result), flush=True)
    if args.out:
        meta = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
                "torch": torch.__version__, "iterations": args.iterations, "seeds": seeds, "splits": splits}  # fmt: skip
        train_seconds = {key: cell["seconds"] for key, cell in cells.items()}
        Path(args.out).write_text(
            json.dumps({"meta": meta, "results": results, "train_seconds": train_seconds}, indent=1)
        )


if __name__ == "__main__":
    main()
