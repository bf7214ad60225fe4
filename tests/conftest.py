"""Fixtures shared by the test suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``<repo>/../shared/data`` with the real datasets; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for tiny tensors: on a busy 2-core machine a second thread only waits for a
    descheduled peer (10-100x slower). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread_per_module() -> Iterator[None]:
    """As ``one_thread``, for a whole module whose module-scoped fixtures train tiny models (the
    recommendation tests: one of them took 65 s on two threads against 2.6 s on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def stand_in_characters():
    """Omniglot-shaped characters for the detection tests, no download: 30 background and 20 evaluation
    alphabets of 6 characters, each drawing a filled disc of random radius (ink 255)."""
    import numpy as np

    from metadl.data.omniglot import OmniglotCharacters

    rng = np.random.default_rng(0)
    names, sets = [], []
    for which, count in (("background", 30), ("evaluation", 20)):
        for a in range(count):
            for c in range(6):
                names.append(f"{which[:2]}{a:02d}/character{c + 1:02d}")
                sets.append(which)
    yy, xx = np.mgrid[:48, :48]
    radius = rng.integers(8, 22, size=(len(names), 20))
    images = ((yy - 24) ** 2 + (xx - 24) ** 2 < radius[..., None, None] ** 2).astype(np.uint8) * 255
    return OmniglotCharacters(images, tuple(names), tuple(sets))


@pytest.fixture(autouse=True)
def _experiment_db(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs that tests train or evaluate are recorded in a throw-away database, never in the user's."""
    monkeypatch.setenv("METADL_DB", str(tmp_path_factory.mktemp("db") / "experiments.sqlite"))


TINY_WORDS = tuple(
    [
        "the",
        "a",
        "my",
        "please",
        "now",
        "today",
        "card",
        "cash",
        "bank",
        "money",
        "music",
        "song",
        "play",
        "jazz",
        "rock",
        "film",
        "movie",
        "watch",
        "weather",
        "rain",
        "sun",
        "snow",
        "cold",
        "hot",
        "flight",
        "train",
        "trip",
        "book",
        "hotel",
        "room",
        "pizza",
        "food",
        "eat",
        "dinner",
    ]
)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers folder holding a random 3-block BERT of width 16 (mean pooling, normalised)
    over the word-piece vocabulary ``TINY_WORDS``: the MiniLM code paths without the 90 MB model.
    Skipped without ``metadl[text]``."""
    st = pytest.importorskip("sentence_transformers")
    st_modules = pytest.importorskip("sentence_transformers.sentence_transformer.modules")
    transformers = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("tiny_bert")
    hf = root / "hf"
    hf.mkdir()
    (hf / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]) + "\n"
    )
    tokenizer = transformers.BertTokenizerFast.from_pretrained(hf, do_lower_case=True)
    config = transformers.BertConfig(
        vocab_size=5 + len(TINY_WORDS),
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(hf, safe_serialization=True)
    tokenizer.save_pretrained(hf)
    modules = [
        st_modules.Transformer(str(hf), max_seq_length=32),
        st_modules.Pooling(16, "mean"),
        st_modules.Normalize(),
    ]
    st.SentenceTransformer(modules=modules, device="cpu").save(str(root / "model"))
    return root / "model"
