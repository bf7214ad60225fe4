"""Ratings readers on small generated files (MovieLens may not be redistributed: no real data here)."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from metadl.data import movielens
from metadl.data.download import ChecksumError
from metadl.data.movielens import (
    MovieLensZip,
    fetch_movielens,
    read_movielens_1m,
    read_movielens_100k,
    read_recbole_atomic,
)
from metadl.data.ratings import RatingsFormatError, read_ratings_csv

GENRE_FLAGS = "0|1|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0"  # Action, Comedy


def write_100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(
        "1\t10\t4\t881250949\n1\t20\t2\t881250950\n2\t10\t5\t881250951\n", "latin-1"
    )
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|T8H1N\n", "latin-1")
    (folder / "u.item").write_text(
        f"10|Toy Story (1995)|01-Jan-1995||http://x|{GENRE_FLAGS}\n"
        f"20|Caf\xe9 (1987)|01-Jan-1987||http://y|{GENRE_FLAGS.replace('0|1', '1|0', 1)}\n",
        "latin-1",
    )
    return folder


def test_movielens_100k_reads_ratings_and_features(tmp_path):
    r = read_movielens_100k(write_100k(tmp_path / "ml-100k"))
    assert (r.user_ids, r.item_ids) == (("1", "2"), ("10", "20"))
    assert r.rating.tolist() == [4.0, 2.0, 5.0] and r.time[0].item() == 881250949
    uf = r.user_features
    assert uf.columns == ("age", "gender", "occupation", "zip")
    assert uf.vocab[0] == ("18", "50")  # 24 -> bracket 18, 53 -> bracket 50
    assert uf.vocab[3] == ("8", "T")  # first character of the zip code
    assert r.item_features.vocab == (("1980s", "1990s"),)
    assert r.item_features.codes.flatten().tolist() == [2, 1]
    hot = dict(zip(r.item_features.tags, r.item_features.multi_hot[0].tolist(), strict=True))
    assert hot == {"Action": 1.0, "Comedy": 1.0, "unknown": 0.0}  # only genres some item has


def test_movielens_1m_reads_generated_files(tmp_path):
    (tmp_path / "ratings.dat").write_text(
        "1::1193::5::978300760\n2::1193::3::978300761\n2::661::4::978300762\n"
    )
    (tmp_path / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    (tmp_path / "movies.dat").write_text(
        "1193::Cuckoo's Nest (1975)::Drama\n661::Giant Peach (1996)::Animation|Musical\n"
    )
    r = read_movielens_1m(tmp_path)
    assert r.n_users == 2 and r.n_items == 2 and len(r) == 3
    assert r.user_features.vocab[0] == ("1", "56") and r.user_features.vocab[1] == ("F", "M")
    assert r.item_features.tags == ("Animation", "Drama", "Musical")
    assert r.item_features.multi_hot.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]


def test_recbole_atomic_files(tmp_path):
    (tmp_path / "d.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t1\t3\t5\n7\t2\t4\t6\n8\t1\t1\t7\n"
    )
    (tmp_path / "d.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n7\t30\tF\twriter\t02139\n"
    )
    (tmp_path / "d.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n1\tHeat\t1995\tAction Crime\n"
    )
    r = read_recbole_atomic(tmp_path, "d")
    assert r.user_ids == ("7", "8") and r.rating.tolist() == [3.0, 4.0, 1.0]
    assert r.user_features.codes.tolist() == [[1, 1, 1, 1], [0, 0, 0, 0]]  # user 8 has no features: unknown
    assert r.item_features.tags == ("Action", "Crime") and r.item_features.codes.flatten().tolist() == [1, 0]


def test_generic_csv_with_feature_tables_and_duplicate_pairs(tmp_path):
    (tmp_path / "r.csv").write_text("user,item,rating,timestamp\na,x,1,5\na,x,4,9\nb,y,2,1\n")
    (tmp_path / "users.csv").write_text("user,country\na,FR\nb,DE\n")
    (tmp_path / "items.csv").write_text("item,genres,studio\nx,Drama|War,A\n")
    r = read_ratings_csv(
        tmp_path / "r.csv", user_features=tmp_path / "users.csv", item_features=tmp_path / "items.csv"
    )
    assert len(r) == 2 and r.rating.tolist() == [4.0, 2.0]  # the pair (a, x) keeps its latest rating
    assert r.user_features.vocab == (("DE", "FR"),) and r.user_features.codes.flatten().tolist() == [2, 1]
    assert r.item_features.columns == ("studio",) and r.item_features.tags == ("Drama", "War")
    assert r.item_features.multi_hot.tolist() == [[1.0, 1.0], [0.0, 0.0]]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "u.data",
            "1\t10\t4\t881250949\n1\t20\tfour\t881250950\n",
            r"u\.data:2: rating 'four' is not a finite",
        ),
        ("u.data", "1\t10\t4\n", r"u\.data:1: expected 4 fields"),
        ("u.user", "1|24|M|technician\n", r"u\.user:1: expected 5 fields"),
        ("u.item", "10|T|01-Jan-1995||u|" + "2|" * 18 + "0\n", r"u\.item:1: genre flags must be 0 or 1"),
    ],
)
def test_malformed_movielens_lines_name_file_and_line(tmp_path, name, text, message):
    folder = write_100k(tmp_path)
    (folder / name).write_text(text)
    with pytest.raises(RatingsFormatError, match=message):
        read_movielens_100k(folder)


def test_malformed_csv_lines_name_file_and_line(tmp_path):
    (tmp_path / "r.csv").write_text("user,item,rating\na,x,1\n\nb,y,nan\n")
    with pytest.raises(RatingsFormatError, match=r"r\.csv:4: rating 'nan' is not a finite number"):
        read_ratings_csv(tmp_path / "r.csv")
    (tmp_path / "r.csv").write_text("user,item,rating\na,x\n")
    with pytest.raises(RatingsFormatError, match=r"r\.csv:2: 2 fields but the header has 3"):
        read_ratings_csv(tmp_path / "r.csv")
    (tmp_path / "r.csv").write_text("uid,item,rating\n")
    with pytest.raises(RatingsFormatError, match=r"r\.csv:1: the header .* has no 'user' column"):
        read_ratings_csv(tmp_path / "r.csv")
    with pytest.raises(RatingsFormatError, match="does not exist"):
        read_ratings_csv(tmp_path / "missing.csv")


# ---- the official zip: a local server stands in for GroupLens -------------------------------------------


def _zip_of(folder: Path, archive: Path) -> bytes:
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(folder.iterdir()):
            z.write(p, f"ml-100k/{p.name}")
    return archive.read_bytes()


@pytest.fixture
def served_zip(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    payload = _zip_of(write_100k(tmp_path / "src"), tmp_path / "payload.zip")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/ml-100k.zip", payload
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_fetch_downloads_checks_and_extracts(tmp_path, served_zip, monkeypatch):
    url, payload = served_zip
    spec = MovieLensZip(url, hashlib.md5(payload).hexdigest(), "ml-100k")
    monkeypatch.setitem(movielens.MOVIELENS_ZIPS, "ml-100k", spec)
    root = tmp_path / "data"
    with pytest.raises(ValueError, match="no sha256 is pinned for ml-100k.zip"):
        fetch_movielens("ml-100k", root, progress=False)
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        fetch_movielens("ml-100k", root, sha256="0" * 64, progress=False)
    folder = fetch_movielens("ml-100k", root, sha256=hashlib.sha256(payload).hexdigest(), progress=False)
    assert folder == root / "ml-100k" and len(read_movielens_100k(folder)) == 3


def test_fetch_refuses_a_local_zip_with_the_wrong_md5(tmp_path, served_zip):
    _, payload = served_zip
    (tmp_path / "ml-100k.zip").write_bytes(payload)  # not GroupLens's file: its MD5 differs
    with pytest.raises(ChecksumError, match="is not GroupLens's published 0e33842e"):
        fetch_movielens("ml-100k", tmp_path)
    assert not (tmp_path / "ml-100k").exists()
    with pytest.raises(ValueError, match="unknown MovieLens archive 'ml-20m'"):
        fetch_movielens("ml-20m", tmp_path)
