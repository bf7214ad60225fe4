"""Few-shot sentiment across product domains (ARSC, Yu et al. NAACL 2018) with held-out source domains.

The benchmark's own target domains are not distributed here, so some *source* domains are held out as
targets (:func:`held_out_domains`: a seeded draw) and every task of theirs (``<domain>.t2|t4|t5``)
becomes a target task: its support is its ``.train`` file subsampled to ``shots`` reviews per label
(fixed seed), its query its ``.test`` file, both read through the core's task-file source
(:class:`~metadl.tasks.file_source.TaskFileSource` in fixed mode). Meta-training reads the remaining
domains' tasks through the same source with ``exclude=`` patterns (:func:`meta_training_source`), so a
held-out domain cannot reach meta-training (the tests check the source's task names and texts).

Scores per target task: accuracy and macro-F1 of the adapted classifier, and of the always-majority
baseline (the label most frequent in the task's whole ``.train`` file, answered for every query:
the test sets are imbalanced, so a constant answer scores high on some tasks). Reported: means over the
target tasks.

Settings are chosen on source tasks only: :func:`validation_domains` carves some of the remaining domains
out as *validation* domains (a second seeded draw, never a held-out one); their tasks are built the same
way from their ``.train`` (support) and ``.dev`` (queries) files, and a screening run leaves them out of
meta-training (``dataset.validation`` in a text config).

Example:
    >>> held_out_domains(["books", "dvd", "kitchen", "toys"], 2, seed=0)
    ('books', 'dvd')
    >>> validation_domains(["books", "dvd", "kitchen", "music", "toys"], ("books", "dvd"), 1, seed=0)
    ('toys',)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score

from metadl.tasks.file_source import TaskFileSource
from metadl.tasks.source import NamedTask

# fit on (support texts, support labels) -> predict labels of query texts
Classifier = Callable[[list[str], list[str], list[str]], list[str]]


def arsc_domains(root: str | Path) -> tuple[str, ...]:
    """The product domains of an ARSC folder (``<domain>.t2.train`` ... files), sorted."""
    names = {p.name.split(".")[0] for p in Path(root).glob("*.t[0-9]*.*") if not p.name.startswith(".")}
    if not names:
        raise ValueError(f"{root} holds no ARSC task files (<domain>.t2.train ...); point it at arsc_source")
    return tuple(sorted(names))


def seeded_draw(domains: Sequence[str], n: int, seed: int) -> tuple[str, ...]:
    """The first ``n`` of a seeded permutation of ``domains``, sorted."""
    order = torch.randperm(len(domains), generator=torch.Generator().manual_seed(seed))
    return tuple(sorted(domains[i] for i in order[:n].tolist()))


def held_out_domains(domains: Sequence[str], n: int, *, seed: int = 0) -> tuple[str, ...]:
    """``n`` of ``domains`` drawn with a seeded generator, sorted: the target domains."""
    if not 0 < n < len(domains):
        raise ValueError(f"hold out 1..{len(domains) - 1} of the {len(domains)} domains, got n={n}")
    return seeded_draw(domains, n, seed)


def validation_domains(
    domains: Sequence[str], held_out: Sequence[str], n: int, *, seed: int = 0
) -> tuple[str, ...]:
    """``n`` of the ``domains`` not in ``held_out``, drawn with a seeded generator, sorted (``n = 0``: none):
    the domains whose tasks score settings, kept out of a screening run's meta-training."""
    rest = [d for d in domains if d not in set(held_out)]
    if not 0 <= n < len(rest):
        raise ValueError(
            f"validation={n}: carve 0..{len(rest) - 1} of the {len(rest)} domains left after the held-out ones"
        )
    return seeded_draw(rest, n, seed)


class RunDomainsError(ValueError):
    """A meta-trained model whose recorded domains do not match the benchmark's draw."""


def check_run_domains(
    metadata: Mapping[str, Any],
    held_out: Sequence[str],
    validation: Sequence[str] | None = None,
    *,
    run: str = "the run",
) -> None:
    """Refuse a model (its saved ``metadata``) unless its ``held_out_domains`` are ``held_out`` and, when
    ``validation`` is given (scoring validation tasks), its ``validation_domains`` are ``validation``:
    otherwise it may have meta-trained on the domains about to be scored.

    Example:
        >>> check_run_domains({"held_out_domains": ["books"]}, ("books",))
        >>> try:
        ...     check_run_domains({"held_out_domains": ["dvd"]}, ("books",), run="r")
        ... except RunDomainsError as err:
        ...     print(str(err).split(";")[0])
        r held out ['dvd'] but the benchmark draws ['books']
    """
    checks = [("held out", "held_out_domains", held_out, "held_out")]
    if validation is not None:
        checks.append(("carved out for validation", "validation_domains", validation, "validation"))
    for what, key, expected, option in checks:
        recorded = metadata.get(key)
        if not isinstance(recorded, list):
            raise RunDomainsError(f"{run} records no {key}; give a run of metadl train text_sentiment_arsc")
        if sorted(recorded) != sorted(expected):
            raise RunDomainsError(
                f"{run} {what} {sorted(recorded)} but the benchmark draws {sorted(expected)}; score it "
                f"with the run's dataset.{option} and dataset.seed, or train with the benchmark's"
            )


def small_tasks(root: str | Path, need: int) -> list[str]:
    """Tasks whose ``.train`` file has fewer than ``need`` reviews of some label (``tools_hardware.t2``
    has 3 negative ones): they cannot give ``k_shot + n_query`` of each label."""
    small = []
    for path in sorted(Path(root).glob("*.t[0-9]*.train")):
        counts: dict[str, int] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                label = line.rsplit("\t", 1)[-1].strip()
                counts[label] = counts.get(label, 0) + 1
        if len(counts) < 2 or min(counts.values()) < need:
            small.append(path.name.removesuffix(".train"))
    return small


def meta_training_source(
    root: str | Path, held_out: Sequence[str], *, k_shot: int = 5, n_query: int = 5, seed: int = 0
) -> TaskFileSource:
    """Sampled binary tasks from the ``.train`` files of every domain but ``held_out`` (and but the
    :func:`small_tasks` that cannot give ``k_shot + n_query`` reviews of each label)."""
    return TaskFileSource(
        root,
        format="tsv",
        split="train",
        n_way=2,
        k_shot=k_shot,
        n_query=n_query,
        exclude=[f"{d}.*" for d in held_out] + small_tasks(root, k_shot + n_query),
        seed=seed,
    )


@dataclass(frozen=True)
class TargetTask:
    """A held-out task: ``shots`` support reviews per label, the whole test file, and the majority label."""

    name: str
    support_texts: list[str]
    support_labels: list[str]
    query_texts: list[str]
    query_labels: list[str]
    majority: str


def target_tasks(
    root: str | Path, held_out: Sequence[str], *, shots: int = 5, seed: int = 0, query: str = "test"
) -> list[TargetTask]:
    """Every task of the ``held_out`` domains (see the module docstring), in name order; ``query="dev"``
    for validation domains' tasks (their ``.dev`` files as queries)."""
    source = TaskFileSource(
        root, format="tsv", support="train", query=query, include=[f"{d}.*" for d in held_out]
    )
    out = []
    for name in source.names:
        task = source.sample(name)
        out.append(subsample(task, shots, seed))
    return out


def subsample(task: NamedTask, shots: int, seed: int) -> TargetTask:
    """``shots`` support rows per label of ``task`` (a generator seeded ``seed``), in label order."""
    g = torch.Generator().manual_seed(seed)
    texts, labels = task.support_texts(), [task.classes[int(y)] for y in task.support_y]
    keep: list[int] = []
    for c in range(len(task.classes)):
        members = (task.support_y == c).nonzero().flatten()
        if len(members) < shots:
            raise ValueError(
                f"task {task.name}: label {task.classes[c]!r} has {len(members)} reviews < {shots}"
            )
        keep += sorted(members[torch.randperm(len(members), generator=g)[:shots]].tolist())
    counts = torch.bincount(task.support_y, minlength=len(task.classes))
    return TargetTask(
        task.name,
        [texts[i] for i in keep],
        [labels[i] for i in keep],
        task.query_texts(),
        [task.classes[int(y)] for y in task.query_y],
        task.classes[int(counts.argmax())],
    )


@dataclass(frozen=True)
class TaskScore:
    """One target task: accuracy and macro-F1 of the method and of the always-majority answer."""

    name: str
    accuracy: float
    macro_f1: float
    majority_accuracy: float
    majority_macro_f1: float


def score_task(task: TargetTask, predicted: Sequence[str]) -> TaskScore:
    """Scores of ``predicted`` (one label per query) and of the majority answer on ``task``."""
    truth = task.query_labels
    constant = [task.majority] * len(truth)
    labels = sorted(set(truth) | set(task.support_labels))
    return TaskScore(
        task.name,
        float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)])),
        float(f1_score(truth, list(predicted), labels=labels, average="macro", zero_division=0)),
        float(np.mean([p == t for p, t in zip(constant, truth, strict=True)])),
        float(f1_score(truth, constant, labels=labels, average="macro", zero_division=0)),
    )


def evaluate(classifier: Classifier, tasks: Sequence[TargetTask]) -> list[TaskScore]:
    """Adapt ``classifier`` to each task's support and score its query predictions."""
    return [score_task(t, classifier(t.support_texts, t.support_labels, t.query_texts)) for t in tasks]
