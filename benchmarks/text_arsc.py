"""ARSC sentiment on held-out source domains: always-majority and frozen MiniLM (prototype / logreg) rows.

Protocol (:mod:`metadl.apps.text.sentiment`): ``--held-out`` of the 19 ``arsc_source`` domains drawn with
``--seed``; each of their tasks (t2/t4/t5) gets 5 reviews per label from its ``.train`` file as support
(fixed seed) and its whole ``.test`` file as queries. Reported: mean accuracy and macro-F1 over the target
tasks for the always-majority answer (the label most frequent in the task's ``.train`` file) and for the
frozen all-MiniLM-L6-v2 with a cosine prototype head and with logistic regression (C=1, scikit-learn's
default: nothing chosen on target data). Writes the ``text-arsc`` section of ``--doc``.

    nice -n 5 .venv/bin/python benchmarks/text_arsc.py --data-root ../shared/data --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch
from text_intents import markers, write_doc

from metadl.apps.text.intents import HEADS, Head
from metadl.apps.text.sentiment import TaskScore, arsc_domains, evaluate, held_out_domains, target_tasks
from metadl.models.text import create_text_encoder
from metadl.models.text.encoders import TextEncoder


def head_classifier(encoder: TextEncoder, head: Head):  # noqa: ANN201 - a Classifier
    def classify(support: list[str], labels: list[str], queries: list[str]) -> list[str]:
        classes = sorted(set(labels))
        y = torch.tensor([classes.index(label) for label in labels])
        scorer = head(encoder.encode(support), y, len(classes))
        return [classes[i] for i in scorer(encoder.encode(queries)).argmax(-1).tolist()]

    return classify


def row(name: str, scores: list[TaskScore], majority: bool = False) -> str:
    acc = [s.majority_accuracy if majority else s.accuracy for s in scores]
    f1 = [s.majority_macro_f1 if majority else s.macro_f1 for s in scores]
    return f"| {name} | {100 * np.mean(acc):.2f}% | {100 * np.mean(f1):.2f}% | {len(scores)} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--held-out", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--doc", type=Path, default=None)
    p.add_argument("--majority-only", action="store_true", help="skip the encoder rows (no model needed)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    root = args.data_root / "arsc_source"
    held = held_out_domains(arsc_domains(root), args.held_out, seed=args.seed)
    tasks = target_tasks(root, held, shots=5, seed=args.seed)
    print(
        f"held out {held}: {len(tasks)} tasks, {sum(len(t.query_texts) for t in tasks)} test reviews",
        flush=True,
    )
    lines = [row("always-majority", evaluate(lambda s, y, q: ["1"] * len(q), tasks), majority=True)]
    encoder = None if args.majority_only else create_text_encoder("sentence_transformer")
    for name in ("prototype", "logreg") if encoder is not None else ():
        scores = evaluate(head_classifier(encoder, HEADS[name]), tasks)
        lines.append(row(f"frozen MiniLM + {name}", scores))
        print(lines[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    summary = (
        f"Held-out domains (seeded draw, seed {args.seed}): {', '.join(held)}; {len(tasks)} target tasks, "
        f"support 5 reviews per label from each task's .train, queries its .test; whole run "
        f"{(time.perf_counter() - start) / 60:.1f} min, peak resident memory {peak:.2f} GiB, load average "
        f"{os.getloadavg()[0]:.1f}."
    )
    print(summary)
    if args.doc is not None:
        start_mark, end_mark = markers("arsc")
        header = "| method | mean accuracy | mean macro-F1 | tasks |\n|---|---|---|---|"
        write_doc("\n".join([start_mark, summary, "", header, *lines, end_mark]), args.doc, "arsc")


if __name__ == "__main__":
    main()
