"""Episodic fine-tuning of MiniLM's top blocks on CLINC150, evaluated on BANKING77 (all-way K-shot).

Meta-training: CLINC150's training split (``--per-intent`` rows of each intent, seeded), without the
``banking`` and ``credit_cards`` domains unless ``--keep-overlap``; ``--val-intents`` of its intents are
held out of meta-training and scored (10-way 5-shot ProtoNet episodes) before and after, the only
data the settings may be judged on. The lower ``--frozen-layers`` blocks are cached once per sentence
(:class:`metadl.models.text.LowerLayerEncoder`), sentences cut at the 95th percentile of the token
lengths of the training texts (CLINC150 rows used + BANKING77's training split, texts only). ProtoNet
(cosine, learned temperature) trains the top blocks for ``--episodes`` episodes with AdamW.

Evaluation: issue 13's protocol (``metadl.apps.text.intents``) on BANKING77 with the fine-tuned encoder:
K = 5/10 examples of every intent, the full test set, 5 seeded draws, mean ± 95% CI; heads ``prototype``
and ``logreg`` (C chosen on training draws, ``choose_logreg_c``). Writes ``docs/benchmarks.md``'s
``text-meta`` section with training time and peak memory.

    nice -n 5 .venv/bin/python benchmarks/text_meta.py --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import torch
from text_intents import cells, embed_rows, markers, relabel, write_doc

from metadl.algorithms.protonet import ProtoNet
from metadl.apps.text.finetune import FinetuneSettings, episodic_finetune, finetunable_model, query_loss
from metadl.apps.text.intents import IntentResult, Split, kshot_indices, run_protocol
from metadl.apps.text.model import TextModel
from metadl.data.base import FewShotDataset
from metadl.data.text import TextDataset, banking77, clinc150
from metadl.models.text import LowerLayerEncoder, create_text_encoder
from metadl.tasks.samplers import EpisodeSampler

OVERLAP = ("banking", "credit_cards")


class TunedEncoder:
    """Sentences -> the fine-tuned model's embeddings (cached lower blocks, then the trained top)."""

    def __init__(self, model: TextModel) -> None:
        assert isinstance(model.learner, ProtoNet)
        self.model, self.dim = model, model.learner.backbone.out_features

    def encode(self, texts: list[str]) -> torch.Tensor:
        self.model.learner.eval()
        with torch.no_grad():
            states = self.model.encoder.encode(texts)
            assert isinstance(self.model.learner, ProtoNet)
            return torch.cat([self.model.learner.backbone(c) for c in states.split(256)])


def clinc_meta_data(root: Path, args: argparse.Namespace) -> tuple[TextDataset, TextDataset]:
    """(meta-training intents, validation intents) of CLINC150's training split, ``per_intent`` rows each."""
    full = clinc150(root / "clinc150", "train")
    if not args.keep_overlap:
        domains = clinc_domains(root)
        kept = sorted(set(domains) - set(OVERLAP))
        full = clinc150(root / "clinc150", "train", domains=kept)
    g = torch.Generator().manual_seed(args.seed)
    keep = torch.zeros(len(full), dtype=torch.bool)
    for c in range(len(full.class_names)):
        members = (full.labels == c).nonzero().flatten()
        keep[members[torch.randperm(len(members), generator=g)[: args.per_intent]]] = True
    data = full.subset(keep)
    intents = torch.randperm(len(full.class_names), generator=g)
    is_val = torch.isin(data.labels, intents[: args.val_intents])
    return compact(data.subset(~is_val)), compact(data.subset(is_val))


def clinc_domains(root: Path) -> list[str]:
    return sorted(json.loads((root / "clinc150" / "domains.json").read_text()))


def compact(ds: TextDataset) -> TextDataset:
    """Drop label names without examples (after a subset)."""
    return TextDataset.from_names(list(ds.texts), ds.label_names(), name=ds.name)


def evaluate_banking(
    args: argparse.Namespace, b_train: TextDataset, b_test: TextDataset, tuned: TunedEncoder
) -> tuple[list[tuple[str, IntentResult]], int]:
    """Issue 13's protocol on BANKING77 (``args.seeds`` draws, ``args.shots``), frozen MiniLM and ``tuned``
    on the same draws and test sentences (a seeded subset when ``--test-subset``)."""
    seeds, shots = tuple(args.seeds), tuple(args.shots)
    rows = torch.cat(
        [kshot_indices(b_train.labels, max(shots), torch.Generator().manual_seed(s)) for s in seeds]
    ).unique()
    keep = torch.ones(len(b_test), dtype=torch.bool)
    if args.test_subset is not None:
        keep[:] = False
        keep[
            torch.randperm(len(b_test), generator=torch.Generator().manual_seed(args.seed))[
                : args.test_subset
            ]
        ] = True
    b_test = b_test.subset(keep)
    results = []
    frozen = create_text_encoder("sentence_transformer")
    for encoder_name, enc in (("frozen MiniLM", frozen), ("fine-tuned top", tuned)):
        train = Split(embed_rows(enc, b_train, rows), b_train.labels)  # type: ignore[arg-type]
        test = Split(embed_rows(enc, b_test), relabel(b_test, b_train.class_names))  # type: ignore[arg-type]
        for k in shots:
            for name, head in cells(train, rows, k):
                result = run_protocol("BANKING77", name, train, test, k_shot=k, seeds=seeds, head=head)
                results.append((encoder_name, result))
                print(encoder_name, name, k, result.ci("accuracy"), flush=True)
    return results, len(b_test)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--frozen-layers", type=int, default=5)
    p.add_argument("--max-length", type=int, default=None, help="default: 95th percentile (see docstring)")
    p.add_argument("--per-intent", type=int, default=20)
    p.add_argument("--val-intents", type=int, default=15)
    p.add_argument("--keep-overlap", action="store_true", help="keep CLINC150's banking/credit_cards domains")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--n-way", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="protocol draws")
    p.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    p.add_argument("--test-subset", type=int, default=None, help="score a seeded subset of the test set")
    p.add_argument("--doc", type=Path, default=None, help="write the section into this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    meta, val = clinc_meta_data(args.data_root, args)
    b_train = banking77(args.data_root / "banking77", "train")
    b_test = banking77(args.data_root / "banking77", "test")
    probe = LowerLayerEncoder(frozen_layers=args.frozen_layers, max_length=8, cache=False)
    max_length = args.max_length or probe.length_quantile(list(meta.texts) + list(b_train.texts), 0.95)
    encoder = LowerLayerEncoder(frozen_layers=args.frozen_layers, max_length=max_length)
    model = finetunable_model(
        encoder,
        "protonet",
        n_way=args.n_way,
        learner_kwargs={"distance": "cosine", "learn_temperature": True},
    )
    t0 = time.perf_counter()
    meta_x = FewShotDataset(encoder.encode(meta.texts), meta.labels, meta.class_names, name="clinc150-meta")
    val_x = FewShotDataset(encoder.encode(val.texts), val.labels, val.class_names, name="clinc150-val")
    cache_s = time.perf_counter() - t0
    shape = {"n_way": min(10, len(val.class_names)), "k_shot": 5, "n_query": 5}
    val_seeds = range(1000, 1020)

    def val_accuracy() -> float:
        model.learner.eval()
        accs = []
        with torch.no_grad():
            for s in val_seeds:
                out = model.learner(EpisodeSampler(val_x, **shape, seed=s).sample_batch(1))
                accs.append(float(out.per_task_metric.mean()))
        return sum(accs) / len(accs)

    before = (query_loss(model, val_x, **shape, episodes=val_seeds), val_accuracy())
    print(
        f"max_length {max_length}; cached {len(meta) + len(val)} sentences in {cache_s:.0f} s; val before {before}",
        flush=True,
    )
    settings = FinetuneSettings(
        n_way=args.n_way, k_shot=5, n_query=5, episodes=args.episodes, lr=args.lr, seed=args.seed
    )
    t0 = time.perf_counter()
    history = episodic_finetune(model, meta_x, settings, progress=True)
    train_s = time.perf_counter() - t0
    after = (query_loss(model, val_x, **shape, episodes=val_seeds), val_accuracy())
    print(f"trained {args.episodes} episodes in {train_s:.0f} s; val after {after}", flush=True)
    t0 = time.perf_counter()
    results, test_n = evaluate_banking(args, b_train, b_test, TunedEncoder(model))
    eval_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    load = os.getloadavg()[0]
    lines = [
        f"| {encoder_name} | {args.frozen_layers} | {'with' if args.keep_overlap else 'without'} | {r.method} | "
        f"{r.k_shot} | {r.ci('accuracy')} |"
        for encoder_name, r in results
    ]
    summary = (
        f"frozen_layers={args.frozen_layers}, max_length={max_length}, {len(meta.class_names)} meta-training "
        f"intents x {args.per_intent}, {args.episodes} episodes {args.n_way}-way 5-shot 5-query, lr {args.lr}; "
        f"validation intents ({len(val.class_names)}) 10-way 5-shot query loss / accuracy before "
        f"{before[0]:.3f} / {100 * before[1]:.1f}%, after {after[0]:.3f} / {100 * after[1]:.1f}%; "
        f"caching lower blocks {cache_s:.0f} s, training {train_s:.0f} s "
        f"({train_s / max(len(history), 1):.1f} s/episode), BANKING77 encoding + protocol {eval_s:.0f} s "
        f"({len(args.seeds)} draws, {test_n} test sentences), "
        f"whole run {(time.perf_counter() - start) / 60:.1f} min, peak resident memory {peak:.2f} GiB, "
        f"load average {load:.1f}"
    )
    print(summary)
    print("\n".join(lines))
    if args.doc is not None:
        name = f"meta-{args.frozen_layers}-{'with' if args.keep_overlap else 'without'}"
        start_mark, end_mark = markers(name)
        header = (
            "| encoder | frozen layers | banking/credit-card domains in meta-training | head | K | BANKING77 accuracy |\n"
            "|---|---|---|---|---|---|"
        )
        write_doc("\n".join([start_mark, summary, "", header, *lines, end_mark]), args.doc, name)


if __name__ == "__main__":
    main()
