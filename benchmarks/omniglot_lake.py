"""Screen the levers of the Lake-protocol Omniglot recipe on the validation alphabets (never on evaluation).

Each variant is the shipped config ``protonet_omniglot_lake_20w1s`` plus ``--set`` overrides, trained for
the same number of iterations on the background alphabets minus the validation ones, and scored on
20-way 1-shot within-alphabet episodes of the validation alphabets (``omniglot.LAKE_VAL_ALPHABETS``),
support and query by different drawers. One row per variant is appended to ``--csv``::

    nice -n 5 python benchmarks/omniglot_lake.py --variants way20 within20 --iterations 150 \\
        --root ../shared/data/omniglot --csv runs/lake_screen.csv

The evaluation alphabets are only read by ``metadl eval`` on the chosen recipe (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import csv
import resource
import time
from pathlib import Path

import torch

from metadl.config import config_from_dict, config_to_dict, load_config, shipped_config
from metadl.training.trainer import train

CONFIG = "protonet_omniglot_lake_20w1s"
# name -> overrides of the shipped config (each one lever moved from the base recipe)
# Each variant spells out its episode shape, so that a row means the same whatever the shipped default.
# The shipped shape: a third of the images of 60-way episodes.
# The base of the screen (the recipe before issue 21's levers): constant 1e-3 for the first 2000
# iterations, no augmentation; way20_aug / way20_cosine move one of those.
WAY20 = (
    "sampler.ways=20",
    "sampler.queries=5",
    "optimizer.schedule=step",
    "optimizer.step_size=2000",  # x0.5 every 2,000 iterations, as the previous recipe's file said
    "optimizer.gamma=0.5",
    "augment.train=[]",
)
WITHIN20 = ("sampler.source=alphabet_episodes", *WAY20)
# Drawer-like variation at 28 px: small affine jitter (about 1.4 px of shift) and a smooth wobble of the
# strokes (at most 1 px, over a few pixels), each on part of the images; training episodes only.
AUGMENT = (
    "augment.train=[{name: affine, degrees: 10, translate: 0.05, scale: [0.9, 1.1], shear: 10, p: 0.8},"
    " {name: elastic, alpha: 1.0, sigma: 2.0, p: 0.5}]"
)
VARIANTS: dict[str, tuple[str, ...]] = {
    "way60": (*WAY20, "sampler.ways=60"),  # Snell et al.'s 60-way training episodes, 3x the images
    "way20": WAY20,
    "within20": WITHIN20,
    "within20_norot": (*WITHIN20, "dataset.rotations=false"),
    "within20_cos": (*WITHIN20, "learner.distance=cosine", "learner.learn_temperature=true"),
    "within20_h96": (*WITHIN20, "backbone.hidden=96"),
    "within20_px48": (*WITHIN20, "dataset.image_size=48"),
    "way20_aug": (*WAY20, AUGMENT),
    "way20_h128": (*WAY20, "backbone.hidden=128"),
    "way20_cosine": (*WAY20, "optimizer.schedule=cosine"),  # annealed to 0 at the last iteration
    "way20_h96": (*WAY20, "backbone.hidden=96"),
    "way20_px48": (*WAY20, "dataset.image_size=48"),
    # depth: ResNet-12 (12 conv layers with residual blocks) instead of Conv-4's 4, at about 6x the cost
    # per image of Conv-4 64 with these widths (MetaOptNet's 64-160-320-640 would be about 30x)
    "way20_resnet12": (*WAY20, "backbone.name=resnet12", "backbone.channels=[32, 64, 128, 256]"),
}


def screen(name: str, root: str, iterations: int, val_episodes: int, out: Path) -> dict[str, object]:
    """Train one variant for ``iterations`` and return its validation row."""
    overrides = [
        f"dataset.root={root}",
        "dataset.download=false",
        f"train.iterations={iterations}",
        f"train.val_every={iterations}",
        f"train.checkpoint_every={iterations}",
        f"train.val_episodes={val_episodes}",
        "device=cpu",
        *VARIANTS[name],
    ]
    cfg = load_config(shipped_config(CONFIG), overrides)
    cfg = config_from_dict(config_to_dict(cfg))
    start, cpu = time.perf_counter(), time.process_time()
    result = train(cfg, out / name, progress=False, log=lambda line: None)
    seconds = time.perf_counter() - start
    if not result.complete:
        raise SystemExit(
            f"{name} stopped by {result.stopped_by} at iteration {result.iterations}; no row written"
        )
    rows = list(csv.DictReader((out / name / "metrics.csv").open()))
    ci = next(float(r["val_ci95"]) for r in reversed(rows) if r.get("val_ci95"))
    return {
        "variant": name,
        "overrides": " ".join(VARIANTS[name]) or "(shipped config)",
        "iterations": iterations,
        "val_episodes": val_episodes,
        "val_accuracy": round(float(result.best_value or 0.0), 4),
        "val_ci95": round(ci, 4),
        "wall_s": round(seconds, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def append_row(path: Path, row: dict[str, object]) -> None:
    """Append ``row`` to the CSV at ``path`` (a header first when the file is new) and print it."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["way20"], choices=sorted(VARIANTS))
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--val-episodes", type=int, default=200)
    parser.add_argument("--root", default="../shared/data/omniglot")
    parser.add_argument("--out", type=Path, default=Path("runs/lake_screen"))
    parser.add_argument("--csv", type=Path, default=Path("runs/lake_screen.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.variants:
        append_row(args.csv, screen(name, args.root, args.iterations, args.val_episodes, args.out))


if __name__ == "__main__":
    main()
