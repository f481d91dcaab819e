"""Public corpora by name (OPUS), downloaded once into a cache: resumable, checksummed, renamed into place.

`rnnmt prepare --download tatoeba --pair de-en` fetches OPUS's Moses zip of Tatoeba for de-en,

    {base}/OPUS-{corpus}/{version}/moses/{l1}-{l2}.txt.zip     (l1 < l2 alphabetically: de-en, not en-de)
    base = $RNNMT_OPUS_URL or https://object.pouta.csc.fi

into `$RNNMT_CACHE_DIR` (else `$XDG_CACHE_HOME/rnnmt`, else `~/.cache/rnnmt`) as
`opus/{corpus}-{version}-{l1}-{l2}.txt.zip`; the corpus spec `opus:tatoeba` then reads the zip's `.de` and `.en`
members (training/formats.py). The URL pattern and versions follow OPUS's published layout but could not be
checked from here (no network on the machine this was written on); a wrong one gives a one-line HTTP error, and
`$RNNMT_OPUS_URL` points at a mirror.

Integrity, honestly: no checksums are pinned in REGISTRY yet (OPUS publishes none we could copy offline), so the
first download is trusted: its SHA-256 is recorded in `SHA256SUMS` in the cache folder (sha256sum's format), and
every later use verifies the file against it. That detects a corrupted or truncated cache and a file changed on
the server since, not a file that was already wrong when first fetched. A pinned `sha256` for a pair takes
precedence over the record. A download goes to `NAME.part` (resumed with an HTTP Range request when it exists),
is verified, and only then renamed to NAME; a file that fails verification is deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tqdm import tqdm

from model.atomic import atomic_write
from model.errors import DataError

log = logging.getLogger(__name__)

OPUS_BASE_URL = "https://object.pouta.csc.fi"
OPUS_URL = "{base}/OPUS-{corpus}/{version}/moses/{l1}-{l2}.txt.zip"
SUMS_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class OpusCorpus:
    corpus: str  # OPUS's name, as in its URLs
    version: str
    license: str
    sha256: dict[str, str] = field(default_factory=dict)  # pinned checksums by OPUS pair ('de-en'); none known yet


REGISTRY = {
    "tatoeba": OpusCorpus("Tatoeba", "v2023-04-12", "CC BY 2.0 FR (tatoeba.org)"),
    "europarl": OpusCorpus("Europarl", "v8", "European Parliament proceedings; see statmt.org/europarl"),
    "news-commentary": OpusCorpus("News-Commentary", "v16", "WMT News Commentary; see opus.nlpl.eu"),
}


def cache_dir() -> Path:
    if os.environ.get("RNNMT_CACHE_DIR"):
        return Path(os.environ["RNNMT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rnnmt"


def _entry(name: str) -> OpusCorpus:
    if name.lower() not in REGISTRY:
        raise DataError(f"unknown corpus {name!r} to download (known: {', '.join(REGISTRY)})")
    return REGISTRY[name.lower()]


def _opus_pair(langs: tuple[str, str]) -> str:
    return "-".join(sorted(langs))


def opus_url(name: str, langs: tuple[str, str], base_url: str | None = None) -> str:
    entry = _entry(name)
    base = (base_url or os.environ.get("RNNMT_OPUS_URL") or OPUS_BASE_URL).rstrip("/")
    l1, l2 = sorted(langs)
    return OPUS_URL.format(base=base, corpus=entry.corpus, version=entry.version, l1=l1, l2=l2)


def opus_path(name: str, langs: tuple[str, str], cache: Path | None = None) -> Path:
    entry = _entry(name)
    return (cache or cache_dir()) / "opus" / f"{entry.corpus}-{entry.version}-{_opus_pair(langs)}.txt.zip"


def fetch_opus(name: str, langs: tuple[str, str], base_url: str | None = None, cache: Path | None = None) -> Path:
    """The cached, verified zip of an OPUS corpus for the pair; downloaded (or resumed) when missing."""
    cache = cache or cache_dir()
    pinned = _entry(name).sha256.get(_opus_pair(langs))
    return fetch(opus_url(name, langs, base_url), opus_path(name, langs, cache), cache, pinned)


def cached_opus(name: str, langs: tuple[str, str], cache: Path | None = None) -> Path:
    """The cached zip, verified, without going online; a DataError saying how to download it when missing."""
    cache = cache or cache_dir()
    path = opus_path(name, langs, cache)
    if not path.is_file():
        raise DataError(f"corpus opus:{name} ({'-'.join(langs)}) is not downloaded: run `rnnmt prepare --download "
                        f"{name} --pair {'-'.join(langs)}` while online (cache: {cache})")
    expected = _entry(name).sha256.get(_opus_pair(langs)) or recorded_sums(cache).get(_key(path, cache))
    if expected is None:
        raise DataError(f"{path} has no recorded checksum in {cache / SUMS_FILE}: delete it and download it again")
    if sha256_of(path) != expected:
        raise DataError(f"{path} does not match its SHA-256 {expected[:12]}...: delete it and download it again")
    return path


def fetch(url: str, dest: Path, cache: Path, sha256: str | None = None) -> Path:
    """dest, downloaded from url when missing; verified against sha256, else the SHA256SUMS record (made if new)."""
    key = _key(dest, cache)
    expected = sha256 or recorded_sums(cache).get(key)
    if dest.is_file():
        if expected is not None and sha256_of(dest) == expected:
            return dest
        log.warning("%s does not match its checksum (or has none); downloading it again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _download(url, part)
    actual = sha256_of(part)
    if expected is not None and actual != expected:
        part.unlink()
        raise DataError(f"checksum mismatch for {url}: got SHA-256 {actual[:12]}..., expected {expected[:12]}... "
                        f"(the download was deleted; if the file changed upstream on purpose, remove its line from "
                        f"{cache / SUMS_FILE})")
    if expected is None:
        log.warning("no pinned checksum for %s: trusting this first download (SHA-256 %s), recorded in %s",
                    url, actual, cache / SUMS_FILE)
        _record_sum(cache, key, actual)
    os.replace(part, dest)
    return dest


def _download(url: str, part: Path) -> None:
    """Download into part, appending to what an interrupted run left there (HTTP Range) when the server agrees."""
    start = part.stat().st_size if part.is_file() else 0
    headers = {"Accept-Encoding": "identity"}  # byte offsets of the file itself, for Range
    if start:
        headers["Range"] = f"bytes={start}-"
    log.info("downloading %s%s", url, f" (resuming at {start:,} bytes)" if start else "")
    try:
        with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0)) as client, \
                client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416 and start:
                if _content_range_total(response) == start:
                    return  # the .part is already whole
                part.unlink()  # not a prefix of this file: start again
                return _download(url, part)
            if response.status_code not in (200, 206):
                raise DataError(f"download failed: HTTP {response.status_code} {response.reason_phrase} for {url}")
            if response.status_code == 206 and _content_range_start(response) != start:
                part.unlink()  # a range we did not ask for: start again
                return _download(url, part)
            if response.status_code == 200:
                start = 0  # the server ignored the Range and sends the whole file
            length = response.headers.get("content-length")
            total = start + int(length) if length and length.isdigit() else None
            with open(part, "ab" if start else "wb") as out, \
                    tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=part.name.removesuffix(".part"), disable=None) as bar:
                for chunk in response.iter_raw():  # as it arrives: a dropped connection loses nothing
                    out.write(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
    except httpx.HTTPError as exc:
        kept = f"; the partial file {part} is kept: run again to resume" if part.is_file() else ""
        raise DataError(f"download of {url} failed: {exc}{kept}") from None


def _content_range_start(response: httpx.Response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("content-range", ""))
    return int(match.group(1)) if match else None


def _content_range_total(response: httpx.Response) -> int | None:
    match = re.match(r"bytes \*/(\d+)$", response.headers.get("content-range", ""))
    return int(match.group(1)) if match else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _key(path: Path, cache: Path) -> str:
    return path.relative_to(cache).as_posix()


def recorded_sums(cache: Path) -> dict[str, str]:
    """SHA256SUMS of the cache: relative path -> hex digest (lines `DIGEST  PATH`, as sha256sum writes them)."""
    sums = cache / SUMS_FILE
    if not sums.is_file():
        return {}
    out = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, sep, name = line.partition("  ")
        if sep and len(digest) == 64:
            out[name] = digest
    return out


def _record_sum(cache: Path, key: str, digest: str) -> None:
    sums = recorded_sums(cache) | {key: digest}
    cache.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{value}  {name}\n" for name, value in sorted(sums.items()))
    atomic_write(cache / SUMS_FILE, text)
