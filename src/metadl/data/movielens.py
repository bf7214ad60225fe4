"""MovieLens 100K and 1M (GroupLens formats), RecBole atomic files, and the official zips.

User features (all categorical): ``age`` (ML-1M's brackets 1/18/25/35/45/50/56; ML-100K's exact ages
are put into the same brackets), ``gender``, ``occupation``, ``zip`` (first digit of the zip code).
Item features: ``decade`` of release (categorical) and the ``genres`` (multi-hot).

Readers take the extracted folder: ``u.data``, ``u.user``, ``u.item`` (100K, ``|``/tab separated,
latin-1), ``ratings.dat``, ``users.dat``, ``movies.dat`` (1M, ``::`` separated, latin-1), or
``<name>.inter``/``.user``/``.item`` (RecBole atomic files: tab separated, a ``field:type`` header;
RecBole's ML-100K lives in the wheel of ``recbole==1.2.1`` under ``recbole/dataset_example/ml-100k``).

MovieLens may not be redistributed: :func:`fetch_movielens` downloads the official GroupLens zip into a
folder you choose (or uses a zip already there), checks it, and unpacks it with the bounded, zip-slip
safe :func:`metadl.data.download.safe_extract_zip`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from metadl.data.download import ChecksumError, download_url, safe_extract_zip, sha256sum
from metadl.data.ratings import (
    Features,
    RatingRow,
    Ratings,
    RatingsFormatError,
    assemble,
    lines,
    number,
    split_fields,
)

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
USER_COLUMNS = ("age", "gender", "occupation", "zip")
_AGE_BRACKETS = (1, 18, 25, 35, 45, 50, 56)
_YEAR = re.compile(r"(1[89]\d\d|20\d\d)")


@dataclass(frozen=True)
class MovieLensZip:
    """An official GroupLens archive: where it is, its checksums, the folder it unpacks to."""

    url: str
    md5: str  # published by GroupLens next to the zip (``<zip>.md5``)
    folder: str
    sha256: str | None = None  # not pinned yet: no copy was reachable when this was written


MOVIELENS_ZIPS = {
    "ml-100k": MovieLensZip(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "0e33842e24a9c977be4e0107933c0723",
        "ml-100k",
    ),
    "ml-1m": MovieLensZip(
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "c4d9eecfca2ab87c1945afe126590906",
        "ml-1m",
    ),
}


def age_bracket(age: str, where: str) -> str:
    """ML-1M's age bracket (its lower bound, as a string) of an age in years.

    Example:
        >>> age_bracket("24", "u.user:1"), age_bracket("17", "u.user:2"), age_bracket("61", "u.user:3")
        ('18', '1', '56')
    """
    years = number(age, "age", where)
    return str(max(b for b in _AGE_BRACKETS if b <= max(years, 1)))


def decade(text: str) -> str:
    """``"1990s"`` for a text holding a year (a date, a title ``"Heat (1995)"``), else ``""`` (unknown)."""
    found = _YEAR.findall(text)
    return f"{found[-1][:3]}0s" if found else ""


def _user_row(age: str, gender: str, occupation: str, zip_code: str) -> dict[str, str]:
    return {"age": age, "gender": gender, "occupation": occupation, "zip": zip_code.strip()[:1]}


def read_movielens_100k(folder: str | Path) -> Ratings:
    """ML-100K from its extracted folder (``u.data``, ``u.user``, ``u.item``)."""
    folder = Path(folder)
    users: dict[str, dict[str, str]] = {}
    for at, line in lines(folder / "u.user", "latin-1"):
        where = f"{folder / 'u.user'}:{at}"
        uid, age, gender, occupation, zip_code = split_fields(line, "|", 5, where)
        users[uid] = _user_row(age_bracket(age, where), gender, occupation, zip_code)
    items: dict[str, dict[str, str]] = {}
    genres: dict[str, list[str]] = {}
    for at, line in lines(folder / "u.item", "latin-1"):
        where = f"{folder / 'u.item'}:{at}"
        fields = split_fields(line, "|", 5 + len(ML100K_GENRES), where)
        flags = fields[5:]
        if any(f not in ("0", "1") for f in flags):
            raise RatingsFormatError(f"{where}: genre flags must be 0 or 1, got {flags}")
        items[fields[0]] = {"decade": decade(fields[2])}
        genres[fields[0]] = [g for g, f in zip(ML100K_GENRES, flags, strict=True) if f == "1"]
    rows: list[RatingRow] = []
    for at, line in lines(folder / "u.data", "latin-1"):
        where = f"{folder / 'u.data'}:{at}"
        user, item, rating, time = split_fields(line, "\t", 4, where)
        rows.append(
            RatingRow(user, item, number(rating, "rating", where), number(time, "timestamp", where), where)
        )
    return _with_features(rows, users, items, genres)


def read_movielens_1m(folder: str | Path) -> Ratings:
    """ML-1M from its extracted folder (``ratings.dat``, ``users.dat``, ``movies.dat``).

    ML-1M is not available offline here: this reader is tested on generated files only.
    """
    folder = Path(folder)
    users: dict[str, dict[str, str]] = {}
    for at, line in lines(folder / "users.dat", "latin-1"):
        where = f"{folder / 'users.dat'}:{at}"
        uid, gender, age, occupation, zip_code = split_fields(line, "::", 5, where)
        users[uid] = _user_row(age_bracket(age, where), gender, occupation, zip_code)
    items: dict[str, dict[str, str]] = {}
    genres: dict[str, list[str]] = {}
    for at, line in lines(folder / "movies.dat", "latin-1"):
        where = f"{folder / 'movies.dat'}:{at}"
        mid, title, tags = split_fields(line, "::", 3, where)
        items[mid] = {"decade": decade(title)}
        genres[mid] = [g for g in tags.split("|") if g]
    rows: list[RatingRow] = []
    for at, line in lines(folder / "ratings.dat", "latin-1"):
        where = f"{folder / 'ratings.dat'}:{at}"
        user, item, rating, time = split_fields(line, "::", 4, where)
        rows.append(
            RatingRow(user, item, number(rating, "rating", where), number(time, "timestamp", where), where)
        )
    return _with_features(rows, users, items, genres)


def _atomic(path: Path) -> list[tuple[str, dict[str, str]]]:
    """``(where, {field: value})`` rows of a RecBole atomic file (header fields ``name:type``)."""
    numbered = list(lines(path))
    if not numbered:
        raise RatingsFormatError(f"{path} is empty; a RecBole atomic file starts with a 'field:type' header")
    header = [h.split(":")[0] for h in numbered[0][1].split("\t")]
    out = []
    for at, line in numbered[1:]:
        fields = split_fields(line, "\t", len(header), f"{path}:{at}")
        out.append((f"{path}:{at}", dict(zip(header, fields, strict=True))))
    return out


def read_recbole_atomic(folder: str | Path, name: str) -> Ratings:
    """Ratings from RecBole atomic files ``<name>.inter`` (``user_id``, ``item_id``, ``rating``,
    ``timestamp``) with the optional ``<name>.user`` (``age``, ``gender``, ``occupation``, ``zip_code``)
    and ``<name>.item`` (``release_year``, ``class``: space-separated genres)."""
    folder = Path(folder)
    rows: list[RatingRow] = []
    for where, r in _atomic(folder / f"{name}.inter"):
        for field in ("user_id", "item_id", "rating"):
            if field not in r:
                raise RatingsFormatError(
                    f"{where}: no {field!r} field; RecBole .inter files need user_id, item_id, rating"
                )
        time = number(r["timestamp"], "timestamp", where) if "timestamp" in r else float(len(rows))
        rows.append(RatingRow(r["user_id"], r["item_id"], number(r["rating"], "rating", where), time, where))
    users: dict[str, dict[str, str]] = {}
    if (folder / f"{name}.user").is_file():
        for where, r in _atomic(folder / f"{name}.user"):
            age = age_bracket(r["age"], where) if r.get("age") else ""
            users[r["user_id"]] = _user_row(
                age, r.get("gender", ""), r.get("occupation", ""), r.get("zip_code", "")
            )
    items: dict[str, dict[str, str]] = {}
    genres: dict[str, list[str]] = {}
    if (folder / f"{name}.item").is_file():
        for _, r in _atomic(folder / f"{name}.item"):
            items[r["item_id"]] = {"decade": decade(r.get("release_year", ""))}
            genres[r["item_id"]] = r.get("class", "").split()
    return _with_features(rows, users, items, genres)


def _with_features(
    rows: list[RatingRow],
    users: dict[str, dict[str, str]],
    items: dict[str, dict[str, str]],
    genres: dict[str, list[str]],
) -> Ratings:
    base = assemble(rows)
    user_features = Features.build(base.user_ids, users, USER_COLUMNS)
    item_features = Features.build(base.item_ids, items, ("decade",), genres)
    return assemble(rows, user_features, item_features, base.user_ids, base.item_ids)


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_movielens(
    name: str, root: str | Path, *, sha256: str | None = None, download: bool = True, progress: bool = True
) -> Path:
    """The extracted folder of an official MovieLens zip under ``root``, downloading it if asked.

    A zip already in ``root`` (``ml-100k.zip``) is used as is. Checks: the sha256 (``sha256=``, or the
    pinned one) while downloading, then GroupLens's published MD5 for every zip. Unpacking is bounded
    and zip-slip safe. Returns ``root / "ml-100k"`` (or ``"ml-1m"``).
    """
    if name not in MOVIELENS_ZIPS:
        raise ValueError(f"unknown MovieLens archive {name!r}; choose one of {sorted(MOVIELENS_ZIPS)}")
    spec, root = MOVIELENS_ZIPS[name], Path(root)
    folder, archive = root / spec.folder, root / f"{spec.folder}.zip"
    if folder.is_dir():
        return folder
    if not archive.is_file():
        expected = sha256 or spec.sha256
        if not download:
            raise FileNotFoundError(
                f"{archive} is missing; download it from {spec.url} or pass download=True"
            )
        if expected is None:
            raise ValueError(
                f"no sha256 is pinned for {name}.zip (GroupLens publishes only its MD5, {spec.md5}); pass "
                f"sha256=... (sha256sum of a copy you trust), or put {archive.name} into {root}"
            )
        root.mkdir(parents=True, exist_ok=True)
        download_url(spec.url, archive, sha256=expected, progress=progress)
    elif sha256 is not None and sha256sum(archive) != sha256.lower():
        raise ChecksumError(f"{archive}: sha256 {sha256sum(archive)} is not the expected {sha256}")
    actual = md5sum(archive)
    if actual != spec.md5:
        raise ChecksumError(
            f"{archive}: MD5 {actual} is not GroupLens's published {spec.md5}; delete it and download again"
        )
    safe_extract_zip(archive, root)
    return folder
