"""Meta-regression: neural processes (CNP, ANP) beside MAML and Meta-SGD, and per-task baselines.

Two task families, one model per learner and shot count, all trained with the same short budget:

* ``sinusoid`` (the reproduction table's protocol, ``docs/benchmarks.md``): A ~ U[0.1, 5],
  phi ~ U[0, pi], x ~ U[-5, 5]; trained on K-shot tasks with 10 query points, meta-batch 25, Adam 1e-3
  (training stream seed 1000, validation seed 1); tested on 1,000 K-shot tasks with 100 query points
  each (test seed 0); MAML and Meta-SGD adapt with
  one step of inner lr 0.01 (Meta-SGD learns its rates from there). MSE ± 95% CI over tasks.
* ``fertility`` (real: one task per country, World Bank fertility rate by year, ``metadl.tasks.fertility``;
  needs ``pip install metadl[regression]``): trained on the 114 train countries (K support years and 20
  query years per task, redrawn every time), meta-batch 16; tested on the 38 test countries, 10 episodes
  each (K support years, 20 query years, seed 0). Scores are averaged per country and the 95% CI is over
  the 38 countries; the margin of the best meta-learner over the best baseline is the paired per-country
  difference of MSE. Baselines: per-task Bayesian ridge and GP (``metadl.evaluation.baselines``).

Every learner: the MLP backbone 1-40-40 (ReLU). CNP / ANP: hidden 128 (ANP: 8 heads, latent 128).
MAML and Meta-SGD predict no variance: theirs is the constant that maximises their likelihood on
validation tasks (their mean query MSE there: 200 sinusoid tasks of seed 1, or the 38 validation
countries x 5 episodes), so that their NLL and coverage are defined.

Usage:
    python benchmarks/meta_regression.py [--iterations 10000] [--shots 5,10] [--families sinusoid,fertility]
                                         [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from metadl.algorithms import Learner, create_learner
from metadl.evaluation.baselines import BASELINES
from metadl.evaluation.regression import (
    Interval,
    RegressionScores,
    calibrate_variance,
    learner_regressor,
    paired_difference,
    score_regressor,
)
from metadl.models import create_backbone
from metadl.tasks import SinusoidSampler, create_task_source
from metadl.tasks.task import Task
from metadl.training import meta_train

LEARNERS: dict[str, dict[str, float | int]] = {
    "cnp": {"hidden": 128},
    "anp": {"hidden": 128, "heads": 8, "latent_dim": 128},
    "maml": {"inner_lr": 0.01, "inner_steps": 1},
    "metasgd": {"inner_lr": 0.01, "inner_steps": 1},
}


@dataclass(frozen=True)
class Row:
    """One scored regressor on one family and shot count."""

    family: str
    shots: int
    name: str
    mse: Interval
    nll: Interval
    coverage: Interval
    train_iterations: int
    train_seconds: float
    variance: str  # "predicted" or "constant (validation MSE)" or "per-task fit"


@dataclass(frozen=True)
class Family:
    """How to draw training batches, validation tasks and test tasks of one family."""

    name: str
    train: Callable[[int], object]  # shots -> a source with sample_batch
    val: Callable[[int], list[Task]]
    test: Callable[[int], list[Task]]
    meta_batch: int


def sinusoid(quick: bool) -> Family:
    n_test = 100 if quick else 1000
    return Family(
        "sinusoid",
        train=lambda k: SinusoidSampler(k_shot=k, n_query=10, seed=1000),  # a stream of its own
        val=lambda k: list(SinusoidSampler(k_shot=k, n_query=100, seed=1).sample_batch(200)),
        test=lambda k: list(SinusoidSampler(k_shot=k, n_query=100, seed=0).sample_batch(n_test)),
        meta_batch=25,
    )


def countries(split: str, k: int, per_country: int, seed: int) -> list[Task]:
    source = create_task_source("fertility", split=split, k_shot=k, n_query=20, seed=seed)
    return [source.sample(name) for name in source.names for _ in range(per_country)]


def fertility(quick: bool) -> Family:
    return Family(
        "fertility",
        train=lambda k: create_task_source("fertility", split="train", k_shot=k, n_query=20, seed=0),
        val=lambda k: countries("val", k, 5, seed=1),
        test=lambda k: countries("test", k, 3 if quick else 10, seed=0),
        meta_batch=16,
    )


def build(name: str) -> Learner:
    torch.manual_seed(0)
    backbone = create_backbone("mlp", in_features=1, hidden=[40, 40])
    return create_learner(name, backbone=backbone, out_features=1, **LEARNERS[name])


def run_family(family: Family, shots: int, iterations: int) -> list[Row]:
    rows, test, val = [], family.test(shots), family.val(shots)
    scored: dict[str, RegressionScores] = {}
    for name in LEARNERS:
        learner = build(name)
        optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
        start = time.perf_counter()
        meta_train(learner, family.train(shots), optimizer, iterations=iterations,
                   meta_batch=family.meta_batch, progress=False)  # fmt: skip
        seconds = time.perf_counter() - start
        own = learner.capabilities.uncertainty
        variance = None if own else calibrate_variance(learner, val)
        scores = score_regressor(learner_regressor(learner, variance), test)
        scored[name] = scores
        kind = "predicted" if own else f"constant {variance:.4g} (validation MSE)"
        rows.append(
            Row(family.name, shots, name, scores.mse, scores.nll, scores.coverage, iterations, seconds, kind)
        )
        print(f"  {family.name} {shots}-shot {name}: MSE {scores.mse}  NLL {scores.nll}  "
              f"coverage {scores.coverage}  ({seconds:.0f} s)", flush=True)  # fmt: skip
    for name, fit in BASELINES.items():
        scores = score_regressor(fit, test)
        scored[name] = scores
        rows.append(
            Row(family.name, shots, name, scores.mse, scores.nll, scores.coverage, 0, 0.0, "per-task fit")
        )
        print(
            f"  {family.name} {shots}-shot {name}: MSE {scores.mse}  NLL {scores.nll}  coverage {scores.coverage}"
        )
    best_meta = min(LEARNERS, key=lambda n: scored[n].mse.mean)
    best_base = min(BASELINES, key=lambda n: scored[n].mse.mean)
    margin = paired_difference(scored[best_meta], scored[best_base])
    print(f"  margin (MSE of {best_base} - MSE of {best_meta}, paired): {margin}", flush=True)
    return rows


def markdown(rows: list[Row]) -> str:
    lines = [
        "| family | K | learner | MSE | NLL | 95% coverage | training |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        train = f"{r.train_iterations:,} it, {r.train_seconds / 60:.1f} min" if r.train_iterations else "-"
        lines.append(f"| {r.family} | {r.shots} | {r.name} | {r.mse} | {r.nll} | "
                     f"{100 * r.coverage.mean:.1f}% ± {100 * r.coverage.half:.1f}% | {train} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10000, help="meta-training iterations per model")
    parser.add_argument("--shots", default="5,10")
    parser.add_argument("--families", default="sinusoid,fertility")
    parser.add_argument("--quick", action="store_true", help="100 iterations, fewer test tasks (a smoke run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    iterations = 100 if args.quick else args.iterations
    builders = {"sinusoid": sinusoid, "fertility": fertility}
    rows: list[Row] = []
    for family_name in args.families.split(","):
        family = builders[family_name](args.quick)
        for shots in (int(s) for s in args.shots.split(",")):
            rows += run_family(family, shots, iterations)
    print(markdown(rows))
    if args.out:
        meta = {
            "machine": platform.processor() or platform.machine(),
            "threads": args.threads,
            "torch": torch.__version__,
        }
        args.out.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
