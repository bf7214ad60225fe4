"""The rows of the ARSC table (``benchmarks/text_arsc.py``), each computed in a fresh process for its peak memory.

Every row function takes the target tasks and returns :class:`Row` s: the per-task scores, the training
time the row needed (meta-training: the run's ``metrics.csv``; SetFit: its fine-tuning, summed over tasks;
frozen rows: none), the time to adapt and predict on every task, and the peak resident memory of the
process that computed it (a spawned interpreter: Python + torch + the model, nothing else of the parent).
Rows computed in one process (the two heads of one encoder) share that process's peak.
"""

from __future__ import annotations

import csv
import multiprocessing
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from setfit import SetFitModel, Trainer, TrainingArguments
from text_meta import TunedEncoder

from metadl.apps.text.intents import HEADS, Head
from metadl.apps.text.predict import load_text_model
from metadl.apps.text.sentiment import TargetTask, TaskScore, evaluate, score_task
from metadl.models.text import create_text_encoder
from metadl.models.text.encoders import TextEncoder
from metadl.models.text.sentence import resolve_model


@dataclass(frozen=True)
class Row:
    """One method over every task: its scores, training and adapt+predict seconds, peak memory (GiB)."""

    name: str
    scores: list[TaskScore]
    train_s: float
    eval_s: float
    peak_gib: float | None


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def in_fresh_process(fn: Callable[..., list[Row]], *args: Any) -> list[Row]:
    """``fn(*args)`` in a spawned interpreter (its ``ru_maxrss`` is the row's own peak)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def head_classifier(encoder: TextEncoder | TunedEncoder, head: Head):  # noqa: ANN201 - a Classifier
    """Fit ``head`` on the encoded support, answer the label of the highest query score."""

    def classify(support: list[str], labels: list[str], queries: list[str]) -> list[str]:
        classes = sorted(set(labels))
        y = torch.tensor([classes.index(label) for label in labels])
        scorer = head(encoder.encode(support), y, len(classes))
        return [classes[i] for i in scorer(encoder.encode(queries)).argmax(-1).tolist()]

    return classify


def majority_row(tasks: list[TargetTask]) -> Row:
    scores = [score_task(t, [t.majority] * len(t.query_texts)) for t in tasks]
    scores = [
        TaskScore(s.name, s.majority_accuracy, s.majority_macro_f1, s.majority_accuracy, s.majority_macro_f1)
        for s in scores
    ]
    return Row("always-majority (majority label of the task's `.train`)", scores, 0.0, 0.0, None)


def frozen_rows(tasks: list[TargetTask], threads: int) -> list[Row]:
    """Frozen all-MiniLM-L6-v2 (whole reviews up to its 256 tokens) + cosine prototypes / logreg (C=1)."""
    torch.set_num_threads(threads)
    encoder = create_text_encoder("sentence_transformer")
    start = time.perf_counter()
    encoder.encode(
        [x for t in tasks for x in t.support_texts + t.query_texts]
    )  # cached: the heads read it back
    encode_s = time.perf_counter() - start
    rows = []
    for name in ("prototype", "logreg"):
        start = time.perf_counter()
        scores = evaluate(head_classifier(encoder, HEADS[name]), tasks)
        label = "frozen MiniLM + cosine prototypes" if name == "prototype" else "frozen MiniLM + logreg (C=1)"
        rows.append(Row(label, scores, 0.0, encode_s + time.perf_counter() - start, peak_gib()))
    return rows


def training_seconds(run: Path) -> float:
    """Wall-clock meta-training time of a run folder (the last ``time_s`` of its ``metrics.csv``)."""
    with (run / "metrics.csv").open() as f:
        return float(list(csv.DictReader(f))[-1]["time_s"])


def meta_rows(run: Path, label: str, tasks: list[TargetTask], threads: int) -> list[Row]:
    """The meta-trained model of ``run``: its own learner's ``adapt`` (ProtoNet), and logreg (C=1) on its
    embeddings (the cached lower blocks, then its trained top)."""
    torch.set_num_threads(threads)
    model = load_text_model(run)
    train_s = training_seconds(run)

    def adapt(support: list[str], labels: list[str], queries: list[str]) -> list[str]:
        return [p.label for p in model.adapt(support, labels).predict(queries)]

    rows = []
    for name, classify in (
        ("ProtoNet adapt", adapt),
        ("logreg (C=1) on its embeddings", head_classifier(TunedEncoder(model), HEADS["logreg"])),
    ):
        start = time.perf_counter()
        scores = evaluate(classify, tasks)
        rows.append(
            Row(f"meta-trained {label}: {name}", scores, train_s, time.perf_counter() - start, peak_gib())
        )
    return rows


def setfit_rows(
    tasks: list[TargetTask], threads: int, seed: int, iterations: int, max_length: int | None
) -> list[Row]:
    """SetFit on each task's support (a fresh all-MiniLM-L6-v2 body per task): library defaults (body lr
    2e-5, batch 16, one epoch, logistic-regression head) but ``iterations`` pair-generation rounds
    (default 20) and reviews cut at ``max_length`` tokens (None: the body's 256)."""
    torch.set_num_threads(threads)
    scores, train_s, eval_s = [], 0.0, 0.0
    for task in tasks:
        model = SetFitModel.from_pretrained(str(resolve_model("all-MiniLM-L6-v2")))
        if max_length is not None:
            model.model_body.max_seq_length = max_length
        scratch = tempfile.mkdtemp(prefix="setfit-")
        args = TrainingArguments(
            output_dir=scratch, save_strategy="no", num_iterations=iterations, seed=seed, report_to="none"
        )
        classes = sorted(set(task.support_labels))
        data = Dataset.from_dict(
            {"text": task.support_texts, "label": [classes.index(y) for y in task.support_labels]}
        )
        start = time.perf_counter()
        Trainer(model=model, args=args, train_dataset=data).train()
        train_s += time.perf_counter() - start
        start = time.perf_counter()
        predicted = model.predict(task.query_texts, as_numpy=True).tolist()
        eval_s += time.perf_counter() - start
        scores.append(score_task(task, [classes[int(i)] for i in predicted]))
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"setfit {task.name}: {scores[-1].accuracy:.3f}", flush=True)
    cut = "" if max_length is None else f", reviews cut at {max_length} tokens"
    name = f"SetFit (MiniLM body, {iterations} pair iterations{cut})"
    return [Row(name, scores, train_s, eval_s, peak_gib())]
