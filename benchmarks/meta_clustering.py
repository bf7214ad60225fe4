"""Meta-clustering on Omniglot (Lake split): cluster each of the 20 evaluation alphabets, k = true and k = 100.

The L2C protocol (Hsu et al. ICLR 2018/2019): a model trained on background alphabets partitions all
drawings of each evaluation alphabet on its own; clustering accuracy (Hungarian matching, unmatched
clusters are errors), NMI and ARI, mean ± 95% CI over the 20 alphabets. Anchors (GT-RIPL/L2C README):
MCL 82.5% (k = 100) / 85.7% (true k), KCL 75.0% / 82.4%.

Methods (one process each, so the peak RSS is the method's own):

* ``pixels``: k-means on raw 28x28 pixels.
* ``supervised``: Conv-4 trained with cross-entropy over the training alphabets' characters, k-means on its features.
* ``protonet``: metadl's ProtoNet (the ``protonet_omniglot_5w1s`` recipe: 60-way 1-shot 5-query, Adam
  1e-3 halved every 2000 episodes), shortened to ``--iterations``; k-means on its embedding.
* ``softkmeans``: the ``softkmeans`` learner, meta-trained on clustering episodes.
* ``pairwise``: the ``pairwise`` learner (learned same-class probability, average-linkage clustering);
  also without k, cut at a threshold chosen on the validation alphabets.
* ``saved``: k-means on the backbone of a model saved by ``metadl train`` (``--model RUN/model``), not
  trained here; it must never have seen an evaluation alphabet, and ``--val-alphabets`` should name
  background alphabets it was not trained on (``lake``: ``omniglot.LAKE_VAL_ALPHABETS``).
  ``--init`` starts ``softkmeans`` or ``pairwise`` from such a model's backbone instead of at random.

Every method is also scored without k: ``pairwise`` by its threshold, the others by the number of
clusters whose k-means partition has the best silhouette (``metadl.algorithms.estimate_k``, k from 2 to 100).

Everything trains on the background alphabets minus 5 validation alphabets (``metadl.apps.cluster.protocol``);
for the k-means baselines, L2-normalising the features or not is chosen on the validation alphabets
(true k); the pairwise learner's threshold likewise (the smallest mean relative error of the estimated k).

Usage:
    nice -n 5 python benchmarks/meta_clustering.py --method softkmeans --iterations 2000 --out bench/cluster
    nice -n 5 python benchmarks/meta_clustering.py --method softkmeans --init runs/lake-long/model \
        --val-alphabets lake --lr 1e-4 --iterations 500 --out bench/cluster-init   # fine-tuned from it
    nice -n 5 python benchmarks/meta_clustering.py --method saved --model runs/lake-long/model \
        --val-alphabets lake --out bench/cluster
    python benchmarks/meta_clustering.py --report bench/cluster      # the markdown table
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import torch

from metadl.algorithms import Learner, create_learner
from metadl.algorithms.clustering_steps import Clusterer
from metadl.apps.cluster.baselines import EmbeddingKMeans, backbone_features, pixels
from metadl.apps.cluster.protocol import LakeData, lake_data
from metadl.data.omniglot import LAKE_VAL_ALPHABETS
from metadl.evaluation.cluster_protocol import ClusteringEvalResult, class_groups, evaluate_clustering
from metadl.models import create_backbone
from metadl.saving import load
from metadl.tasks import EpisodeSampler
from metadl.training.meta import meta_train
from metadl.training.supervised import train_supervised

METHODS = ("pixels", "supervised", "protonet", "saved", "softkmeans", "pairwise")
# Clustering episodes: 20 characters x 10 drawings (support and query are clustered together).
CLUSTER_EPISODE = {"n_way": 20, "k_shot": 5, "n_query": 5}
THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)]


HIDDEN = [64]  # Conv-4 width, set by --hidden


def conv4() -> torch.nn.Module:
    return create_backbone("conv4", in_channels=1, hidden=HIDDEN[0], image_size=28)


def train_method(
    method: str,
    data: LakeData,
    iterations: int,
    seed: int,
    model: Path | None = None,
    init: Path | None = None,
    lr: float = 1e-3,
) -> tuple[Any, dict[str, Any]]:
    """The trained model (a clusterer, or a backbone for k-means) and notes on how it was trained."""
    torch.manual_seed(seed)
    if method == "pixels":
        return None, {}
    if method == "saved":
        if model is None:
            raise SystemExit("--method saved needs --model RUN/model (a folder saved by metadl train)")
        return load(model).learner.backbone, {"model": str(model)}  # type: ignore[attr-defined]
    if method == "supervised":
        epochs = max(1, iterations // 250)
        result = train_supervised(conv4(), data.train, epochs=epochs, lr=1e-3, seed=seed, progress=True)
        return result.backbone, {"epochs": epochs, "train_acc": result.history[-1]["train_acc"]}
    if method == "protonet":
        learner: Learner = create_learner("protonet", backbone=conv4(), n_way=60)
        sampler = EpisodeSampler(data.train, n_way=60, k_shot=1, n_query=5, seed=seed)
        optimizer = torch.optim.Adam(learner.parameters(), lr=1e-3)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, 2000, 0.5)
        meta_train(
            learner,
            sampler,
            optimizer,
            iterations=iterations,
            meta_batch=1,
            on_step=lambda _i, _o: schedule.step(),
        )
        return learner.backbone, {"iterations": iterations}  # type: ignore[attr-defined]
    learner = create_learner(method, backbone=conv4(), n_way=CLUSTER_EPISODE["n_way"])
    if init is not None:  # fine-tune a saved model's backbone (same architecture, strict load)
        saved = load(init).learner.backbone  # type: ignore[attr-defined]
        learner.backbone.load_state_dict(saved.state_dict())  # type: ignore[attr-defined]
    sampler = EpisodeSampler(data.train, seed=seed, **CLUSTER_EPISODE)
    optimizer = torch.optim.Adam(learner.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, max(1, iterations // 2), 0.5)
    history = meta_train(
        learner,
        sampler,
        optimizer,
        iterations=iterations,
        meta_batch=1,
        on_step=lambda _i, _o: schedule.step(),
    )
    tail = history[-100:]
    notes = {"iterations": iterations, "lr": lr, "final_loss": sum(r["loss"] for r in tail) / len(tail)}
    return learner, notes if init is None else {**notes, "init": str(init)}


def choose_clusterer(method: str, model: Any, data: LakeData) -> tuple[Clusterer, dict[str, Any]]:
    """Settings chosen on the validation alphabets (never on the evaluation alphabets)."""
    if method in ("softkmeans", "pairwise"):
        if method == "pairwise":
            errors = {}
            for t in THRESHOLDS:
                model.threshold = t
                errors[t] = evaluate_clustering(model, data.val, k="estimate").k_relative_error
            model.threshold = min(errors, key=lambda t: (errors[t], t))
            return model, {"threshold": model.threshold, "val_k_relative_error": errors[model.threshold]}
        return model, {"val_accuracy": evaluate_clustering(model, data.val).mean}
    embed = pixels if model is None else backbone_features(model)
    scores = {
        n: evaluate_clustering(EmbeddingKMeans(embed, normalize=n), data.val).mean for n in (False, True)
    }
    normalize = max(scores, key=lambda n: (scores[n], not n))
    return EmbeddingKMeans(embed, normalize=normalize), {
        "normalize": normalize,
        "val_accuracy": scores[normalize],
    }


def summary(r: ClusteringEvalResult) -> dict[str, Any]:
    d = r.to_dict()
    d.pop("per_group")
    return d


def run(
    method: str,
    root: str,
    iterations: int,
    seed: int,
    out: Path,
    model_path: Path | None = None,
    val_alphabets: list[str] | None = None,
    init: Path | None = None,
    lr: float = 1e-3,
) -> None:
    torch.set_num_threads(1)
    data = lake_data(root, val_alphabets=val_alphabets)
    start, cpu = time.perf_counter(), time.process_time()
    model, notes = train_method(method, data, iterations, seed, model_path, init, lr)
    train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    clusterer, chosen = choose_clusterer(method, model, data)
    start = time.perf_counter()
    results = {
        "true": summary(evaluate_clustering(clusterer, data.test, k="true", seed=seed)),
        "100": summary(evaluate_clustering(clusterer, data.test, k=100, seed=seed)),
    }
    # k estimated: pairwise by its threshold, every other method by the best silhouette (estimate_k)
    results["estimate"] = summary(evaluate_clustering(clusterer, data.test, k="estimate", seed=seed))
    row = {
        "method": method,
        "seed": seed,
        "hidden": HIDDEN[0],
        "val_alphabets": sorted(class_groups(data.val.class_names)),
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,  # below train_s when the core is shared
        "eval_s": time.perf_counter() - start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **notes,
        **chosen,
        "results": results,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{method}.json").write_text(json.dumps(row, indent=1))
    print(json.dumps(row, indent=1))


def pct(d: dict[str, Any]) -> str:
    return f"{100 * d['mean']:.1f} ± {100 * d['ci95']:.1f}"


def report(folder: Path) -> None:
    print(
        "| method | acc, true k | acc, k = 100 | NMI (true k / 100) | ARI (true k / 100) | train (wall / CPU) "
        "| peak RSS |"
    )
    print("|---|---|---|---|---|---|---|")
    for method in METHODS:
        path = folder / f"{method}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        t, h = r["results"]["true"], r["results"]["100"]
        train = (
            "-"
            if method in ("pixels", "saved")
            else f"{r['train_s'] / 60:.1f} / {r['train_cpu_s'] / 60:.1f} min"
        )
        print(
            f"| {method} | {pct(t)} | {pct(h)} | {t['nmi']:.3f} / {h['nmi']:.3f} | {t['ari']:.3f} / {h['ari']:.3f} "
            f"| {train} | {r['peak_rss_mib']:.0f} MiB |"
        )
        if "estimate" in r["results"]:
            e = r["results"]["estimate"]
            how = f"threshold {r['threshold']}" if "threshold" in r else "best silhouette"
            print(
                f"| {method}, k estimated ({how}) | {pct(e)} | | {e['nmi']:.3f} | {e['ari']:.3f} "
                f"| k exact in {100 * e['k_exact']:.0f}% of alphabets, mean relative error {e['k_relative_error']:.2f} | |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--root", default="../shared/data/omniglot")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=64, help="Conv-4 width (64 in the papers)")
    parser.add_argument("--model", type=Path, help="--method saved: a model folder saved by metadl train")
    parser.add_argument(
        "--val-alphabets",
        help="comma-separated background alphabets for the choices, or 'lake' (omniglot.LAKE_VAL_ALPHABETS); "
        "default every sixth background alphabet",
    )
    parser.add_argument(
        "--init", type=Path, help="softkmeans/pairwise: start from this saved model's backbone"
    )
    parser.add_argument(
        "--lr", type=float, default=1e-3, help="Adam learning rate of the clustering learners"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/cluster"))
    parser.add_argument("--report", type=Path, metavar="FOLDER")
    args = parser.parse_args()
    if args.report:
        report(args.report)
    elif args.method:
        HIDDEN[0] = args.hidden
        val = args.val_alphabets
        names = list(LAKE_VAL_ALPHABETS) if val == "lake" else val.split(",") if val else None
        run(
            args.method,
            args.root,
            args.iterations,
            args.seed,
            args.out,
            args.model,
            names,
            args.init,
            args.lr,
        )
    else:
        parser.error("give --method or --report")


if __name__ == "__main__":
    main()
