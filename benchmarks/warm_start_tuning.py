"""Warm-started tuning (issue 19): warm TPE against cold TPE and random search (twice the budget).

1. **Database**: ``metadl populate`` on the generated task distributions that are not held out (random
   points of the tuning space, each a real short training; resumable, ``--db``): 30 glyph distributions,
   and with ``--data`` 12 more of Omniglot alphabet subsets and text intents.
2. **Table**: every point of the space (90 for images, 60 for vectors) trained once on each held-out
   distribution (validation and test score, seconds; resumable, ``--table``): 6 glyph distributions, and
   with ``--data`` 2 Omniglot and 2 text-intent ones. The held-out distributions are never in the database.
3. **Searches** replayed on the table (a tabular benchmark, as HPO-B and the NAS-Bench tables do: each trial
   is the recorded training of its point, so ten seeds of three searches cost no further training):
   cold TPE and warm TPE with ``--budget`` trials, random search with twice that. Warm TPE first runs the
   ``--warm`` configurations :func:`metadl.tune.warmstart.warm_start` proposes from the database (5 nearest
   distributions, 2 best configurations each, ranked by the random-forest meta-model), then TPE.
4. **Report**: anytime curves (normalised best validation score against trials and against the recorded
   seconds; 1 = the best point of the table, 0 = its average point) with 95% CIs over seeds; how many trials
   warm TPE needs to reach cold TPE's final validation score; the test score of each search's final choice.

Warm-start settings (``--neighbours``, ``--per-neighbour``, ``--pool``) are chosen with ``--validation``: the
same replay on the tables of 6 distributions of the database (each left out of its own warm start), never
on the held-out ones.

Usage:
    nice -n 5 python benchmarks/warm_start_tuning.py [--db FILE] [--table FILE] [--held-out N]
        [--seeds 10] [--budget 10] [--warm 3] [--plot FILE] [--data ../shared/data] [--validation]
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from metadl.evaluation.confidence import mean_ci95
from metadl.experiments import ExperimentDB, RunRecord
from metadl.tune.distributions import find_distribution, task_distributions
from metadl.tune.populate import populate
from metadl.tune.space import Params, grid, modality_of, params_key, suggest
from metadl.tune.warmstart import warm_start

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = (
    "glyphs-easy-thick-16px-5w5s",
    "glyphs-medium-thin-20px-5w1s",
    "glyphs-medium-thick-16px-10w1s",
    "glyphs-hard-thin-16px-5w1s",
    "glyphs-hard-thick-20px-5w5s",
    "glyphs-easy-thin-20px-10w1s",
)
# With --data: real-data distributions held out too (two Omniglot alphabet subsets, two text-intent subsets).
HELD_OUT_REAL = (
    "omniglot-g5-28px-5w5s",
    "omniglot-g7-20px-10w1s",
    "clinc150-kitchen_and_dining+meta-5w1s",
    "banking77-all-10w1s",
)
DATA_FOLDERS = ("omniglot", "clinc150", "banking77")
# --validation: distributions of the database with a full table of their own, to choose warm-start settings
# on (each is excluded from its own warm start, as a held-out one is); never the held-out ones.
VALIDATION = (
    "glyphs-medium-thin-16px-5w5s",
    "glyphs-hard-thick-16px-10w1s",
    "omniglot-g1-20px-5w1s",
    "omniglot-g3-16px-5w5s",
    "clinc150-credit_cards+home-5w5s",
    "clinc150-utility+work-5w1s",
)
TIMES = (1, 3, 5, 10, 20)  # time budgets, in mean trials' worth of recorded seconds on that distribution


@dataclass(frozen=True)
class Table:
    """One held-out distribution's recorded trials: point -> (validation, test, seconds)."""

    name: str
    scores: dict[str, tuple[float, float, float]]
    features: dict[str, float]

    @property
    def mean_seconds(self) -> float:
        return float(np.mean([s for _, _, s in self.scores.values()]))

    def normalise(self, value: float) -> float:
        vals = [v for v, _, _ in self.scores.values()]
        return (value - float(np.mean(vals))) / (max(vals) - float(np.mean(vals)))


@dataclass(frozen=True)
class Trace:
    """A search's trials in order: validation, test and seconds of each."""

    val: list[float]
    test: list[float]
    seconds: list[float]

    def best_so_far(self) -> np.ndarray:
        return np.maximum.accumulate(self.val)

    def incumbent_test(self, trials: int) -> float:
        return self.test[int(np.argmax(self.val[:trials]))]

    def best_at_time(self, seconds: float) -> float:
        """The best validation score of the trials finished within ``seconds`` (NaN before the first one)."""
        done = np.cumsum(self.seconds) <= seconds
        return float(np.max(np.array(self.val)[done])) if done.any() else float("nan")


def search(
    table: Table, sampler: optuna.samplers.BaseSampler, trials: int, first: Sequence[Params] = ()
) -> Trace:
    """Replay an Optuna search on the table (``first`` enqueued before the sampler takes over)."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    modality = modality_of(table.features)
    for params in first:
        study.enqueue_trial(params)
    trace = Trace([], [], [])

    def objective(trial: optuna.Trial) -> float:
        val, test, seconds = table.scores[params_key(suggest(trial.suggest_categorical, modality))]
        trace.val.append(val)
        trace.test.append(test)
        trace.seconds.append(seconds)
        return val

    study.optimize(objective, n_trials=trials)
    return trace


def load_table(db: ExperimentDB, name: str) -> Table:
    rows = db.query(distribution=name, kind="trial")
    scores = {
        params_key(r.params): (r.metrics["val_accuracy"], r.metrics["test_accuracy"], r.seconds or 0.0)
        for r in rows
    }
    points = len(grid(modality_of(rows[0].metafeatures))) if rows else 90
    if len(scores) < points:
        raise SystemExit(
            f"{name}: the table holds {len(scores)} of {points} points; run without --no-train to fill it"
        )
    return Table(name, scores, rows[0].metafeatures)


@dataclass(frozen=True)
class WarmSettings:
    """How the warm start proposes its first trials (the arguments of :func:`warm_start`)."""

    top: int = 3
    neighbours: int = 5
    per_neighbour: int = 2
    pool: str = "neighbours"


def run(
    tables: list[Table], records: list[RunRecord], seeds: int, budget: int, warm: WarmSettings
) -> dict[str, list[list[Trace]]]:
    """traces[method][seed][distribution]."""
    out: dict[str, list[list[Trace]]] = {"warm TPE": [], "cold TPE": [], f"random ({2 * budget})": []}
    for seed in range(seeds):
        row: dict[str, list[Trace]] = {k: [] for k in out}
        for table in tables:
            plan = warm_start(
                records, table.features, exclude={table.name}, seed=seed, top=warm.top,
                neighbours=warm.neighbours, per_neighbour=warm.per_neighbour, pool=warm.pool,
            )  # fmt: skip
            assert table.name not in plan.trained_on
            first = [c.params for c in plan.candidates]
            row["warm TPE"].append(
                search(table, optuna.samplers.TPESampler(seed=seed, n_startup_trials=5), budget, first)
            )
            row["cold TPE"].append(
                search(table, optuna.samplers.TPESampler(seed=seed, n_startup_trials=5), budget)
            )
            row[f"random ({2 * budget})"].append(
                search(table, optuna.samplers.RandomSampler(seed=seed), 2 * budget)
            )
        for k in out:
            out[k].append(row[k])
    return out


def per_seed(
    traces: list[list[Trace]], tables: list[Table], value: Callable[[Trace, Table], float]
) -> list[float]:
    """The mean over distributions of ``value``, one number per seed."""
    return [float(np.nanmean([value(t, tab) for t, tab in zip(row, tables, strict=True)])) for row in traces]


def ci(values: Sequence[float]) -> str:
    """``mean ± half-width`` over seeds; n/a when some seed has no finished trial yet."""
    m, h = mean_ci95(values)
    return "n/a" if math.isnan(m) else f"{m:.3f} ± {h:.3f}"


def report(traces: dict[str, list[list[Trace]]], tables: list[Table], budget: int, plot: Path) -> str:
    lines = [
        "| search | trials | normalised best validation after 1 / 3 / budget / all its trials | test acc. of final choice |",
        "|---|---|---|---|",
    ]
    for method, runs in traces.items():
        n = len(runs[0][0].val)
        at = [
            per_seed(runs, tables, lambda t, tab, k=k: tab.normalise(t.best_so_far()[k - 1]))
            for k in (1, 3, budget, n)
        ]
        test = per_seed(runs, tables, lambda t, _tab: t.incumbent_test(len(t.val)))
        lines.append(f"| {method} | {n} | {' / '.join(ci(a) for a in at)} | {ci(test)} |")
    warm, cold = traces["warm TPE"], traces["cold TPE"]
    needed, third = [], budget // 3
    for w_row, c_row in zip(warm, cold, strict=True):
        for w, c in zip(w_row, c_row, strict=True):
            reached = np.nonzero(w.best_so_far() >= c.best_so_far()[-1])[0]
            needed.append(int(reached[0]) + 1 if reached.size else budget + 1)
    diff = [a - b for a, b in zip(per_seed(warm, tables, lambda t, _: t.incumbent_test(budget)),
                                  per_seed(cold, tables, lambda t, _: t.incumbent_test(budget)), strict=True)]  # fmt: skip
    lines += [
        "",
        f"Warm TPE reached cold TPE's final validation score (after {budget} trials) within {third} trials in "
        f"{sum(k <= third for k in needed)} of {len(needed)} (distribution, seed) pairs, within {budget} in "
        f"{sum(k <= budget for k in needed)}; median trials needed {int(np.median(needed))} "
        f"({budget + 1} = not within the budget). Test accuracy of the final choice, warm minus cold: {ci(diff)}.",
        "",
        "Normalised best validation score within a time budget of k mean trials' recorded seconds (k = "
        + ", ".join(map(str, TIMES))
        + "; a search with no finished trial yet is left out of its distribution's mean): "
        + "; ".join(
            f"{method}: "
            + ", ".join(
                ci(
                    per_seed(
                        runs, tables, lambda t, tab, k=k: tab.normalise(t.best_at_time(k * tab.mean_seconds))
                    )
                )
                for k in TIMES
            )
            for method, runs in traces.items()
        ),
    ]
    draw(traces, tables, plot)
    return "\n".join(lines)


def draw(traces: dict[str, list[list[Trace]]], tables: list[Table], path: Path) -> None:
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    by_trial, by_time = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    grid_s = np.linspace(0.5, max(TIMES), 48)
    for method, runs in traces.items():
        n = len(runs[0][0].val)
        for ax, xs, value in (
            (by_trial, np.arange(1, n + 1), lambda t, tab, x: tab.normalise(t.best_so_far()[int(x) - 1])),
            (by_time, grid_s, lambda t, tab, x: tab.normalise(t.best_at_time(x * tab.mean_seconds))),
        ):
            stats = [mean_ci95(per_seed(runs, tables, lambda t, tab, x=x, f=value: f(t, tab, x))) for x in xs]
            mean, half = np.array([m for m, _ in stats]), np.array([h for _, h in stats])
            ax.plot(xs, mean, label=method)
            ax.fill_between(xs, mean - half, mean + half, alpha=0.2)
    by_trial.set_xlabel("trials")
    by_time.set_xlabel("recorded training time (in mean trials of the distribution)")
    for ax in (by_trial, by_time):
        ax.set_ylabel("normalised best validation score")
        ax.grid(alpha=0.3)
    by_trial.legend()
    for ax in (by_trial, by_time):
        ax.set_ylim(-1.0, 1.1)  # a first trial far below the average point would flatten the rest
    fig.savefig(path, dpi=100, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "runs" / "warm-start" / "db.sqlite")
    parser.add_argument("--table", type=Path, default=ROOT / "runs" / "warm-start" / "table.sqlite")
    parser.add_argument(
        "--held-out", type=int, default=len(HELD_OUT), help="use the first N held-out distributions"
    )
    parser.add_argument("--trials-per-distribution", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=10)
    parser.add_argument("--warm", type=int, default=3, help="warm-start trials")
    parser.add_argument("--neighbours", type=int, default=5)
    parser.add_argument("--per-neighbour", type=int, default=2)
    parser.add_argument("--pool", choices=["neighbours", "grid"], default="neighbours")
    parser.add_argument(
        "--validation", action="store_true",
        help="replay on the VALIDATION distributions' tables (in --table) instead of the held-out ones",
    )  # fmt: skip
    parser.add_argument("--no-train", action="store_true", help="use the database and table as they are")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "warm-start-tuning.png")
    parser.add_argument(
        "--data", type=Path, metavar="DIR",
        help="a folder holding omniglot/, clinc150/, banking77/: adds their distributions (4 more held out)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings(
        "ignore", "Mean of empty slice", RuntimeWarning
    )  # no trial finished yet: left out
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = {k: str(args.data / k) for k in DATA_FOLDERS if args.data and (args.data / k).is_dir()}
    if args.data and len(data) < len(DATA_FOLDERS):
        raise SystemExit(f"--data {args.data} must hold {', '.join(DATA_FOLDERS)}; found {sorted(data)}")
    everything = (*HELD_OUT, *HELD_OUT_REAL)
    held_out = list(HELD_OUT[: args.held_out]) + (list(HELD_OUT_REAL) if data else [])
    if args.validation:
        if not data:
            raise SystemExit("--validation needs --data: its distributions include Omniglot and text ones")
        held_out = list(VALIDATION)
    args.db.parent.mkdir(parents=True, exist_ok=True)
    db, table_db = ExperimentDB(args.db), ExperimentDB(args.table)
    if not args.no_train:
        populate(
            db,
            [d for d in task_distributions(**data) if d.name not in everything],
            trials=args.trials_per_distribution,
        )
        populate(table_db, [find_distribution(n, **data) for n in held_out], trials=90)
    records = db.query(kind="trial")
    assert not {r.distribution for r in records} & set(everything), (
        "a held-out distribution is in the database"
    )
    tables = [load_table(table_db, n) for n in held_out]
    if args.validation:  # in the database, but left out of its own warm start (run() excludes each target)
        assert set(VALIDATION) <= {r.distribution for r in records}
        args.plot = args.db.parent / "validation.png"  # not a figure of the docs
    print(f"database: {len(records)} trials on {len({r.distribution for r in records})} distributions; "
          f"held out: {', '.join(held_out)}; {args.seeds} seeds, budget {args.budget}")  # fmt: skip
    warm = WarmSettings(args.warm, args.neighbours, args.per_neighbour, args.pool)
    traces = run(tables, records, args.seeds, args.budget, warm)
    print(report(traces, tables, args.budget, args.plot))
    if data and not args.validation:  # the same searches, read on the real-data distributions alone
        real = [i for i, t in enumerate(tables) if t.name in HELD_OUT_REAL]
        subset = {k: [[row[i] for i in real] for row in runs] for k, runs in traces.items()}
        print(f"\nReal-data held-out distributions only ({', '.join(HELD_OUT_REAL)}):")
        print(
            report(
                subset,
                [tables[i] for i in real],
                args.budget,
                args.plot.with_name(args.plot.stem + "-real.png"),
            )
        )


if __name__ == "__main__":
    main()
