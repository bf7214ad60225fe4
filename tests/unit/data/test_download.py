"""download_url against a local HTTP server; safe_extract_zip against hostile archives."""

from __future__ import annotations

import hashlib
import http.server
import os
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from metadl.data.download import (
    ChecksumError,
    UnsafeArchiveError,
    download_url,
    safe_extract_zip,
    sha256sum,
)

PAYLOAD = os.urandom(3_000_000)  # several 1 MiB chunks


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).requests.append(self.path)
        if self.path == "/data.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/cut.bin":  # promises more than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
            self.close_connection = True
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


GOOD = hashlib.sha256(PAYLOAD).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part") or p.name.startswith("."))


def test_sha256sum_matches_hashlib(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(PAYLOAD)
    assert sha256sum(tmp_path / "f") == GOOD


def test_download_good_hash(server: str, tmp_path: Path) -> None:
    out = download_url(f"{server}/data.bin", tmp_path / "sub" / "data.bin", sha256=GOOD, progress=False)
    assert out == tmp_path / "sub" / "data.bin"
    assert out.read_bytes() == PAYLOAD
    assert _leftovers(out.parent) == []
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_download_into_folder_names_file_after_url(server: str, tmp_path: Path) -> None:
    out = download_url(f"{server}/data.bin", tmp_path, sha256=GOOD.upper(), progress=False)
    assert out == tmp_path / "data.bin" and out.read_bytes() == PAYLOAD


def test_existing_verified_file_is_not_downloaded_again(server: str, tmp_path: Path) -> None:
    download_url(f"{server}/data.bin", tmp_path / "d.bin", sha256=GOOD, progress=False)
    download_url(f"{server}/data.bin", tmp_path / "d.bin", sha256=GOOD, progress=False)
    assert _Handler.requests == ["/data.bin"]


def test_existing_wrong_file_is_replaced(server: str, tmp_path: Path) -> None:
    (tmp_path / "d.bin").write_bytes(b"stale")
    download_url(f"{server}/data.bin", tmp_path / "d.bin", sha256=GOOD, progress=False)
    assert (tmp_path / "d.bin").read_bytes() == PAYLOAD


def test_bad_hash_deletes_and_names_everything(server: str, tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        download_url(f"{server}/data.bin", tmp_path / "d.bin", sha256=wrong, progress=False)
    message = str(info.value)
    assert "d.bin" in message and wrong in message and GOOD in message
    assert list(tmp_path.iterdir()) == []


def test_cut_connection_leaves_nothing(server: str, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cut off|stopped"):
        download_url(f"{server}/cut.bin", tmp_path / "c.bin", sha256=GOOD, progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_http_error_names_url(server: str, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="missing.bin"):
        download_url(f"{server}/missing.bin", tmp_path / "m.bin", sha256=GOOD, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "sha", "match"),
    [("file:///etc/passwd", GOOD, "http"), ("http://127.0.0.1/x", "abc", "64 hex")],
)
def test_bad_arguments(url: str, sha: str, match: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=match):
        download_url(url, tmp_path / "x", sha256=sha, progress=False)


# ---- zips ---------------------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return path


def test_extracts_tree_and_skips_macosx(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "a.zip",
        {"top/a/x.txt": b"x", "top/y.txt": b"y", "__MACOSX/top/._y.txt": b"junk", "readme": b"r"},
    )
    out = safe_extract_zip(archive, tmp_path / "out")
    assert (out / "top" / "a" / "x.txt").read_bytes() == b"x"
    assert (out / "top" / "y.txt").read_bytes() == b"y"
    assert sorted(p.name for p in out.iterdir()) == ["readme", "top"]  # no __MACOSX, no temp folder


def test_extraction_is_idempotent_and_completes_partial_runs(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"one/x.txt": b"1", "two/y.txt": b"2"})
    out = tmp_path / "out"
    safe_extract_zip(archive, out)
    (out / "one" / "x.txt").write_bytes(b"kept")  # an existing top-level entry is left alone
    safe_extract_zip(archive, out)
    assert (out / "one" / "x.txt").read_bytes() == b"kept"
    import shutil

    shutil.rmtree(out / "two")  # as if a crash came between the two renames
    safe_extract_zip(archive, out)
    assert (out / "two" / "y.txt").read_bytes() == b"2"


@pytest.mark.parametrize(
    "evil",
    [
        "../evil.txt",
        "top/../../evil.txt",
        "/tmp/evil.txt",
        "C:/evil.txt",
        "c:evil.txt",
        "top\\..\\..\\evil.txt",
    ],
)
def test_zip_slip_is_rejected_before_writing(tmp_path: Path, evil: str) -> None:
    archive = _zip(tmp_path / "a.zip", {"good/ok.txt": b"ok", evil: b"pwned"})
    assert evil in zipfile.ZipFile(archive).namelist()  # the hostile name really is in the archive
    target = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError, match="member"):
        safe_extract_zip(archive, target)
    assert not target.exists()  # nothing written at all, not even the good member
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()


def test_symlink_member_is_rejected(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"good/ok.txt": b"ok"}, links=("good/link",))
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_a_zip_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.zip"):
        safe_extract_zip(tmp_path / "bad.zip", tmp_path / "out")


def test_stale_part_files_of_killed_downloads_are_removed_fresh_ones_kept(
    server: str, tmp_path: Path
) -> None:
    stale, fresh = tmp_path / ".data.bin.dead1.part", tmp_path / ".data.bin.live2.part"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"another process is writing this")
    os.utime(stale, (0, 0))
    download_url(f"{server}/data.bin", tmp_path / "data.bin", sha256=GOOD, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.bin.live2.part", "data.bin"]
