"""Algorithm selection (issue 18): meta random forest, meta SVM, k-nearest datasets against the baselines.

1. Ground truth: every portfolio pipeline on every offline dataset (keel raw tables, scikit-learn's
   bundled ones, generated ones; deduplicated, grouped by family), balanced accuracy by stratified
   k-fold CV, one set of repeats for selection and an independent one for the reported score, cached
   one cell per file (resumable: rerun after a kill and finished cells are reused). Datasets are taken
   one per family in turn, so ``--max-datasets`` / ``--time-budget`` still span the families.
2. The table is saved (``--table``, default the one ``metadl recommend`` ships with).
3. Leave-one-family-out: gap closed (95% bootstrap CI over families), top-1, average rank.
4. Equal evaluation budgets (:mod:`metadl.automl.budgets`): the meta RF's top b, the greedy portfolio
   of b, the hybrid MetaRFPortfolio and the inner-loop rule, each paired with the portfolio.
5. Seconds to recommend for a generated 10,000-row, 20-feature dataset (no ``--cv``).
6. The section "Algorithm selection (issue 18)" of ``docs/benchmarks.md`` is replaced (``--doc``).

Usage:
    python benchmarks/algorithm_selection.py [--max-datasets N] [--time-budget SECONDS] [--repeats R]
        [--cache DIR] [--table FILE | --from-table FILE] [--doc FILE | --no-doc] [--boot 2000]

``--from-table FILE`` evaluates a table saved by an earlier run (no cell is computed or read).
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

from sklearn.datasets import make_classification

from metadl.automl.budgets import BUDGETS, RULES, BudgetRow, budget_sweep
from metadl.automl.collection import DatasetEntry, all_datasets, interleave_families
from metadl.automl.groundtruth import CVSettings, GroundTruth, build_ground_truth
from metadl.automl.protocol import SelectionSummary, leave_one_family_out, summarize
from metadl.automl.recommend import TABLE_NAME, recommend
from metadl.automl.selectors import Selector, create_selector
from metadl.automl.tabular import EncodedTable
from metadl.tasks.dataset_source import NamedDataset

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Algorithm selection (issue 18)"
SELECTORS: dict[str, tuple[str, dict[str, object]]] = {  # the meta RF and the portfolio come from the sweep
    "meta_svm": ("meta_svm", {}),
    "knn_datasets": ("knn_datasets", {}),
    "single_best": ("single_best", {}),
    "random": ("random", {}),
}
FROM_SWEEP = {  # label in the first table: (rule, budget)
    "meta_rf": ("meta_rf", 0),
    "greedy_portfolio (3 evaluated)": ("greedy_portfolio", 3),
    "greedy_portfolio of 1 (none evaluated)": ("greedy_portfolio", 0),
    "meta_rf top-3 (3 evaluated)": ("meta_rf", 3),
    "meta_rf_portfolio (3 evaluated)": ("meta_rf_portfolio", 3),
}


def time_to_recommend(gt: GroundTruth, rows: int = 10_000) -> float:
    X, y = make_classification(n_samples=rows, n_features=20, n_informative=8, random_state=0)
    table = EncodedTable(NamedDataset("timing", X, y), tuple(f"x{j}" for j in range(20)), 0)
    start = time.perf_counter()
    recommend(table, gt, top=3)
    return time.perf_counter() - start


def budget_tables(rows: list[BudgetRow]) -> list[str]:
    """The two budget tables: gap closed per rule, then each rule minus the portfolio (paired)."""
    lines = [
        "| budget b | " + " | ".join(f"{r} gap closed [95% CI]" for r in (*RULES, "inner_choice")) + " |",
        "|---|" + "---|" * (len(RULES) + 1),
    ]
    for row in rows:
        cells = [
            f"{s.gap_closed:.3f} [{s.gap_ci[0]:.3f}, {s.gap_ci[1]:.3f}]"
            for s in (row.summaries[r] for r in (*RULES, "inner_choice"))
        ]
        lines.append(f"| {row.budget} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| b | minus greedy_portfolio of b | gap closed diff. [95% CI] | balanced acc. diff. [95% CI] "
        "| families better / worse | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for rule, d in row.versus_portfolio.items():
            lines.append(
                f"| {row.budget} | {rule} | {d.gap_difference:+.3f} [{d.gap_ci[0]:+.3f}, {d.gap_ci[1]:+.3f}] | "
                f"{d.score_difference:+.4f} [{d.score_ci[0]:+.4f}, {d.score_ci[1]:+.4f}] | "
                f"{d.better} / {d.worse} | {d.verdict} |"
            )
    lines += ["", "Rule taken by the inner loop (held-out families per rule):", ""]
    for row in rows:
        counts = ", ".join(f"{rule} {n}" for rule, n in row.inner_rules.items())
        lines.append(f"- b = {row.budget}: {counts}")
    return lines


def verdict_text(rows: list[BudgetRow]) -> str:
    """Where the meta RF and the hybrids are ahead of the portfolio of the same budget (CI excludes 0)."""
    parts = []
    for rule in ("meta_rf", "meta_rf_portfolio", "inner_choice"):
        ahead = [str(r.budget) for r in rows if r.versus_portfolio[rule].gap_ci[0] > 0]
        behind = [str(r.budget) for r in rows if r.versus_portfolio[rule].gap_ci[1] < 0]
        parts.append(
            f"{rule}: ahead at b = {', '.join(ahead) or 'none'}; behind at b = {', '.join(behind) or 'none'}; "
            "no clear difference elsewhere"
        )
    return "; ".join(parts) + "."


def markdown(
    command: str,
    gt: GroundTruth,
    summaries: list[SelectionSummary],
    rows: list[BudgetRow],
    entries: list[DatasetEntry],
    settings: CVSettings,
    wall: float,
    recommend_s: float,
) -> str:
    used = set(gt.names)
    families = len(set(gt.families))
    sources = sorted({e.source.split("/")[0] for e in entries if e.name in used})
    subsampled = sum(1 for e in entries if e.name in used and len(e.dataset.y) > settings.max_rows)
    lines = [
        SECTION,
        "",
        f"`{command}` on {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        "2 cores shared with other jobs.",
        "",
        f"Ground truth: {len(gt.names)} datasets in {families} families ({', '.join(sources)}), "
        f"{len(gt.pipelines)} pipelines; balanced accuracy by {settings.folds}-fold stratified CV, "
        f"{gt.repeats} repeat(s) for selection and {gt.repeats} independent repeat(s) for the "
        f"reported score; {subsampled} datasets above {settings.max_rows} rows were subsampled (stratified) "
        f"to {settings.max_rows}. Compute time of all cells as measured when each was computed: "
        f"{gt.cell_seconds / 60:.1f} min (single-threaded fits; the machine was shared, so this is an upper "
        f"bound for 2 quiet cores). This run's wall time (cached cells reused): {wall:.0f} s.",
        "",
        "Leave one family out: every selector and the single best pipeline are fitted on the other families' "
        "selection scores; every choice is credited with its report score. Gap closed = (selector - single "
        "best) / (oracle - single best) on family means, 95% bootstrap CI over families; top-1 and rank "
        "(1 = best of the portfolio) on the report scores, averaged over families.",
        "",
        "| selector | gap closed | 95% CI | top-1 | avg rank | mean balanced acc. |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.selector} | {s.gap_closed:.3f} | [{s.gap_ci[0]:.3f}, {s.gap_ci[1]:.3f}] | {s.top1:.3f} | "
            f"{s.average_rank:.2f} | {s.mean_score:.4f} |"
        )
    s0 = summaries[0]
    rf = next(s for s in summaries if s.selector == "meta_rf")
    half = "met" if rf.gap_closed >= 0.5 else "not met"
    lines += [
        "",
        f"Single best {s0.single_best_score:.4f}, oracle {s0.oracle_score:.4f} (family means of report scores). "
        f"Target, first half (the meta RF closes at least half the gap): **{half}** ({rf.gap_closed:.3f}, "
        f"CI [{rf.gap_ci[0]:.3f}, {rf.gap_ci[1]:.3f}]). Rows marked 'evaluated' cross-validate that many "
        "pipelines on the new dataset before choosing (on the selection repeats); the other rows choose "
        "without evaluating anything. Every selector runs with its defaults in `metadl.automl.selectors`; "
        "none was tuned on these results.",
        "",
        "### Equal evaluation budgets, paired with the greedy portfolio",
        "",
        "Budget b = pipelines cross-validated on the new dataset before choosing (b = 0 and b = 1 make the "
        "same choice: the rule's first pipeline). Rules (`metadl.automl.budgets`): `meta_rf` = its top b; "
        "`greedy_portfolio` = its first b members (the first is the single best); `meta_rf_portfolio` = the "
        "meta RF's top 1, then the members with most expected gain over its trees; `inner_choice` = the "
        "families dealt into 5 groups; for each group's families, the best of those three at this b in a "
        "4-fold leave-families-out loop on the other groups' families only. Differences are paired: each bootstrap sample draws families once and "
        "scores both rules on them.",
        "",
        *budget_tables(rows),
        "",
        f"Second half of the target (ahead of the greedy portfolio, paired 95% CI above 0): {verdict_text(rows)}",
        "",
        f"Time to recommend (meta-features + refitting the meta RF from the table, no `--cv`) for a "
        f"10,000-row, 20-feature dataset: {recommend_s:.1f} s.",
        "",
    ]
    return "\n".join(lines)


def write_section(doc: Path, section: str, name: str = "algorithm-selection") -> None:
    """Replace the text between the markers ``name`` in ``doc`` (append it the first time)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{section.rstrip()}\n{end}"
    text = doc.read_text()
    pattern = re.compile(rf"{re.escape(start)}.*?{re.escape(end)}", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    doc.write_text(text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "metadl" / "automl-groundtruth-v2"
    )
    parser.add_argument(
        "--repeats", type=int, default=CVSettings.repeats, help="CV repeats in each set (selection, report)"
    )
    parser.add_argument("--max-datasets", type=int, default=None)
    parser.add_argument(
        "--time-budget", type=float, default=None, help="seconds; no dataset is started after it"
    )
    parser.add_argument("--table", type=Path, default=ROOT / "src" / "metadl" / "automl" / TABLE_NAME)
    parser.add_argument("--from-table", type=Path, default=None, help="evaluate this saved table")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--boot", type=int, default=2000)
    args = parser.parse_args(argv)
    start = time.monotonic()
    entries = interleave_families(all_datasets())[: args.max_datasets]
    if args.from_table is not None:
        gt = GroundTruth.load(args.from_table)
        settings = CVSettings(repeats=gt.repeats, max_rows=gt.max_rows)
    else:
        settings = CVSettings(repeats=args.repeats)
        deadline = None if args.time_budget is None else start + args.time_budget
        gt = build_ground_truth(entries, args.cache, settings=settings, deadline=deadline, progress=print)
        gt.save(args.table)
    rows = budget_sweep(gt, BUDGETS, n_boot=args.boot)
    by_rule = {(rule, row.budget): row.summaries[rule] for row in rows for rule in row.summaries}
    summaries = [replace(by_rule[key], selector=label) for label, key in FROM_SWEEP.items()]
    for label, (name, kwargs) in SELECTORS.items():

        def make(name: str = name, kwargs: dict[str, object] = kwargs) -> Selector:
            return create_selector(name, **kwargs)

        summaries.append(summarize(label, leave_one_family_out(gt, make), n_boot=args.boot))
    for summary in summaries:
        print(summary)
    wall = time.monotonic() - start
    recommend_s = time_to_recommend(gt)
    command = "python benchmarks/algorithm_selection.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    section = markdown(command.strip(), gt, summaries, rows, entries, settings, wall, recommend_s)
    print(section)
    if not args.no_doc:
        write_section(args.doc, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
