"""ARSC sentiment on held-out source domains: majority, frozen MiniLM, SetFit and meta-trained rows in one table.

Protocol (:mod:`metadl.apps.text.sentiment`): ``--held-out`` of the 19 ``arsc_source`` domains drawn with
``--seed`` are the targets; each of their tasks (t2/t4/t5) gets 5 reviews per label from its ``.train``
file as support (fixed seed) and its whole ``.test`` file as queries. ``--validation`` more domains (a
second seeded draw) are the *validation* domains that settings are screened on: ``--split validation``
scores their tasks instead (support from ``.train``, queries their ``.dev`` files), never a target's file.

Rows (:mod:`arsc_rows`, each in a fresh process for its peak memory): always-majority (the label most
frequent in the task's ``.train``); frozen all-MiniLM-L6-v2 + cosine prototypes and + logistic
regression (C=1, scikit-learn's default); SetFit on the same body per task (``--setfit``); and for each
``--run RUN`` (a run folder of ``metadl train text_sentiment_arsc``) its learner's own ``adapt`` and
logreg (C=1) on its embeddings. A run whose recorded held-out domains differ from this draw is refused
(and, for ``--split validation``, one whose validation domains differ). Reported: mean accuracy and
macro-F1 over the tasks, training and adapt+predict time, peak memory per row, per-task accuracies, and
the paired per-task difference of the best meta-trained row against frozen logreg (mean ± 95% CI).

    nice -n 5 .venv/bin/python benchmarks/text_arsc.py --run RUN --setfit --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from arsc_rows import Row, frozen_rows, in_fresh_process, majority_row, meta_rows, setfit_rows
from text_intents import markers, write_doc

from metadl.apps.text.sentiment import (
    TargetTask,
    arsc_domains,
    check_run_domains,
    held_out_domains,
    target_tasks,
    validation_domains,
)
from metadl.evaluation.confidence import paired_difference_ci95
from metadl.saving import load


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| method | mean accuracy | mean macro-F1 | training | adapt + predict | peak memory |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        acc, f1 = np.mean([s.accuracy for s in r.scores]), np.mean([s.macro_f1 for s in r.scores])
        peak = "-" if r.peak_gib is None else f"{r.peak_gib:.2f} GiB"
        lines.append(
            f"| {r.name} | {100 * acc:.2f}% | {100 * f1:.2f}% | {r.train_s:.0f} s | {r.eval_s:.0f} s | {peak} |"
        )
    return lines


def per_task(rows: list[Row], tasks: list[TargetTask]) -> list[str]:
    """Accuracy (%) of every row on every task, columns numbered as the rows are listed."""
    lines = ["| task | queries | " + " | ".join(f"({i})" for i in range(len(rows))) + " |"]
    lines.append("|---" * (len(rows) + 2) + "|")
    for i, task in enumerate(tasks):
        cells = " | ".join(f"{100 * r.scores[i].accuracy:.1f}" for r in rows)
        lines.append(f"| {task.name} | {len(task.query_texts)} | {cells} |")
    return lines


def paired(rows: list[Row]) -> str:
    """The best meta-trained row (mean accuracy) against frozen logreg, per task."""
    meta = [r for r in rows if r.name.startswith("meta-trained")]
    bases = [r for r in rows if r.name.startswith("frozen MiniLM + logreg")]
    if not meta or not bases:
        return ""
    base = bases[0]
    best = max(meta, key=lambda r: np.mean([s.accuracy for s in r.scores]))
    diffs = [(a.accuracy, b.accuracy) for a, b in zip(best.scores, base.scores, strict=True)]
    mean, half = paired_difference_ci95([a for a, _ in diffs], [b for _, b in diffs])
    wins = sum(a > b for a, b in diffs)
    return (
        f"Paired per task, {best.name} minus frozen MiniLM + logreg (C=1): accuracy {100 * mean:+.2f} ± "
        f"{100 * half:.2f} points (95% CI over the {len(diffs)} tasks; higher on {wins} of them)."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--held-out", type=int, default=4)
    p.add_argument("--validation", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=["test", "validation"], default="test")
    p.add_argument("--run", type=Path, nargs="*", default=[], help="run folders of text_sentiment_arsc")
    p.add_argument("--setfit", action="store_true", help="add the SetFit row (a fine-tuning per task)")
    p.add_argument("--setfit-iterations", type=int, default=20, help="SetFit's num_iterations (default 20)")
    p.add_argument("--setfit-max-length", type=int, default=None, help="tokens per review (default 256)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--doc", type=Path, default=None)
    p.add_argument("--majority-only", action="store_true", help="skip the encoder rows (no model needed)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    root = args.data_root / "arsc_source"
    domains = arsc_domains(root)
    held = held_out_domains(domains, args.held_out, seed=args.seed)
    val = validation_domains(domains, held, args.validation, seed=args.seed)
    for run in args.run:
        check = val if args.split == "validation" else None
        try:
            check_run_domains(load(run).metadata, held, check, run=str(run))
        except ValueError as err:
            sys.exit(f"error: {err}")
    scored = held if args.split == "test" else val
    query = "test" if args.split == "test" else "dev"
    tasks = target_tasks(root, scored, shots=5, seed=args.seed, query=query)
    print(
        f"{args.split} domains {scored}: {len(tasks)} tasks, {sum(len(t.query_texts) for t in tasks)} queries"
    )
    rows, meta, setfit = [majority_row(tasks)], [], []
    if not args.majority_only:
        rows += in_fresh_process(frozen_rows, tasks, args.threads)
        print(*table(rows), sep="\n", flush=True)
        for run in args.run:
            meta += in_fresh_process(meta_rows, run, f"`{run.name}`", tasks, args.threads)
            print(*table(meta[-2:]), sep="\n", flush=True)
    report(args, rows + meta, tasks, start)  # written before SetFit too: a run cut short keeps these rows
    if args.setfit and not args.majority_only:
        options = (tasks, args.threads, args.seed, args.setfit_iterations, args.setfit_max_length)
        setfit = in_fresh_process(setfit_rows, *options)
        report(args, rows + setfit + meta, tasks, start)


def report(args: argparse.Namespace, rows: list[Row], tasks: list[TargetTask], start: float) -> None:
    """Print the summary, the table, the paired comparison and the per-task table; write them to ``--doc``."""
    query = "test" if args.split == "test" else "dev"
    domains = sorted({t.name.split(".")[0] for t in tasks})
    summary = (
        f"{args.split.capitalize()} domains (seeded draw, seed {args.seed}): {', '.join(domains)}; {len(tasks)} "
        f"tasks, support 5 reviews per label from each task's `.train`, queries its whole `.{query}` "
        f"({sum(len(t.query_texts) for t in tasks)} reviews); whole run {(time.perf_counter() - start) / 60:.1f} "
        f"min on {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}."
    )
    lines = [summary, "", *table(rows), "", paired(rows), "", "Per-task accuracy (%) of the rows:", ""]
    lines += [*[f"- ({i}) {r.name}" for i, r in enumerate(rows)], "", *per_task(rows, tasks)]
    text = "\n".join(lines)
    print(text, flush=True)
    if args.doc is not None:
        name = "arsc" if args.split == "test" else "arsc-screen"
        start_mark, end_mark = markers(name)
        write_doc("\n".join([start_mark, text, end_mark]), args.doc, name)


if __name__ == "__main__":
    main()
