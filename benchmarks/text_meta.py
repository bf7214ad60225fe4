"""Episodic fine-tuning of MiniLM's top blocks on one intent dataset, evaluated on the other (all-way K-shot).

``--source clinc150`` (default): meta-training on CLINC150's training split (``--per-intent`` rows of each
intent, seeded), without the ``banking`` and ``credit_cards`` domains unless ``--keep-overlap``, evaluated
on BANKING77; ``--source banking77``: the reverse (BANKING77's training split, evaluated on CLINC150's
in-scope test queries). ``--val-intents`` of the source's intents are
held out of meta-training and scored (all-way 5-shot episodes of the learner) before and after, the only
data the settings may be judged on. The lower ``--frozen-layers`` blocks are cached once per sentence
(:class:`metadl.models.text.LowerLayerEncoder`), sentences cut at the 95th percentile of the token
lengths of the training texts (source rows used + the target's training split, texts only). The
``--learner`` (ProtoNet with cosine distance and a learned temperature, MetaOptNet-SVM, or ANIL: MAML on
the head) trains the top blocks for ``--episodes`` episodes with AdamW.

Evaluation: issue 13's protocol (``metadl.apps.text.intents``) on the target with the fine-tuned encoder:
K = 5/10 examples of every intent, the full test set, 5 seeded draws, mean ± 95% CI; heads ``prototype``
and ``logreg`` (C chosen on training draws, ``choose_logreg_c``), frozen MiniLM on the same draws beside
it. Writes a ``meta-*`` section of ``--doc`` with training time and peak memory.

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

from metadl.apps.text.finetune import FinetuneSettings, episodic_finetune, finetunable_model, query_loss
from metadl.apps.text.intents import IntentResult, Split, kshot_indices, run_protocol
from metadl.apps.text.model import TextModel
from metadl.data.base import FewShotDataset
from metadl.data.text import OOS_LABEL, TextDataset, banking77, clinc150
from metadl.models.text import LowerLayerEncoder, create_text_encoder
from metadl.models.text.encoders import TextEncoder
from metadl.tasks.samplers import EpisodeSampler

OVERLAP = ("banking", "credit_cards")


LEARNERS: dict[str, dict[str, object]] = {
    "protonet": {"distance": "cosine", "learn_temperature": True},
    "svm": {},
    "anil": {},
}


class TunedEncoder:
    """Sentences -> the fine-tuned model's embeddings (cached lower blocks, then the trained top)."""

    def __init__(self, model: TextModel) -> None:
        self.model, self.backbone = model, model.learner.get_submodule("backbone")
        self.dim = int(self.encode(["probe"]).shape[-1])  # the pooled width of the top blocks

    def encode(self, texts: list[str]) -> torch.Tensor:
        self.model.learner.eval()
        with torch.no_grad():
            states = self.model.encoder.encode(texts)
            return torch.cat([self.backbone(c) for c in states.split(256)])


def source_data(root: Path, args: argparse.Namespace) -> TextDataset:
    """The source dataset's training split (CLINC150 without the overlapping domains unless asked)."""
    if args.source == "banking77":
        return banking77(root / "banking77", "train")
    if args.keep_overlap:
        return clinc150(root / "clinc150", "train")
    kept = sorted(set(clinc_domains(root)) - set(OVERLAP))
    return clinc150(root / "clinc150", "train", domains=kept)


def meta_data(root: Path, args: argparse.Namespace) -> tuple[TextDataset, TextDataset]:
    """(meta-training intents, validation intents) of the source, ``per_intent`` rows each."""
    full = source_data(root, args)
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


def target_splits(root: Path, args: argparse.Namespace) -> tuple[str, TextDataset, TextDataset]:
    """(name, training split, in-scope test split) of the target dataset."""
    if args.source == "banking77":
        c_test = clinc150(root / "clinc150", "test", oos=True)
        in_scope = torch.tensor([n != OOS_LABEL for n in c_test.label_names()])
        return "CLINC150", clinc150(root / "clinc150", "train"), c_test.subset(in_scope)
    return "BANKING77", banking77(root / "banking77", "train"), banking77(root / "banking77", "test")


def evaluate_target(
    args: argparse.Namespace, name: str, t_train: TextDataset, t_test: TextDataset, tuned: TunedEncoder
) -> tuple[list[tuple[str, IntentResult]], int]:
    """Issue 13's protocol on the target (``args.seeds`` draws, ``args.shots``), frozen MiniLM and ``tuned``
    on the same draws and test sentences (a seeded subset when ``--test-subset``)."""
    seeds, shots = tuple(args.seeds), tuple(args.shots)
    rows = torch.cat(
        [kshot_indices(t_train.labels, max(shots), torch.Generator().manual_seed(s)) for s in seeds]
    ).unique()
    keep = torch.ones(len(t_test), dtype=torch.bool)
    if args.test_subset is not None:
        keep[:] = False
        order = torch.randperm(len(t_test), generator=torch.Generator().manual_seed(args.seed))
        keep[order[: args.test_subset]] = True
    t_test = t_test.subset(keep)
    results = []
    encoders: list[tuple[str, TunedEncoder | TextEncoder]] = [("fine-tuned top", tuned)]
    if not args.skip_frozen:
        encoders.insert(0, ("frozen MiniLM", create_text_encoder("sentence_transformer")))
    for encoder_name, enc in encoders:
        train = Split(embed_rows(enc, t_train, rows), t_train.labels)  # type: ignore[arg-type]
        test = Split(embed_rows(enc, t_test), relabel(t_test, t_train.class_names))  # type: ignore[arg-type]
        for k in shots:
            for head_name, head in cells(train, rows, k):
                result = run_protocol(name, head_name, train, test, k_shot=k, seeds=seeds, head=head)
                results.append((encoder_name, result))
                print(encoder_name, head_name, k, result.ci("accuracy"), flush=True)
    return results, len(t_test)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--source", choices=["clinc150", "banking77"], default="clinc150")
    p.add_argument("--learner", choices=sorted(LEARNERS), default="protonet")
    p.add_argument("--skip-frozen", action="store_true", help="no frozen-MiniLM rows (measured elsewhere)")
    p.add_argument("--screen", action="store_true", help="stop after the validation intents' scores")
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
    meta, val = meta_data(args.data_root, args)
    target, t_train, t_test = target_splits(args.data_root, args)
    probe = LowerLayerEncoder(frozen_layers=args.frozen_layers, max_length=8, cache=False)
    max_length = args.max_length or probe.length_quantile(list(meta.texts) + list(t_train.texts), 0.95)
    encoder = LowerLayerEncoder(frozen_layers=args.frozen_layers, max_length=max_length)
    model = finetunable_model(
        encoder, args.learner, n_way=args.n_way, learner_kwargs=dict(LEARNERS[args.learner])
    )
    t0 = time.perf_counter()
    meta_x = FewShotDataset(
        encoder.encode(meta.texts), meta.labels, meta.class_names, name=f"{args.source}-meta"
    )
    val_x = FewShotDataset(encoder.encode(val.texts), val.labels, val.class_names, name=f"{args.source}-val")
    cache_s = time.perf_counter() - t0
    # all-way (10-way is nearly solved), except for ANIL, whose head has the training episodes' n_way outputs
    val_way = args.n_way if args.learner == "anil" else len(val.class_names)
    shape = {"n_way": val_way, "k_shot": 5, "n_query": 5}
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
    if args.screen:  # settings are compared on the validation intents only
        return
    t0 = time.perf_counter()
    results, test_n = evaluate_target(args, target, t_train, t_test, TunedEncoder(model))
    eval_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    load = os.getloadavg()[0]
    overlap = "-" if args.source == "banking77" else ("with" if args.keep_overlap else "without")
    tuned = f"{args.learner} | {args.frozen_layers} | {args.episodes} | {overlap}"
    lines = [
        f"| {encoder_name} | {'- | - | - | -' if encoder_name.startswith('frozen') else tuned} | {r.method} | "
        f"{r.k_shot} | {r.ci('accuracy')} |"
        for encoder_name, r in results
    ]
    summary = (
        f"{args.source} -> {target}: {args.learner}, frozen_layers={args.frozen_layers}, max_length={max_length}, "
        f"{len(meta.class_names)} meta-training intents x {args.per_intent}, {args.episodes} episodes "
        f"{args.n_way}-way 5-shot 5-query, lr {args.lr}; "
        f"validation intents ({len(val.class_names)}) {val_way}-way 5-shot query loss / accuracy before "
        f"{before[0]:.3f} / {100 * before[1]:.1f}%, after {after[0]:.3f} / {100 * after[1]:.1f}%; "
        f"caching lower blocks {cache_s:.0f} s, training {train_s:.0f} s "
        f"({train_s / max(len(history), 1):.1f} s/episode), {target} encoding + protocol {eval_s:.0f} s "
        f"({len(args.seeds)} draws, {test_n} test sentences), "
        f"whole run {(time.perf_counter() - start) / 60:.1f} min, peak resident memory {peak:.2f} GiB, "
        f"load average {load:.1f}"
    )
    print(summary)
    print("\n".join(lines))
    if args.doc is not None:
        name = f"meta-{args.source}-{args.learner}-{args.frozen_layers}-{args.episodes}-{overlap}"
        start_mark, end_mark = markers(name)
        header = (
            "| encoder | learner | frozen layers | episodes | banking/credit-card domains in meta-training | head | K "
            f"| {target} accuracy |\n|---|---|---|---|---|---|---|---|"
        )
        write_doc("\n".join([start_mark, summary, "", header, *lines, end_mark]), args.doc, name)


if __name__ == "__main__":
    main()
