"""The published few-shot results that ``metadl bench`` reproduces, row by row.

A row is one line of the table in ``docs/benchmarks.md``: a setting, its source, and its cells. A cell
is one published figure: a shipped config (``configs/<name>.yaml``), trained once, then evaluated on
test episodes of one shape. Cells that name the same run share its training (ProtoNet's 1-shot model
gives both the 5-way and the 20-way 1-shot figures, as in Snell et al.).

Sinusoid cells follow Li et al. (2017, Table 1): one model per K, trained on K-shot tasks, and both
MAML and Meta-SGD adapt with one gradient step at test time as in training.
"""

from __future__ import annotations

from dataclasses import dataclass


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


def _sinusoid(learner: str, published: tuple[float, float, float], eval_steps: tuple[str, ...]) -> tuple[Cell, ...]:
    return tuple(
        Cell(f"{k}-shot", f"{learner}_sinusoid", k, mse, run=f"{learner}_sinusoid_{k}shot",
             overrides=(f"sampler.shots={k}", f"eval.shots={k}", *eval_steps))
        for k, mse in zip((5, 10, 20), published, strict=True)
    )


FINN = "Finn et al. 2017, Table 1"
SNELL = "Snell et al. 2017, Table 1"
LI = "Li et al. 2017 (Meta-SGD)"

ROWS: tuple[Row, ...] = (
    Row("maml-omniglot-5way", "Omniglot 5-way, Conv-4, MAML", FINN, (
        Cell("1-shot", "maml_omniglot_5w1s", 1, 98.7, ways=5),
        Cell("5-shot", "maml_omniglot_5w5s", 5, 99.9, ways=5),
    )),
    Row("fomaml-omniglot-5way", "Omniglot 5-way, Conv-4, first-order MAML", FINN, (
        Cell("1-shot", "fomaml_omniglot_5w1s", 1, 98.3, ways=5),
        Cell("5-shot", "fomaml_omniglot_5w5s", 5, 99.2, ways=5),
    )),
    Row("maml-omniglot-20way", "Omniglot 20-way, Conv-4, MAML", FINN, (
        Cell("1-shot", "maml_omniglot_20w1s", 1, 95.8, ways=20),
        Cell("5-shot", "maml_omniglot_20w5s", 5, 98.9, ways=20),
    ), episodes=600),
    Row("protonet-omniglot-5way", "Omniglot 5-way, Conv-4, ProtoNet", SNELL, (
        Cell("1-shot", "protonet_omniglot_5w1s", 1, 98.8, ways=5),
        Cell("5-shot", "protonet_omniglot_5w5s", 5, 99.7, ways=5),
    )),
    Row("protonet-omniglot-20way", "Omniglot 20-way, Conv-4, ProtoNet (the 5-way row's models)", SNELL, (
        Cell("1-shot", "protonet_omniglot_5w1s", 1, 96.0, ways=20),
        Cell("5-shot", "protonet_omniglot_5w5s", 5, 98.9, ways=20),
    )),
    Row("metasgd-omniglot-5way", "Omniglot 5-way, Conv-4, Meta-SGD", f"{LI}, Table 2", (
        Cell("1-shot", "metasgd_omniglot_5w1s", 1, 99.53, ways=5),
    )),
    Row("reptile-omniglot-5way", "Omniglot 5-way, Conv-4, Reptile (non-transductive)", "Nichol et al. 2018, Table 2", (
        Cell("1-shot", "reptile_omniglot_5w1s", 1, 95.39, ways=5),
        Cell("5-shot", "reptile_omniglot_5w5s", 5, 98.90, ways=5),
    )),
    Row("heads-omniglot-5way", "Omniglot 5-way 1-shot, Conv-4, MetaOptNet SVM / ridge (R2D2) head", "report only", (
        Cell("SVM", "svm_omniglot_5w1s", 1, None, ways=5),
        Cell("ridge", "ridge_omniglot_5w1s", 1, None, ways=5),
    )),
    Row("maml-sinusoid", "Sinusoid 5 / 10 / 20 shots, MSE, MAML (one step)", f"{LI}, Table 1",
        _sinusoid("maml", (1.13, 0.85, 0.71), ("learner.eval_inner_steps=1",))),
    Row("metasgd-sinusoid", "Sinusoid 5 / 10 / 20 shots, MSE, Meta-SGD", f"{LI}, Table 1",
        _sinusoid("metasgd", (0.90, 0.53, 0.31), ())),
)


def find_rows(names: list[str] | None) -> list[Row]:
    """The rows with these names (all rows for ``None``), in table order.

    Example:
        >>> [row.name for row in find_rows(["maml-sinusoid"])]
        ['maml-sinusoid']
    """
    if not names:
        return list(ROWS)
    known = {row.name: row for row in ROWS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown bench rows {unknown}; choose from {', '.join(known)}")
    return [row for row in ROWS if row.name in names]
