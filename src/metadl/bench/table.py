"""The published few-shot results that ``metadl bench`` reproduces, row by row.

A row is one line of the table in ``docs/benchmarks.md``: a setting, its source, and its cells. A cell
is one published figure: a shipped config (``metadl/configs/<name>.yaml``), trained once, then evaluated on
test episodes of one shape. Cells that name the same run share its training (ProtoNet's 1-shot model
gives both the 5-way and the 20-way 1-shot figures, as in Snell et al.).

Sinusoid cells follow Li et al. (2017, Table 1): one model per K, trained on K-shot tasks, and both
MAML and Meta-SGD adapt with one gradient step at test time as in training.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# ``metadl bench --quick``: every cell trained this many iterations and tested on this many episodes.
QUICK_ITERATIONS, QUICK_EPISODES = 5, 16


@dataclass(frozen=True)
class Cell:
    """One published figure: train ``config`` (with ``overrides``) as run ``run``, test at ``ways``-way ``shots``-shot.

    ``ways`` is ``None`` for regression. ``published`` is accuracy in % or MSE (``None``: report only).
    """

    label: str
    config: str
    shots: int
    published: float | None
    ways: int | None = None
    overrides: tuple[str, ...] = ()
    run: str = ""

    @property
    def run_name(self) -> str:
        return self.run or self.config


@dataclass(frozen=True)
class Row:
    """A line of the table. ``episodes``: test episodes per cell (600 for rows whose evaluation is slow)."""

    name: str
    setting: str
    source: str
    cells: tuple[Cell, ...]
    episodes: int = 1000

    @property
    def metric(self) -> str:
        return "mse" if self.cells[0].ways is None else "accuracy"


def _sinusoid(
    learner: str, published: tuple[float, float, float], eval_steps: tuple[str, ...]
) -> tuple[Cell, ...]:
    return tuple(
        Cell(
            f"{k}-shot",
            f"{learner}_sinusoid",
            k,
            mse,
            run=f"{learner}_sinusoid_{k}shot",
            overrides=(f"sampler.shots={k}", f"eval.shots={k}", *eval_steps),
        )
        for k, mse in zip((5, 10, 20), published, strict=True)
    )


def _omniglot(
    learner: str, ways: int, published: dict[int, float], model_ways: int | None = None
) -> tuple[Cell, ...]:
    """Cells "K-shot" of configs ``<learner>_omniglot_<model_ways>w<K>s`` tested ``ways``-way."""
    return tuple(
        Cell(f"{k}-shot", f"{learner}_omniglot_{model_ways or ways}w{k}s", k, figure, ways=ways)
        for k, figure in published.items()
    )


FINN = "Finn et al. 2017, Table 1"
SNELL = "Snell et al. 2017, Table 1"
LI = "Li et al. 2017 (Meta-SGD)"
HEADS = "Omniglot 5-way 1-shot, Conv-4, MetaOptNet SVM / ridge (R2D2) head"
LAKE = "Lake et al. 2015: people 95.5%, BPL 96.7% (ProtoNet 86.3% in Lake et al. 2019)"

ROWS: tuple[Row, ...] = (
    Row("maml-omniglot-5way", "Omniglot 5-way, Conv-4, MAML", FINN, _omniglot("maml", 5, {1: 98.7, 5: 99.9})),
    Row("fomaml-omniglot-5way", "Omniglot 5-way, Conv-4, first-order MAML", FINN, _omniglot("fomaml", 5, {1: 98.3, 5: 99.2})),
    Row("maml-omniglot-20way", "Omniglot 20-way, Conv-4, MAML", FINN, _omniglot("maml", 20, {1: 95.8, 5: 98.9}), 600),
    Row("protonet-omniglot-5way", "Omniglot 5-way, Conv-4, ProtoNet", SNELL, _omniglot("protonet", 5, {1: 98.8, 5: 99.7})),
    Row("protonet-omniglot-20way", "Omniglot 20-way, Conv-4, ProtoNet (the 5-way row's models)", SNELL,
        _omniglot("protonet", 20, {1: 96.0, 5: 98.9}, model_ways=5)),
    Row("metasgd-omniglot-5way", "Omniglot 5-way, Conv-4, Meta-SGD", f"{LI}, Table 2", _omniglot("metasgd", 5, {1: 99.53})),
    Row("reptile-omniglot-5way", "Omniglot 5-way, Conv-4, Reptile (non-transductive)", "Nichol et al. 2018, Table 2",
        _omniglot("reptile", 5, {1: 95.39, 5: 98.90}), 600),
    Row("heads-omniglot-5way", HEADS, "report only", (
        Cell("SVM", "svm_omniglot_5w1s", 1, None, ways=5), Cell("ridge", "ridge_omniglot_5w1s", 1, None, ways=5))),
    Row("protonet-omniglot-lake-20way", "Omniglot Lake protocol: 20-way 1-shot within one evaluation alphabet, "
        "support and query by different drawers (target: people)", LAKE,
        (Cell("1-shot", "protonet_omniglot_lake_20w1s", 1, 95.5, ways=20),)),
    Row("maml-sinusoid", "Sinusoid 5 / 10 / 20 shots, MSE, MAML (one step)", f"{LI}, Table 1",
        _sinusoid("maml", (1.13, 0.85, 0.71), ("learner.eval_inner_steps=1",))),
    Row("metasgd-sinusoid", "Sinusoid 5 / 10 / 20 shots, MSE, Meta-SGD", f"{LI}, Table 1",
        _sinusoid("metasgd", (0.90, 0.53, 0.31), ())),
)  # fmt: skip


def find_rows(names: list[str] | None) -> list[Row]:
    """The rows with these names (all rows for ``None``), in table order; ``ROW:LABEL`` keeps one cell.

    Example:
        >>> [row.name for row in find_rows(["maml-sinusoid"])]
        ['maml-sinusoid']
        >>> [cell.label for row in find_rows(["maml-omniglot-5way:1-shot"]) for cell in row.cells]
        ['1-shot']
    """
    if not names:
        return list(ROWS)
    known = {row.name: row for row in ROWS}
    whole: set[str] = set()
    some: dict[str, set[str]] = {}
    for name in names:
        row_name, _, label = name.partition(":")
        if row_name not in known:
            raise ValueError(f"unknown bench row {row_name!r}; choose from {', '.join(known)}")
        labels = [cell.label for cell in known[row_name].cells]
        if label and label not in labels:
            raise ValueError(f"row {row_name} has no cell {label!r}; its cells are {', '.join(labels)}")
        if label:
            some.setdefault(row_name, set()).add(label)
        else:
            whole.add(row_name)
    rows = []
    for row in ROWS:
        if row.name in whole:
            rows.append(row)
        elif row.name in some:
            rows.append(replace(row, cells=tuple(c for c in row.cells if c.label in some[row.name])))
    return rows
