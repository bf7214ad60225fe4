"""Text readers on small generated files, including every bad input the loaders promise to name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metadl.data.text import TextDataError, banking77, clinc150, read_labelled_texts, text_folder

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_csv_and_jsonl_read_the_same_rows(tmp_path):
    csv = write(tmp_path / "a.csv", 'label,text\ngreet,"hi, there"\nleave,bye\n')
    jsonl = write(
        tmp_path / "a.jsonl", '{"text": "hi, there", "label": "greet"}\n\n{"text": "bye", "label": "leave"}\n'
    )
    for path in (csv, jsonl):
        ds = read_labelled_texts(path)
        assert ds.texts == ("hi, there", "bye")
        assert ds.label_names() == ["greet", "leave"]


def test_configurable_column_names(tmp_path):
    path = write(tmp_path / "a.csv", "utterance,intent\nhello,greet\n")
    ds = read_labelled_texts(path, text_column="utterance", label_column="intent")
    assert ds.texts == ("hello",) and ds.class_names == ("greet",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,label\n,greet\n", "line 2: missing or empty 'text'"),
        ("text,label\n   ,greet\n", "line 2: the text is only whitespace"),
        ("sentence,label\nhi,greet\n", "missing column 'text'"),
        ("text,label\nhi,\n", "line 2: missing or empty 'label'"),
        ("text,label\n", "has no rows"),
        (b"text,label\nhi,greet\ncaf\xe9,order\n", "line 3: byte 0xe9 is not UTF-8"),
    ],
)
def test_bad_csv_inputs_name_the_line_and_the_fix(tmp_path, content, message):
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(TextDataError, match=message):
        read_labelled_texts(path)


def test_bad_jsonl_and_unknown_extension(tmp_path):
    with pytest.raises(TextDataError, match="line 2: not valid JSON"):
        read_labelled_texts(write(tmp_path / "a.jsonl", '{"text": "a", "label": "x"}\n{oops\n'))
    with pytest.raises(TextDataError, match=r"expected a \.csv or \.jsonl"):
        read_labelled_texts(write(tmp_path / "a.txt", "hello"))
    with pytest.raises(TextDataError, match="does not exist"):
        read_labelled_texts(tmp_path / "missing.csv")


def test_require_names_the_label_with_too_few_examples(tmp_path):
    ds = read_labelled_texts(write(tmp_path / "a.csv", "text,label\na,x\nb,x\nc,y\n"))
    ds.require(1)
    with pytest.raises(TextDataError, match="label 'y' has 1 examples but k_shot \\+ n_query = 2"):
        ds.require(2)


def test_text_folder_one_example_per_line(tmp_path):
    write((tmp_path / "greet").mkdir() or tmp_path / "greet" / "a.txt", "hello\n\nhi there\n")
    write((tmp_path / "leave").mkdir() or tmp_path / "leave" / "b.txt", "bye\n")
    ds = read_labelled_texts(tmp_path)
    assert ds.texts == ("hello", "hi there", "bye") and ds.label_names() == ["greet", "greet", "leave"]
    with pytest.raises(TextDataError, match="holds no examples"):
        text_folder(tmp_path / "greet")


def fake_clinc(root: Path) -> Path:
    data = {
        "train": [
            ["check my balance", "balance"],
            ["how much money", "balance"],
            ["play jazz", "play_music"],
        ],
        "val": [["balance please", "balance"]],
        "test": [["money left?", "balance"], ["some rock", "play_music"]],
        "oos_train": [["what is love", "oos"]],
        "oos_val": [["tell a joke", "oos"]],
        "oos_test": [["who won", "oos"], ["weather on mars", "oos"]],
    }
    write(root / "data_full.json", json.dumps(data))
    write(root / "domains.json", json.dumps({"banking": ["balance"], "music": ["play_music"]}))
    return root


def test_clinc150_splits_domains_and_out_of_scope(tmp_path):
    root = fake_clinc(tmp_path)
    assert clinc150(root, "train").class_names == ("balance", "play_music")
    test = clinc150(root, "test", oos=True)
    assert len(test) == 4 and "oos" in test.class_names
    banking = clinc150(root, "train", domains=["banking"])
    assert banking.class_names == ("balance",) and len(banking) == 2
    with pytest.raises(TextDataError, match="unknown domains"):
        clinc150(root, domains=["travel"])
    with pytest.raises(TextDataError, match="split='dev'"):
        clinc150(root, "dev")
    write(root / "data_full.json", json.dumps({"train": [["only text"]]}))
    with pytest.raises(TextDataError, match="not \\[text, intent\\]"):
        clinc150(root)
    with pytest.raises(TextDataError, match="not found"):
        clinc150(tmp_path / "nowhere")


def test_banking77_reads_the_category_column(tmp_path):
    write(tmp_path / "train.csv", "text,category\nwhere is my card,card_arrival\nfreeze it,card_freeze\n")
    ds = banking77(tmp_path)
    assert ds.class_names == ("card_arrival", "card_freeze") and ds.name == "banking77/train"


@pytest.mark.skipif(not (SHARED / "clinc150").is_dir(), reason="real CLINC150 not in ../shared/data")
def test_real_clinc150_counts():
    assert len(clinc150(SHARED / "clinc150", "test")) == 4500
    assert clinc150(SHARED / "clinc150", "val", oos=True).class_counts.tolist().count(20) == 150


@pytest.mark.skipif(not (SHARED / "banking77").is_dir(), reason="real BANKING77 not in ../shared/data")
def test_real_banking77_counts():
    test = banking77(SHARED / "banking77", "test")
    assert len(test.class_names) == 77 and test.class_counts.eq(40).all()
