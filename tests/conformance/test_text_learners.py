"""Every registered learner learns a tiny synthetic text problem through a text encoder trained from scratch.

Sentences are a class keyword among filler words, written to a CSV and read by the ``task_files``
source (``x`` = index column into ``source.texts``); a :class:`TokenEncoder` turns the texts into integer
token ids once and :func:`gather_inputs` makes each batch an index gather, as for any text task. Each
learner meta-trains on a GRU from scratch; its query loss on fixed held-out tasks must drop and its
accuracy must beat chance. A learner that is not meta-trainable (a random forest) is checked on the
adapted predictions only.
"""

from __future__ import annotations

import random

import pytest
import torch

from metadl.algorithms import create_learner, list_learners
from metadl.apps.text import gather_inputs
from metadl.models import create_backbone
from metadl.models.text import TokenEncoder
from metadl.tasks import create_task_source
from metadl.training.meta import meta_step

N_WAY, K_SHOT, N_QUERY = 3, 2, 3
KEYWORDS = ["flight", "balance", "jazz", "pizza", "weather", "alarm", "taxi", "refund"]
FILLER = ["please", "can", "you", "the", "my", "now", "a", "i", "want", "to", "tell", "me", "about"]
# The ANP at its default width (128, 8 heads) does not settle in 40 steps of lr 1e-2 on this tiny
# problem (accuracy 0.39 measured); at width 32 it does (0.79). Reptile at its default inner_lr 0.1 moves
# slowly here (held-out loss 1.04 -> 0.95, accuracy 0.53 in 40 steps); at 0.3 it reaches 0.80.
EXTRA_KWARGS = {"svm": {"max_iter": 200}, "anp": {"hidden": 32, "heads": 4}, "reptile": {"inner_lr": 0.3}}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def text_tasks(tmp_path_factory):
    rng = random.Random(0)
    rows = ["text,label"]
    for word in KEYWORDS:
        for _ in range(10):
            words = rng.sample(FILLER, 3)
            words.insert(rng.randrange(4), word)
            rows.append(f"{' '.join(words)},{word}")
    root = tmp_path_factory.mktemp("texts")
    (root / "intents.csv").write_text("\n".join(rows) + "\n")
    source = create_task_source("task_files", root=root, n_way=N_WAY, k_shot=K_SHOT, n_query=N_QUERY, seed=0)
    # Whole-word ids, as when the thresholds above were measured. BPE segments these frequent words the
    # same way (one token each) but with a larger embedding table, i.e. another random initialisation, on
    # which FOMAML/Meta-SGD at 40 steps reach 0.53-0.72 (word ids: 0.64-0.85; 4 seeds each), at the bar
    # of 0.53: learning from BPE ids is tested below with ProtoNet.
    encoder = TokenEncoder(texts=source.texts, tokenizer="word")
    inputs = encoder.encode(source.texts)  # (N, L) int64, once
    held_out = gather_inputs(source.sample_batch(16), inputs)
    return source, encoder, inputs, held_out, source.state_dict()


def build(name: str, encoder: TokenEncoder) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = encoder.backbone_spec("gru", embed_dim=16, hidden_size=16)
    spec.pop("name")
    return create_learner(
        name, backbone=create_backbone("gru", **spec), n_way=N_WAY, **EXTRA_KWARGS.get(name, {})
    )


@pytest.mark.parametrize("name", list_learners())
def test_learner_learns_tiny_text_problem_on_token_ids(name, text_tasks):
    source, encoder, inputs, held_out, start = text_tasks
    source.load_state_dict(start)  # every learner sees the same training tasks, whichever tests ran before
    net = build(name, encoder)
    assert held_out.support_x.dtype == torch.long  # token ids, not floats, reach the backbone
    if not net.capabilities.meta_trainable:
        predictor = net.adapt(held_out.support_x[0], held_out.support_y[0])
        assert predictor.predict(held_out.query_x[0]).shape == (N_WAY * N_QUERY,)
        return
    net.eval()
    with torch.no_grad():
        before = net(held_out).loss.item()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(40):
        meta_step(net, gather_inputs(source.sample_batch(4), inputs), optimizer)
    net.eval()
    with torch.no_grad():
        out = net(held_out)
    assert out.loss.item() < before, f"{name}: held-out loss {before:.3f} -> {out.loss.item():.3f}"
    assert out.accuracy is not None and out.accuracy > 1 / N_WAY + 0.2, f"{name}: accuracy {out.accuracy:.2f}"


def test_protonet_learns_from_bpe_subword_ids(text_tasks):
    source, _, _, _, start = text_tasks
    source.load_state_dict(start)
    encoder = TokenEncoder(texts=source.texts)  # BPE, the default
    inputs = encoder.encode(source.texts)
    held_out = gather_inputs(source.sample_batch(16), inputs)
    net = build("protonet", encoder)
    net.eval()
    with torch.no_grad():
        before = net(held_out).loss.item()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(40):
        meta_step(net, gather_inputs(source.sample_batch(4), inputs), optimizer)
    net.eval()
    with torch.no_grad():
        out = net(held_out)
    assert out.loss.item() < before and out.accuracy is not None and out.accuracy > 1 / N_WAY + 0.2
