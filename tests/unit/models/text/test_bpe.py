"""The BPE tokenizer: hand-computed merges, a brute-force reference trainer, HF ``tokenizers`` where the
definitions coincide, round trips, the vocabulary bound, determinism, saving and refusing bad files."""

from __future__ import annotations

import json
import random
from collections import Counter
from itertools import pairwise

import pytest
import torch

from metadl.apps.text.model import TextModel
from metadl.apps.text.predict import load_text_model, save_text_model
from metadl.cli import main
from metadl.models import create_backbone
from metadl.models.text import (
    BPETokenizer,
    TokenEncoder,
    TokenizerError,
    create_text_encoder,
    fit_tokenizer,
    list_tokenizers,
)
from metadl.models.text import bpe as bpe_module
from metadl.models.text.bpe import pre_tokenize

CLASSIC = ["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3


def test_classic_example_merges_by_hand():
    # Counts: low 5, lower 2, newest 6, widest 3; symbols l o w</w> | l o w e r</w> | n e w e s t</w> | ...
    # Ids: d e i l n o s w (3..10), then r</w> t</w> w</w> (11..13), then new symbols in merge order.
    # 1. (e,s)=9 ties (s,t</w>)=9: e is older than s.  2. (es,t</w>)=9.  3. (l,o)=7.
    # 4. (n,e), (e,w), (w,est</w>) all 6: e is the oldest left symbol.  5. (n,ew)=6 ties (ew,est</w>): n.
    # 6. (new,est</w>)=6.  7. (lo,w</w>)=5.  8. (w,i), (i,d), (d,est</w>) all 3: d (3) is the oldest.
    # 9. (i,dest</w>)=3 ties (w,i): i.  10. (w,idest</w>)=3.  11. (lo,w), (w,e), (e,r</w>) all 2: e.
    # 12. (w,er</w>)=2 ties (lo,w): w (10) is older than lo (16).  13. (lo,wer</w>)=2; then all pairs occur once.
    tok = BPETokenizer.fit(CLASSIC, max_vocab=100)
    assert tok.merges == [
        ("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w"), ("n", "ew"), ("new", "est</w>"),
        ("lo", "w</w>"), ("d", "est</w>"), ("i", "dest</w>"), ("w", "idest</w>"), ("e", "r</w>"),
        ("w", "er</w>"), ("lo", "wer</w>"),
    ]  # fmt: skip
    assert tok.alphabet == ("d", "e", "i", "l", "n", "o", "s", "w", "r</w>", "t</w>", "w</w>")
    assert tok.tokens("lowest") == ["lo", "w", "est</w>"]  # a new word in known pieces
    assert tok.tokens("newest lower") == ["newest</w>", "lower</w>"]
    assert tok.vocab_size == 3 + 11 + 13
    assert BPETokenizer.fit(CLASSIC, max_vocab=3 + 11 + 4).merges == tok.merges[:4]  # the bound stops it


def reference_merges(texts: list[str], new_symbols: int, min_frequency: int) -> list[tuple[str, str]]:
    """Brute force: recount every pair of every word after each merge; ties to the oldest symbols."""
    counts = Counter(w for t in texts for w in pre_tokenize(t))
    words = {w: [*w[:-1], w[-1] + "</w>"] for w in counts}
    symbols = sorted({s for w in words.values() for s in w}, key=lambda s: (s.endswith("</w>"), s))
    ids = {s: i for i, s in enumerate(symbols)}
    merges: list[tuple[str, str]] = []
    while new_symbols > 0:
        pairs: Counter[tuple[str, str]] = Counter()
        for w, symbols in words.items():
            for pair in pairwise(symbols):
                pairs[pair] += counts[w]
        if not pairs or max(pairs.values()) < min_frequency:
            break
        best = min(pairs, key=lambda p: (-pairs[p], ids[p[0]], ids[p[1]]))
        merges.append(best)
        if best[0] + best[1] not in ids:
            ids[best[0] + best[1]] = len(ids)
            new_symbols -= 1
        for w, symbols in words.items():
            out, i = [], 0
            while i < len(symbols):
                if symbols[i : i + 2] == list(best):
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            words[w] = out
    return merges


@pytest.mark.parametrize("seed", range(6))
def test_incremental_training_equals_brute_force(seed):
    rng = random.Random(seed)
    # a three-letter alphabet: many ties and overlapping pairs ("aaaa"), the hard cases of incremental counts
    vocabulary = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 7))) for _ in range(30)]
    texts = [" ".join(rng.choices(vocabulary, k=rng.randint(1, 6))) for _ in range(60)]
    for max_vocab, min_frequency in ((1000, 2), (1000, 1), (12, 2)):
        tok = BPETokenizer.fit(texts, max_vocab=max_vocab, min_frequency=min_frequency)
        expected = reference_merges(texts, max_vocab - 3 - len(tok.alphabet), min_frequency)
        assert tok.merges == expected


def test_training_words_encode_as_training_segmented_them():
    rng = random.Random(0)
    texts = [" ".join(rng.choices(["abab", "aab", "bba", "abba", "b"], k=4)) for _ in range(30)]
    tok = BPETokenizer.fit(texts, max_vocab=14)
    words = {w: [*w[:-1], w[-1] + "</w>"] for t in texts for w in pre_tokenize(t)}
    for merge in tok.merges:  # replay training's merges on every word
        words = {w: bpe_module.merge_pair(s, merge) for w, s in words.items()}
    assert all(tok.tokens(w) == s for w, s in words.items())


def hf_merges(texts: list[str]) -> list[tuple[str, ...]]:
    """HF ``tokenizers``' BpeTrainer with ``end_of_word_suffix="</w>"``, NFKC + lower-case and our word split."""
    hf = pytest.importorskip("tokenizers")
    model = hf.Tokenizer(hf.models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"))
    model.normalizer = hf.normalizers.Sequence([hf.normalizers.NFKC(), hf.normalizers.Lowercase()])
    model.pre_tokenizer = hf.pre_tokenizers.Split(hf.Regex(r"\w+|[^\w\s]"), behavior="removed", invert=True)
    trainer = hf.trainers.BpeTrainer(
        vocab_size=1000, min_frequency=2, end_of_word_suffix="</w>", show_progress=False
    )
    model.train_from_iterator(texts, trainer)
    merges = json.loads(model.to_str())["model"]["merges"]
    return [tuple(m.split(" ") if isinstance(m, str) else m) for m in merges]


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_hf_tokenizers_where_the_definitions_coincide(seed):
    """Both count pairs the same way and break ties by the lowest (id(left), id(right)) with characters
    numbered in code-point order and new symbols in merge order; HF numbers the word-final symbols in
    hash-map order, so the definitions coincide when every word ends in the same character (here 's').
    Three letters and repeated words: ties at most steps, so the tie rule is what is compared."""
    rng = random.Random(seed)
    words = ["".join(rng.choices("abct", k=rng.randint(1, 5))) + "s" for _ in range(25)]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 5))) for _ in range(80)]
    ours = BPETokenizer.fit(texts, max_vocab=1000, min_frequency=2)
    assert len(ours.merges) > 10 and ours.merges == hf_merges(texts)


def test_round_trip_normalisation_and_unknown_characters():
    texts = ["Book a flight to Paris, please!", "what's my balance?", "ＦＬＩＧＨＴ prices"]
    tok = BPETokenizer.fit(texts * 3, max_vocab=200, max_length=64)
    for text in texts:
        assert tok.decode(tok.encode([text])[0].tolist()) == " ".join(pre_tokenize(text))
    assert tok.tokens("ＦＬＩＧＨＴ") == tok.tokens("flight")  # NFKC, then lower-case
    unknown = tok.encode(["flight ✈ paris"])[0].tolist()
    assert unknown.count(1) == 1 and tok.decode(unknown) == "flight [UNK] paris"
    # 'g' is known only inside words: a word ending in it keeps its pieces and takes a separate </w>
    assert "g</w>" not in tok.vocab and tok.tokens("flig")[-1] == "</w>" and 1 not in tok.encode(["flig"])[0]
    assert tok.decode(tok.encode(["flig now"])[0].tolist()) == "flig now"
    empty = tok.encode(["", "..."])
    assert empty[0].tolist()[0] == 1 and empty.dtype == torch.long


def test_vocabulary_bound_and_length_bound():
    rng = random.Random(1)
    texts = [
        " ".join("".join(rng.choices("abcdefghij", k=rng.randint(2, 8))) for _ in range(6))
        for _ in range(200)
    ]
    for max_vocab in (4, 10, 25, 60, 400):
        tok = BPETokenizer.fit(texts, max_vocab=max_vocab)
        assert tok.vocab_size <= max_vocab
    assert BPETokenizer.fit(texts, max_vocab=60).vocab_size == 60  # a rich corpus fills the bound
    small = BPETokenizer.fit(texts, max_vocab=8)  # room for 5 of the 20 symbols: the most frequent ones
    assert small.vocab_size == 8 and small.merges == []
    assert (small.encode(texts) == 1).any()  # the others are unknown
    assert BPETokenizer.fit(texts, max_length=5).encode(texts).shape == (200, 5)
    with pytest.raises(TokenizerError, match="max_vocab=3 must be in"):
        BPETokenizer.fit(texts, max_vocab=3)


def test_deterministic_and_independent_of_text_order():
    rng = random.Random(2)
    texts = [" ".join(rng.choices(["cat", "cart", "card", "care", "scare", "scar"], k=5)) for _ in range(50)]
    first = BPETokenizer.fit(texts, max_vocab=40)
    shuffled = texts[:]
    random.Random(3).shuffle(shuffled)
    assert BPETokenizer.fit(shuffled, max_vocab=40).to_dict() == first.to_dict()


def test_save_load_identity(tmp_path):
    texts = ["book a flight to rome", "flight to paris", "my balance please", "balance of my account"]
    tok = BPETokenizer.fit(texts, max_vocab=60)
    tok.save(tmp_path / "tok.json")
    loaded = BPETokenizer.load(tmp_path / "tok.json")
    assert loaded.vocab == tok.vocab and loaded.merges == tok.merges
    assert loaded.encode(texts).equal(tok.encode(texts))
    enc = TokenEncoder(texts=texts)
    assert enc.config()["tokenizer"] == "bpe"
    again = create_text_encoder(**json.loads(json.dumps(enc.config())))
    assert again.encode(texts + ["flights"]).equal(enc.encode(texts + ["flights"]))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "tokenizer file .*tok.json: Expecting property name"),
        ('{"kind": "bpe"}', "holds the keys"),
        ("[1, 2]", "holds the keys"),
        (
            '{"kind": "bpe", "normalization": "nfkc+lowercase", "alphabet": ["a", "b</w>"], '
            '"merges": [["a", "zz"]], "max_length": 8}',
            "merge 0 \\('a', 'zz'\\) joins an unknown symbol",
        ),
        (
            '{"kind": "bpe", "normalization": "nfkc+lowercase", "alphabet": ["a", "b"], '
            '"merges": [["a", "b"], ["a", "b"]], "max_length": 8}',
            "merge 1 \\('a', 'b'\\) is listed twice",
        ),
        (
            '{"kind": "bpe", "normalization": "nfkc+lowercase", "alphabet": ["a</w>", "b"], '
            '"merges": [["a</w>", "b"]], "max_length": 8}',
            "follows a word's end",
        ),
        (
            '{"kind": "bpe", "normalization": "nfkc+lowercase", "alphabet": ["ab"], "merges": [], "max_length": 8}',
            "is not one new character",
        ),
        (
            '{"kind": "bpe", "normalization": "nfkc+lowercase", "alphabet": [], "merges": [], "max_length": 1e9}',
            "max_length must be an integer",
        ),
        (
            '{"kind": "word", "normalization": "nfkc+lowercase", "alphabet": [], "merges": [], "max_length": 8}',
            "not a metadl BPE tokenizer",
        ),
    ],
)
def test_bad_tokenizer_files_are_refused_with_one_line(tmp_path, content, message):
    (tmp_path / "tok.json").write_text(content)
    with pytest.raises(TokenizerError, match=message) as err:
        BPETokenizer.load(tmp_path / "tok.json")
    assert "\n" not in str(err.value)


def test_oversized_tokenizer_file_is_refused_before_parsing(tmp_path, monkeypatch):
    BPETokenizer.fit(["aa bb aa bb"]).save(tmp_path / "tok.json")
    monkeypatch.setattr(bpe_module, "MAX_FILE_BYTES", 50)
    with pytest.raises(TokenizerError, match="more than the 50 a metadl JSON file may have"):
        BPETokenizer.load(tmp_path / "tok.json")


def test_a_saved_model_with_a_tampered_tokenizer_is_refused(tmp_path, capsys):
    texts = ["book a flight", "flight to rome", "my balance", "balance please"]
    torch.manual_seed(0)
    model = TextModel.build(TokenEncoder(texts=texts), "protonet", backbone="gru", hidden_size=8, embed_dim=8)
    folder = save_text_model(tmp_path / "model", model)
    assert load_text_model(folder).encoder.encode(texts).equal(model.encoder.encode(texts))
    doc = json.loads((folder / "metadl.json").read_text())
    doc["metadata"]["text_encoder"]["merges"].append(["zz", "top"])
    (folder / "metadl.json").write_text(json.dumps(doc))
    (tmp_path / "s.csv").write_text("text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(texts)))
    (tmp_path / "q.csv").write_text("text\nflight\n")
    code = main(
        ["predict", str(folder), "--support", str(tmp_path / "s.csv"), "--query", str(tmp_path / "q.csv")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "joins an unknown symbol" in err and len(err.splitlines()) == 1


def test_subword_ids_reach_the_lstm():
    enc = TokenEncoder(texts=["rebook my flight", "book a flight", "booking flights"] * 2)
    spec = enc.backbone_spec("lstm", embed_dim=8, hidden_size=8)
    net = create_backbone(spec.pop("name"), **spec)
    seen: list[torch.Tensor] = []
    embedding = next(m for m in net.modules() if isinstance(m, torch.nn.Embedding))
    embedding.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    ids = enc.encode(["rebooking", "flight"])  # a new word in known pieces: no [UNK]
    assert 1 not in ids[0].tolist() and len(enc.tokenizer.tokens("rebooking")) > 1
    assert net(ids).shape == (2, net.out_features)
    assert seen[0].dtype == torch.long and seen[0].equal(ids)


@pytest.mark.parametrize("name", list_tokenizers())
def test_every_tokenizer_keeps_the_contract(name):
    """The registry's conformance: int64 ids, 0 padding, 1 unknown, the bounds, a saved form that rebuilds it."""
    texts = ["Book a flight to Rome", "flight to Paris please", "my balance please", "balance of my account"]
    tok = fit_tokenizer(name, texts, max_vocab=30, max_length=6)
    assert tok.kind == name and tok.vocab[:2] == ("[PAD]", "[UNK]") and tok.vocab_size <= 30
    ids = tok.encode([*texts, "", "zzz qqq"])
    assert ids.dtype == torch.long and ids.shape[0] == 6 and ids.shape[1] <= 6
    assert ids[4, 0] == 1 and (ids[4, 1:] == 0).all() and ids[5, 0] == 1  # one [UNK], then padding
    enc = TokenEncoder(texts=texts, tokenizer=name, max_vocab=30, max_length=6)
    assert enc.config()["tokenizer"] == name
    again = create_text_encoder(**json.loads(json.dumps(enc.config())))
    assert again.encode(texts).equal(enc.encode(texts)) and again.config() == enc.config()
    with pytest.raises(TokenizerError, match="unknown tokenizer 'sentencepiece'"):
        fit_tokenizer("sentencepiece", texts)


def test_models_saved_before_bpe_load_as_word_tokenizers():
    old = {
        "name": "tokens",
        "vocab": ["[PAD]", "[UNK]", "hi", "there"],
        "max_length": 4,
    }  # no "tokenizer" key
    enc = create_text_encoder(**old)
    assert enc.encode(["hi there you"]).tolist() == [[2, 3, 1]] and enc.config()["tokenizer"] == "word"
    with pytest.raises(ValueError, match="tokenizer='bpe' but the saved tokenizer is a word tokenizer"):
        create_text_encoder(**old, tokenizer="bpe")
