"""Downloading public corpora, against a real HTTP server on 127.0.0.1 serving a zip built here (nothing online)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from model.errors import DataError
from training import download
from training.download import SUMS_FILE, OpusCorpus, cached_opus, fetch_opus, opus_path, recorded_sums
from training.formats import read_pairs

DE = [f"Das ist Satz Nummer {n}." for n in range(200)]
EN = [f"This is sentence number {n}." for n in range(200)]
URL_PATH = "/OPUS-Tatoeba/v2023-04-12/moses/de-en.txt.zip"


def moses_zip(de: list[str], en: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README", "Tatoeba, as OPUS ships it")
        archive.writestr("Tatoeba.de-en.de", "".join(f"{line}\n" for line in de))
        archive.writestr("Tatoeba.de-en.en", "".join(f"{line}\n" for line in en))
    return buffer.getvalue()


ZIP = moses_zip(DE, EN)


@dataclass
class Site:
    """What the test server serves, and the Range header of every request it answered."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    ranges: list[str | None] = field(default_factory=list)
    honour_range: bool = True
    cut_after: int | None = None  # send only this many bytes of the body, then hang up (once)


class Handler(BaseHTTPRequestHandler):
    site: Site

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        site = self.server.site  # type: ignore[attr-defined]
        site.ranges.append(self.headers.get("Range"))
        body = site.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and site.honour_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if site.cut_after is not None:
            body, site.cut_after = body[: site.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture()
def site() -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.site = Site(url=f"http://127.0.0.1:{server.server_address[1]}", files={URL_PATH: ZIP})  # type: ignore
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.site  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_verify_record_and_read(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = fetch_opus("tatoeba", ("en", "de"), base_url=site.url, cache=tmp_path)
    assert path == opus_path("tatoeba", ("en", "de"), tmp_path) and path.read_bytes() == ZIP
    assert site.ranges == [None]
    assert recorded_sums(tmp_path) == {path.relative_to(tmp_path).as_posix(): hashlib.sha256(ZIP).hexdigest()}
    assert not path.with_name(path.name + ".part").exists()
    assert fetch_opus("tatoeba", ("de", "en"), base_url=site.url, cache=tmp_path) == path
    assert len(site.ranges) == 1  # verified from the cache, not fetched again
    monkeypatch.setenv("RNNMT_CACHE_DIR", str(tmp_path))
    assert list(read_pairs("opus:tatoeba", ("en", "de"))) == list(zip(EN, DE))


@pytest.mark.parametrize("honour_range", [True, False])
def test_resume_after_a_truncated_part(site: Site, tmp_path: Path, honour_range: bool) -> None:
    site.honour_range = honour_range
    dest = opus_path("tatoeba", ("de", "en"), tmp_path)
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(ZIP[: len(ZIP) // 2])
    assert fetch_opus("tatoeba", ("de", "en"), base_url=site.url, cache=tmp_path).read_bytes() == ZIP
    assert site.ranges == [f"bytes={len(ZIP) // 2}-"]  # asked to resume; a server that ignores it sends it all


def test_a_dropped_connection_keeps_the_part_for_the_next_run(site: Site, tmp_path: Path) -> None:
    site.cut_after = 1000
    with pytest.raises(DataError, match=r"failed: .*; the partial file .*\.part is kept: run again to resume"):
        fetch_opus("tatoeba", ("de", "en"), base_url=site.url, cache=tmp_path)
    assert fetch_opus("tatoeba", ("de", "en"), base_url=site.url, cache=tmp_path).read_bytes() == ZIP
    assert site.ranges == [None, "bytes=1000-"]


def test_whole_part_left_before_the_rename_is_kept(site: Site, tmp_path: Path) -> None:
    dest = opus_path("tatoeba", ("de", "en"), tmp_path)
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + ".part").write_bytes(ZIP)  # killed after the last byte, before the rename
    assert fetch_opus("tatoeba", ("de", "en"), base_url=site.url, cache=tmp_path).read_bytes() == ZIP


def test_pinned_checksum_mismatch_deletes_the_download(site: Site, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(download.REGISTRY, "tatoeba",
                        OpusCorpus("Tatoeba", "v2023-04-12", "test", sha256={"de-en": "0" * 64}))
    with pytest.raises(DataError, match=r"checksum mismatch for .*de-en\.txt\.zip: got SHA-256 "):
        fetch_opus("tatoeba", ("de", "en"), base_url=site.url, cache=tmp_path)
    assert list(tmp_path.rglob("*.zip*")) == [] and not (tmp_path / SUMS_FILE).exists()


def test_trust_on_first_use_catches_later_changes(site: Site, tmp_path: Path) -> None:
    path = fetch_opus("tatoeba", ("de", "en"), base_url=site.url, cache=tmp_path)
    path.write_bytes(ZIP[:-1])  # the cached file is damaged
    with pytest.raises(DataError, match="does not match its SHA-256"):
        cached_opus("tatoeba", ("de", "en"), cache=tmp_path)
    assert fetch_opus("tatoeba", ("de", "en"), base_url=site.url, cache=tmp_path).read_bytes() == ZIP  # fetched again
    site.files[URL_PATH] = moses_zip(DE[:10], EN[:10])  # the server's file changes
    path.unlink()
    with pytest.raises(DataError, match=f"checksum mismatch.*remove its line from .*{SUMS_FILE}"):
        fetch_opus("tatoeba", ("de", "en"), base_url=site.url, cache=tmp_path)
    assert not path.exists() and not path.with_name(path.name + ".part").exists()


def test_http_errors_and_unknown_names(site: Site, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"download failed: HTTP 404 Not Found for .*/OPUS-Tatoeba/.*/en-fr\.txt\.zip"):
        fetch_opus("tatoeba", ("fr", "en"), base_url=site.url, cache=tmp_path)  # OPUS names pairs in sorted order
    assert list(tmp_path.rglob("*.part")) == []
    with pytest.raises(DataError, match="unknown corpus 'wikipedia' to download .known: tatoeba, europarl"):
        fetch_opus("wikipedia", ("de", "en"), base_url=site.url, cache=tmp_path)
    with pytest.raises(DataError, match=r"download of http://127\.0\.0\.1:9/.* failed"):
        fetch_opus("tatoeba", ("de", "en"), base_url="http://127.0.0.1:9", cache=tmp_path)  # nothing listens
    with pytest.raises(DataError, match=r"opus:tatoeba \(de-en\) is not downloaded: run `rnnmt prepare --download"):
        cached_opus("tatoeba", ("de", "en"), cache=tmp_path)


def test_prepare_command_downloads_and_trains_on_it(site: Site, tmp_path: Path) -> None:
    dev = tmp_path / "dev.tsv"
    dev.write_text("".join(f"{de}\t{en}\n" for de, en in zip(DE[:5], EN[:5])), encoding="utf-8")
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin",
           "RNNMT_OPUS_URL": site.url, "RNNMT_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "prepared"
    done = subprocess.run([sys.executable, "-m", "app.cli", "prepare", "--pair", "en-de", "--download", "tatoeba:2",
                           "--valid-corpus", f"{dev}@de-en", "--vocab-size", "100", "--out", str(out)],
                          capture_output=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads((out / "prepare.json").read_text())["report"]
    assert report["train"]["corpora"] == {"opus:tatoeba": len(DE)}
    assert report["train"]["examples"] == 2 * len(DE)
    assert report["valid"]["kept"] == 5
