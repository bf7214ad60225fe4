"""User cold-start recommendation on MovieLens: meta-learners against every baseline, 5 seeded user splits.

    python benchmarks/recsys_coldstart.py --recbole /tmp/ml100k_rb --name ml-100k [--query-order random|last]
        [--splits 5] [--steps 1500] [--out section.md] [--json results.json]

Data: RecBole atomic files (``--recbole FOLDER --name ml-100k``; ML-100K ships in the wheel of
``recbole==1.2.1``: ``pip download --no-deps recbole==1.2.1`` and unzip ``recbole/dataset_example/ml-100k``)
or an extracted GroupLens folder (``--movielens-100k FOLDER`` / ``--movielens-1m FOLDER``). The
protocol is ``metadl.apps.recsys.protocol``'s (13-100 ratings per user, 8:1:1 user splits with seeds
0..splits-1, 10 query ratings per test user). Every recommender sees the same splits and test tasks;
means and 95% CIs pool the test users of all splits; "paired" rows are the meta-learner minus the best
baseline on the same (user, split) pairs.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from metadl.apps.recsys.evaluate import LOWER_IS_BETTER, METRICS, evaluate_users, paired, summarise
from metadl.apps.recsys.meta import EpisodeSettings
from metadl.apps.recsys.protocol import ColdStartProtocol, ColdStartSplit, split_users
from metadl.apps.recsys.registry import BASELINES, create_recommender
from metadl.data.movielens import read_movielens_1m, read_movielens_100k, read_recbole_atomic
from metadl.data.ratings import Ratings

META = ("melu", "ridge", "twohead")
# The two-head learner's schedule, chosen on split 0's validation users (random queries) among
# 600 / 1,500 / 3,000 steps, Adam 1e-3 / 3e-3, rating loss MSE / L1, widths 4 / 16 / 32.
TWOHEAD_LR = 3e-3
# Matrix factorisation's (factors, L2) candidates; each split picks one by MAE on its validation users.
MF_CANDIDATES = ((16, 0.05), (16, 0.1), (8, 0.2))


def load(args: argparse.Namespace) -> Ratings:
    if args.recbole:
        return read_recbole_atomic(args.recbole, args.name)
    if args.movielens_100k:
        return read_movielens_100k(args.movielens_100k)
    return read_movielens_1m(args.movielens_1m)


def settings(name: str, args: argparse.Namespace, seed: int) -> EpisodeSettings:
    if name == "twohead":
        return EpisodeSettings(steps=args.twohead_steps, lr=TWOHEAD_LR, seed=seed)
    return EpisodeSettings(steps=args.steps, seed=seed)


def run(args: argparse.Namespace) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, float]]:
    ratings = load(args)
    protocol = ColdStartProtocol(query_order=args.query_order)
    names = BASELINES + tuple(args.meta)
    pooled: dict[str, dict[str, list[np.ndarray]]] = {n: {m: [] for m in METRICS} for n in names}
    seconds = dict.fromkeys(names, 0.0)
    for seed in args.seeds if args.seeds is not None else range(args.splits):
        split = split_users(ratings, protocol, seed=seed)
        tasks = split.tasks("test")
        for name in names:
            kwargs: dict[str, object] = {"settings": settings(name, args, seed)} if name in META else {}
            if name == "twohead":
                kwargs["select"] = args.twohead_select
            start = time.perf_counter()
            if name == "mf" and not args.mf_fixed:
                kwargs = mf_settings_on_validation(split)
            rec = create_recommender(name, **kwargs)
            rec.fit(split)
            values = evaluate_users(rec, tasks)
            seconds[name] += time.perf_counter() - start
            for m in METRICS:
                pooled[name][m].append(values[m])
            print(f"split {seed} {name:15s} mae {summarise(values['mae']).mean:.4f} "
                  f"ndcg@10_full {summarise(values['ndcg@10_full']).mean:.4f}", file=sys.stderr, flush=True)  # fmt: skip
    return {n: {m: np.concatenate(v) for m, v in ms.items()} for n, ms in pooled.items()}, seconds


def mf_settings_on_validation(split: ColdStartSplit) -> dict[str, float]:
    """The MF candidate with the lowest MAE on the split's validation users (never its test users)."""
    val = split.tasks("val")
    scores = {}
    for dim, reg in MF_CANDIDATES:
        rec = create_recommender("mf", dim=dim, reg=reg)
        rec.fit(split)
        scores[(dim, reg)] = float(np.nanmean(evaluate_users(rec, val)["mae"]))
    dim, reg = min(scores, key=scores.__getitem__)
    print(f"mf on validation users: {scores}; chose dim={dim}, reg={reg}", file=sys.stderr, flush=True)
    return {"dim": dim, "reg": reg}


def best_baseline(results: dict[str, dict[str, np.ndarray]], metric: str) -> str:
    defined = [b for b in BASELINES if not np.isnan(results[b][metric]).all()]
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    return min(defined, key=lambda b: sign * float(np.nanmean(results[b][metric])))


def n_splits(args: argparse.Namespace) -> int:
    if args.merge:
        return sum(len(json.loads(p.read_text())["seeds"]) for p in args.merge)
    return len(args.seeds) if args.seeds is not None else args.splits


def merged(paths: list[Path]) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, float]]:
    """The per-user values and times of several ``--json`` files (one per group of splits), pooled."""
    docs = [json.loads(p.read_text()) for p in paths]
    names = list(docs[0]["values"])
    values = {n: {m: np.concatenate([np.array(d["values"][n][m], dtype=float) for d in docs]) for m in METRICS}
              for n in names}  # fmt: skip
    return values, {n: sum(d["seconds"][n] for d in docs) for n in names}


def report(
    args: argparse.Namespace, results: dict[str, dict[str, np.ndarray]], seconds: dict[str, float]
) -> str:
    n_users = len(results["random"]["ndcg@5"])
    head = "| recommender | " + " | ".join(METRICS) + " | fit + eval time |"
    lines = [head, "|---|" + "---:|" * (len(METRICS) + 1)]
    meta = [n for n in META if n in results]
    for name in BASELINES + tuple(meta):
        cells = [summarise(results[name][m]).text() for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seconds[name]:.0f} s |")
    lines += ["", "| meta-learner minus best baseline (paired, same users) | metric | difference ± 95% CI | excludes 0 |",
              "|---|---|---:|---|"]  # fmt: skip
    for model in meta:
        for metric in ("mae", "ndcg@10_full"):
            base = best_baseline(results, metric)
            d = paired(results[model], results[base], metric)
            better = d.mean < 0 if metric in LOWER_IS_BETTER else d.mean > 0
            verdict = ("yes, " + ("better" if better else "worse")) if abs(d.mean) > d.ci95 else "no"
            lines.append(f"| {model} - {base} | {metric} | {d.mean:+.4f} ± {d.ci95:.4f} | {verdict} |")
    command = "python " + " ".join(sys.argv)
    return (
        f"Command: `{command}` ({n_splits(args)} splits, query order `{args.query_order}`, {n_users} (user, split) "
        f"pairs; melu/ridge {args.steps} meta-steps, twohead {args.twohead_steps} (select {args.twohead_select}); torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, 1 thread)\n\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--merge", type=Path, nargs="+", help="report the pooled --json files of earlier runs")
    data.add_argument("--recbole", type=Path, help="folder of RecBole atomic files")
    data.add_argument("--movielens-100k", type=Path, help="extracted ml-100k folder (u.data, u.user, u.item)")
    data.add_argument(
        "--movielens-1m", type=Path, help="extracted ml-1m folder (ratings.dat, users.dat, movies.dat)"
    )
    parser.add_argument("--name", default="ml-100k", help="RecBole dataset name (file stem)")
    parser.add_argument("--query-order", choices=["random", "last"], default="random")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="run these split seeds only (default 0..splits-1)"
    )
    parser.add_argument(
        "--mf-fixed",
        action="store_true",
        help="MF at its defaults (8 factors, L2 0.2) without validation choice",
    )
    parser.add_argument("--steps", type=int, default=1500, help="meta-training steps of melu and ridge")
    parser.add_argument("--twohead-steps", type=int, default=3000, help="meta-training steps of twohead")
    parser.add_argument(
        "--twohead-select", choices=["heads", "loss"], default="heads",
        help="how validation users choose twohead's weights: per head (default) or by meta-loss",
    )  # fmt: skip
    parser.add_argument("--meta", nargs="+", choices=META, default=list(META), help="meta-learners to run")
    parser.add_argument("--out", type=Path, help="write the markdown section here")
    parser.add_argument("--json", type=Path, help="write per-user values here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny models: one thread is faster than two on a shared 2-core machine
    results, seconds = merged(args.merge) if args.merge else run(args)
    text = report(args, results, seconds)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        seeds = args.seeds if args.seeds is not None else list(range(args.splits))
        values = {n: {m: [None if np.isnan(x) else x for x in v.tolist()] for m, v in ms.items()}
                  for n, ms in results.items()}  # fmt: skip
        args.json.write_text(json.dumps({"seeds": seeds, "seconds": seconds, "values": values}))


if __name__ == "__main__":
    main()
