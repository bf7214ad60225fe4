"""SetFit rows for the few-shot intent table: contrastive fine-tuning of the same MiniLM body + logistic head.

Same draws as ``benchmarks/text_intents.py`` (K examples of every intent from the training split, seed s;
``metadl.apps.text.intents.kshot_indices``), the full test split, mean ± 95% CI over draws. Each finished
draw is appended to a JSON Lines file, so a killed run resumes where it stopped:

    .venv/bin/python benchmarks/text_setfit.py --data-root ../shared/data --max-steps 300

SetFit's settings are the library's defaults (body learning rate 2e-5, one epoch, logistic-regression
head, ``num_iterations=20`` pair generation) except a compute budget: ``--max-steps`` contrastive steps of
``--batch-size`` pairs (a 77-intent 10-shot draw would otherwise make 30,800 pairs, about 1,900 steps).
CLINC150 rows are the 150 in-scope intents only (no out-of-scope threshold).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from setfit import SetFitModel, Trainer, TrainingArguments
from text_intents import markers, write_doc

from metadl.apps.text.intents import kshot_indices
from metadl.data.text import TextDataset, banking77, clinc150
from metadl.evaluation.confidence import format_ci, mean_ci95
from metadl.models.text.sentence import resolve_model

SEEDS = (0, 1, 2, 3, 4)
SHOTS = (10, 5)  # the headline K first: a run cut short still has it


def load(data_root: Path, name: str) -> tuple[TextDataset, TextDataset]:
    if name == "BANKING77":
        return banking77(data_root / "banking77", "train"), banking77(data_root / "banking77", "test")
    return clinc150(data_root / "clinc150", "train"), clinc150(data_root / "clinc150", "test")


def run_draw(
    train: TextDataset, test: TextDataset, k: int, seed: int, max_steps: int, batch_size: int
) -> dict[str, float]:
    idx = kshot_indices(train.labels, k, torch.Generator().manual_seed(seed)).tolist()
    model = SetFitModel.from_pretrained(str(resolve_model("all-MiniLM-L6-v2")))
    scratch = tempfile.mkdtemp(prefix="setfit-")  # SetFit's trainer writes checkpoints under output_dir
    args = TrainingArguments(
        output_dir=scratch, save_strategy="no", batch_size=batch_size, num_epochs=1, max_steps=max_steps,
        seed=seed, report_to="none",
    )  # fmt: skip
    data = Dataset.from_dict({"text": [train.texts[i] for i in idx], "label": train.labels[idx].tolist()})
    trainer = Trainer(model=model, args=args, train_dataset=data)
    start = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - start
    names = train.class_names
    truth = torch.tensor([names.index(n) for n in test.label_names()])
    start = time.perf_counter()
    predicted = torch.as_tensor(model.predict(list(test.texts), as_numpy=True))
    predict_s = time.perf_counter() - start
    accuracy = (predicted == truth).float().mean().item()
    shutil.rmtree(scratch, ignore_errors=True)
    return {"accuracy": accuracy, "train_seconds": train_s, "predict_seconds": predict_s}


def section(rows: list[dict], command: str, max_steps: int, batch_size: int) -> str:
    lines = [
        markers("setfit")[0],
        "## Few-shot intent detection (text), SetFit on the same MiniLM body",
        "",
        "```bash",
        command,
        "```",
        "",
        "SetFit (`setfit` in `metadl[text]`): contrastive fine-tuning of all-MiniLM-L6-v2 on pairs from the K-shot "
        "support, then a logistic-regression head; the same draws (seeds 0-4) and full test sets as the frozen rows "
        f"above. Library defaults except a compute budget of {max_steps} steps of {batch_size} pairs. CLINC150: the "
        "150 in-scope intents, no out-of-scope threshold. Train and predict seconds are per draw, on 2 CPU "
        "cores shared with other jobs (load average in the last column).",
        "",
        "| dataset | K | draws | accuracy | train s / draw | predict s / draw | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset in ("BANKING77", "CLINC150"):
        for k in sorted(SHOTS):
            cell = [r for r in rows if r["dataset"] == dataset and r["k"] == k]
            if not cell:
                continue
            acc = format_ci(*mean_ci95([r["accuracy"] for r in cell]), percent=True)
            train_s = sum(r["train_seconds"] for r in cell) / len(cell)
            predict_s = sum(r["predict_seconds"] for r in cell) / len(cell)
            load = sum(r["load"] for r in cell) / len(cell)
            lines.append(
                f"| {dataset} | {k} | {len(cell)} | {acc} | {train_s:.0f} | {predict_s:.0f} | {load:.1f} |"
            )
    peak = max((r["peak_gib"] for r in rows), default=0.0)
    lines += ["", f"Peak resident memory {peak:.2f} GiB.", markers("setfit")[1]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--results", type=Path, default=Path("runs/text_setfit.jsonl"))
    parser.add_argument(
        "--datasets", nargs="+", choices=["BANKING77", "CLINC150"], default=["BANKING77", "CLINC150"]
    )
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--time-limit", type=float, default=float("inf"), help="stop starting draws after S seconds"
    )
    args = parser.parse_args()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    rows = (
        [json.loads(line) for line in args.results.read_text().splitlines()] if args.results.exists() else []
    )
    done = {(r["dataset"], r["k"], r["seed"]) for r in rows if r["max_steps"] == args.max_steps}
    start = time.perf_counter()
    data = {name: load(args.data_root, name) for name in args.datasets}
    for k in SHOTS:
        for dataset, (train, test) in data.items():
            for seed in SEEDS:
                if (dataset, k, seed) in done or time.perf_counter() - start > args.time_limit:
                    continue
                row = {"dataset": dataset, "k": k, "seed": seed, "max_steps": args.max_steps}
                row |= run_draw(train, test, k, seed, args.max_steps, args.batch_size)
                row |= {
                    "load": os.getloadavg()[0],
                    "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                }
                with args.results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
                print(row, flush=True)
    command = (
        f".venv/bin/python benchmarks/text_setfit.py --data-root ../shared/data --max-steps {args.max_steps} "
        f"--batch-size {args.batch_size}"
    )
    text = section(
        [r for r in rows if r["max_steps"] == args.max_steps], command, args.max_steps, args.batch_size
    )
    write_doc(text, args.doc, "setfit")
    print(text)


if __name__ == "__main__":
    main()
