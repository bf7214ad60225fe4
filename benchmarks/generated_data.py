"""Generated training data on Omniglot (issue 17): UMTRA without labels, augmentation, feature hallucination.

Arms (all Conv-4, ProtoNet-style, trained with the engine, ``metadl.training.trainer.train``; the
checkpoint kept is the one with the best accuracy on the Vinyals *validation* split; test episodes
are scored once at the end):

- ``supervised``: ProtoNet on labelled episodes of the training classes.
- ``umtra``: the same ProtoNet on UMTRA tasks built from the training images with no labels
  (``augment.unsupervised: {name: umtra}``); validation still uses labelled validation classes.
- ``augment``: ``supervised`` plus per-image affine and elastic transforms of training tasks.
- ``hallucination``: the ``hallucination`` learner (ProtoNet + jointly trained feature generator).
- ``low/...``: the same with a tenth of the training characters (all four rotations of each), the
  regime where generated data should matter most.
- ``5shot/...``: supervised and hallucination trained and tested on 5-shot episodes (the generator's
  ablation at 1 and 5 shots).

Every arm is scored on the same seeded test episodes (5-way and 20-way 1-shot), so gains are paired
differences with their 95% CI (``metadl.evaluation.confidence.paired_difference_ci95``). The section
"Generated training data (issue 17)" of ``docs/benchmarks.md`` is replaced with the table (``--doc``).

Usage:
    nice -n 5 python benchmarks/generated_data.py --iterations 300 --episodes 300 [--arms supervised,umtra]
        [--data ../shared/data/omniglot] [--out runs/generated-data] [--doc docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from metadl.config import config_from_dict
from metadl.data import create_dataset
from metadl.data.base import FewShotDataset
from metadl.evaluation.confidence import paired_difference_ci95
from metadl.evaluation.run import evaluate_config
from metadl.training.metrics import read_metrics
from metadl.training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Generated training data (issue 17)"
AFFINE_ELASTIC = [
    {"name": "affine", "degrees": 10, "translate": 0.1, "scale": [0.9, 1.1], "shear": 10},
    {"name": "elastic", "alpha": 1.0, "sigma": 3.0},
]
ARMS: dict[str, dict[str, Any]] = {
    "supervised": {},
    "umtra": {"augment": {"unsupervised": {"name": "umtra", "transforms": AFFINE_ELASTIC}}},
    "augment": {"augment": {"train": AFFINE_ELASTIC}},
    "hallucination": {"learner": {"name": "hallucination", "n_generated": 5}},
    "low/supervised": {},
    "low/augment": {"augment": {"train": AFFINE_ELASTIC}},
    "low/hallucination": {"learner": {"name": "hallucination", "n_generated": 5}},
    "5shot/supervised": {},
    "5shot/hallucination": {"learner": {"name": "hallucination", "n_generated": 5}},
}
BASELINE = {
    "umtra": "supervised",
    "augment": "supervised",
    "hallucination": "supervised",
    "low/augment": "low/supervised",
    "low/hallucination": "low/supervised",
    "5shot/hallucination": "5shot/supervised",
}


def shots_of(arm: str) -> int:
    """Support examples per class in the arm's training and test episodes."""
    return 5 if arm.startswith("5shot/") else 1


@dataclass
class ArmResult:
    arm: str
    iterations: int
    train_seconds: float
    val_accuracy: float | None
    test: dict[str, tuple[float, float]]  # "5w1s" (ways, shots) -> (mean, ci95)
    per_episode: dict[str, list[float]]


def base_config(args: argparse.Namespace, ways: int, shots: int = 1, **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "seed": 0,
        "device": "cpu",
        "dataset": {"name": "omniglot", "root": str(args.data), "image_size": 28},
        "sampler": {"ways": args.train_ways, "shots": shots, "queries": args.queries, "meta_batch": 1},
        "backbone": {"name": "conv4", "hidden": 64},
        "learner": {"name": "protonet"},
        "optimizer": {"name": "adam", "lr": 0.001},
        "train": {
            "iterations": args.iterations,
            "val_every": args.val_every,
            "checkpoint_every": 100,
            "val_episodes": args.val_episodes,
        },
        "eval": {
            "episodes": args.episodes,
            "ways": ways,
            "shots": shots,
            "queries": 5,
            "split": "test",
            "seed": 0,
        },
    }
    for key, value in changes.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) and key != "augment" else value
    return raw


def low_data(train_split: FewShotDataset, fraction: float, seed: int = 0) -> FewShotDataset:
    """A ``fraction`` of the training characters (seeded), each with all of its rotation classes."""
    characters = sorted({name.rsplit("/", 1)[0] for name in train_split.class_names})
    g = torch.Generator().manual_seed(seed)
    keep = {
        characters[i]
        for i in torch.randperm(len(characters), generator=g)[: round(fraction * len(characters))]
    }
    classes = [i for i, name in enumerate(train_split.class_names) if name.rsplit("/", 1)[0] in keep]
    return train_split.subset(classes, name=f"{train_split.name}-{fraction:g}")


def run_arm(arm: str, args: argparse.Namespace, splits: dict[str, FewShotDataset]) -> ArmResult:
    """Train (or resume) one arm and score it on the test episodes; cached in ``<out>/<arm>/result.json``."""
    shots = shots_of(arm)
    cfg = config_from_dict(base_config(args, 5, shots, **ARMS[arm]))
    folder = args.out / arm.replace("/", "-")
    cache = folder / "result.json"
    done = cached(arm, args)
    if done is not None:
        return done
    given = {"train": splits["low"] if arm.startswith("low/") else splits["train"], "val": splits["val"]}
    result = train(
        cfg, folder, resume=(folder / "last.ckpt").exists(), progress=False, log=print, splits=given
    )
    learner = result.learner.eval()
    test, per_episode = {}, {}
    for ways in (5, 20):
        eval_cfg = config_from_dict(base_config(args, ways, shots, **ARMS[arm]))
        scored = evaluate_config(eval_cfg, learner, dataset=splits["test"])
        test[f"{ways}w{shots}s"] = (scored.mean, scored.ci95)
        per_episode[f"{ways}w{shots}s"] = scored.per_episode
    # TrainResult.seconds sums the training sessions of a resumed run (metrics.csv's time_s)
    out = ArmResult(arm, result.iterations, result.seconds, result.best_value, test, per_episode)
    cache.write_text(json.dumps({"settings": settings(args), "result": asdict(out)}))
    return out


def cached(arm: str, args: argparse.Namespace) -> ArmResult | None:
    """The arm's stored result when it was produced with the same settings."""
    cache = args.out / arm.replace("/", "-") / "result.json"
    if not cache.exists():
        return None
    stored, now = json.loads(cache.read_text()), settings(args)
    same = all(stored["settings"].get(k) == v for k, v in now.items())
    return ArmResult(**stored["result"]) if same else None


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a cached result depends on (not which arms run, where the files are or where the doc goes)."""
    return {k: str(v) for k, v in vars(args).items() if k not in ("arms", "doc", "threads", "out", "data")}


def table(results: dict[str, ArmResult], args: argparse.Namespace, command: str) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `{command}` (Conv-4, 5-way training episodes with the arm's shots and {args.queries} queries, meta-batch 1, "
        f"Adam 1e-3, {args.iterations} iterations, best of validation every {args.val_every} on "
        f"{args.val_episodes} Vinyals-validation episodes; test: {args.episodes} seeded episodes of the Vinyals test "
        "split, the same for every arm, 5 queries per class).",
        "",
        "| arm | labels | shots | train s | val 5-way | test 5-way | gain | test 20-way | gain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = []
        shots = shots_of(name)
        for key in (f"5w{shots}s", f"20w{shots}s"):
            mean, ci = r.test[key]
            cells.append(f"{100 * mean:.2f}% ± {100 * ci:.2f}")
            base = BASELINE.get(name)
            if base in results:
                diff, half = paired_difference_ci95(r.per_episode[key], results[base].per_episode[key])
                cells.append(f"{100 * diff:+.2f} ± {100 * half:.2f} (vs {base})")
            else:
                cells.append("")
        labels = "none" if name == "umtra" else ("10% of classes" if name.startswith("low/") else "all")
        val = f"{100 * r.val_accuracy:.1f}%" if r.val_accuracy is not None else "-"
        seconds = read_metrics(args.out / name.replace("/", "-") / "metrics.csv")[-1]["time_s"]
        lines.append(f"| {name} | {labels} | {shots} | {seconds:.0f} | {val} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_doc(doc: Path, text: str) -> None:
    old = doc.read_text() if doc.exists() else ""
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text + "\n", old) if pattern.search(old) else old.rstrip() + "\n\n" + text
    doc.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "omniglot")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "generated-data")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--train-ways", type=int, default=5)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--val-episodes", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--low-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--doc", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {list(ARMS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, ArmResult] = {}
    splits: dict[str, FewShotDataset] = {}
    for arm in arms:
        if not splits and cached(arm, args) is None:  # the data is read only when an arm must run
            for split in ("train", "val", "test"):
                splits[split] = create_dataset("omniglot", root=str(args.data), split=split, image_size=28)
            splits["low"] = low_data(splits["train"], args.low_fraction)
        results[arm] = run_arm(arm, args, splits)
        print(
            arm, {k: f"{100 * m:.2f} ± {100 * c:.2f}" for k, (m, c) in results[arm].test.items()}, flush=True
        )
    command = "nice -n 5 python benchmarks/generated_data.py " + " ".join(sys.argv[1:])
    text = table(results, args, command)
    print(text)
    if args.doc is not None:
        write_doc(args.doc, text)


if __name__ == "__main__":
    main()
