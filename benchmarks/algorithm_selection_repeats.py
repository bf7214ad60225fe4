"""Algorithm selection (issue 18): what more CV repeats change, on the datasets whose cells hold them.

Reads cached cells only (never computes one): the datasets of ``--cache`` whose 14 cells all hold at
least ``--repeats`` repeats in each set (as ``algorithm_selection.py --repeats R`` leaves them, also
when stopped by its ``--time-budget``). On exactly those datasets, with 1 and with R repeats:

- the winner's curse: how much the per-dataset oracle's selection score overstates its report score;
- how often the oracle's pick (best on the selection scores) changes from 1 to R repeats;
- single best, oracle, and at budgets 0 and 3 the meta RF, the greedy portfolio and the hybrid
  (leave one family out, no inner loop), the meta RF and the hybrid paired with the portfolio.

The subsection is written between the markers ``algorithm-selection-repeats`` of ``docs/benchmarks.md``.

Usage:
    python benchmarks/algorithm_selection_repeats.py [--repeats 2] [--cache DIR] [--doc FILE | --no-doc]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from algorithm_selection import ROOT, write_section

from metadl.automl.budgets import rule_orderings
from metadl.automl.collection import all_datasets, interleave_families
from metadl.automl.comparison import paired_difference
from metadl.automl.groundtruth import CVSettings, GroundTruth, build_ground_truth, cached_repeats
from metadl.automl.portfolio import list_pipelines
from metadl.automl.protocol import credit, summarize, winners_curse


def describe(label: str, gt: GroundTruth, n_boot: int) -> list[str]:
    """One table row per (budget, rule) and the paired lines, for one table."""
    orders = rule_orderings(gt, size=3)
    lines = []
    for b in (0, 3):
        choices = {rule: credit(gt, orders[rule], b) for rule in orders}
        s = {rule: summarize(rule, c, n_boot=n_boot) for rule, c in choices.items()}
        paired = {
            rule: paired_difference(
                rule, choices[rule], "greedy_portfolio", choices["greedy_portfolio"], n_boot=n_boot
            )
            for rule in ("meta_rf", "meta_rf_portfolio")
        }
        lines.append(
            f"| {label} | {b} | {s['meta_rf'].gap_closed:.3f} | {s['greedy_portfolio'].gap_closed:.3f} | "
            f"{s['meta_rf_portfolio'].gap_closed:.3f} | "
            + " | ".join(
                f"{d.gap_difference:+.3f} [{d.gap_ci[0]:+.3f}, {d.gap_ci[1]:+.3f}]" for d in paired.values()
            )
            + f" | {s['meta_rf'].single_best_score:.4f} / {s['meta_rf'].oracle_score:.4f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "metadl" / "automl-groundtruth-v2"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--boot", type=int, default=2000)
    args = parser.parse_args(argv)
    start = time.monotonic()
    entries = interleave_families(all_datasets())
    more = CVSettings(repeats=args.repeats)
    done = [e for e in entries if cached_repeats(e, list_pipelines(), more, args.cache) >= args.repeats]
    tables = {
        r: build_ground_truth(done, args.cache, settings=CVSettings(repeats=r)) for r in (1, args.repeats)
    }
    one, many = tables[1], tables[args.repeats]
    changed = float((one.selection.argmax(axis=1) != many.selection.argmax(axis=1)).mean())
    lines = [
        f"### {args.repeats} repeats for selection and {args.repeats} for the report",
        "",
        f"`python benchmarks/algorithm_selection_repeats.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
        f" (reads cached cells only; {time.monotonic() - start:.0f} s): the {len(done)} of {len(entries)} "
        f"datasets ({len(set(many.families))} families) whose cells hold {args.repeats} repeats of each set.",
        "",
        f"Winner's curse (the oracle's selection score minus its report score, mean over datasets): "
        f"{winners_curse(one):.4f} with 1 repeat, {winners_curse(many):.4f} with {args.repeats}. The oracle's "
        f"pick changes from 1 to {args.repeats} repeats on {changed:.0%} of these datasets.",
        "",
        "| repeats | b | meta_rf | greedy_portfolio | meta_rf_portfolio | meta_rf - portfolio [95% CI] "
        "| meta_rf_portfolio - portfolio [95% CI] | single best / oracle |",
        "|---|---|---|---|---|---|---|---|",
        *describe("1", one, args.boot),
        *describe(str(args.repeats), many, args.boot),
        "",
        "Gap closed, leave one family out on these datasets only (no inner loop); differences paired over families.",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_doc:
        write_section(args.doc, section, name="algorithm-selection-repeats")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
