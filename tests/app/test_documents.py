"""Document translation end to end: .txt, .srt, .docx, .html and .md through a real server on both faces
(POST /translate_file; LibreTranslate's translate_file -> translatedFileUrl -> GET), bad files, keys and quotas,
and `rnnmt translate-file`. The tiny en->de model reverses number words: "one two three" -> "drei zwei eins"."""

from __future__ import annotations

import asyncio
import codecs
import io
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docx
import httpx
import pytest

from app.bench_serve import running_server
from app.documents import DocumentError, DocumentLimits, Translators, open_document, translate_units
from app.files import safe_name, sweep
from app.keys import KeyStore, Limits
from tests.app.conftest import SERVER_ENV, wait_ready

ROOT = Path(__file__).resolve().parents[2]
GERMAN = {"null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"}
ENGLISH = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
MAX_FILE_BYTES = 50_000
SMALL_QUOTA = 20  # characters per minute of the key "small"

TXT = codecs.BOM_UTF8 + b"one two three\r\nfour five six\r\n\r\nseven eight nine\r\n"
SRT = (b"1\r\n00:00:01,000 --> 00:00:02,500\r\none two three\r\n\r\n"
       b"2\r\n00:00:03,000 --> 00:00:04,250 X1:10 X2:20\r\n<i>four five</i>\r\nsix seven\r\n\r\n"
       b"3\r\n00:01:05,5 --> 00:01:06,000\r\neight nine\r\n")
HTML = (b"<!DOCTYPE html>\n<html><head><title>one two</title></head>\n<body><h1>three four</h1>\n"
        b"<p>five <b>six</b> seven</p>\n</body></html>\n")
MD = b"# one two\n\nthree **four** five\n\n- six seven\n- eight nine\n"


def make_docx() -> bytes:
    """A paragraph of plain, bold and italic runs, a plain paragraph, one with a line break and a tab, a 2x2 table
    and a header."""
    document = docx.Document()
    paragraph = document.add_paragraph("one two ")
    paragraph.add_run("three").bold = True
    paragraph.add_run(" four five")
    paragraph.add_run(" six").italic = True
    document.add_paragraph("seven eight nine")
    lines = document.add_paragraph().add_run("one two")
    lines.add_break()  # a line break and a tab: kept, the text on either side translated apart
    lines.add_text("three\tfour five")
    table = document.add_table(rows=2, cols=2)
    for cell, text in zip(table._cells, ["one two", "three four", "five six", "seven eight"]):
        cell.text = text
    document.sections[0].header.paragraphs[0].text = "nine eight"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


DOCUMENTS = {"numbers.txt": TXT, "numbers.srt": SRT, "numbers.docx": make_docx(), "numbers.html": HTML,
             "numbers.md": MD}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-zäöüß]+", text.lower()))


def untagged(text: str) -> str:
    return re.sub("<[^>]+>", " ", text)


def is_german(text: str) -> bool:
    found = words(text)
    return bool(found) and found <= GERMAN


def runs(document: docx.document.Document) -> list[tuple[str, bool | None, bool | None]]:
    return [(run.text, run.bold, run.italic) for run in document.paragraphs[0].runs if run.text.strip()]


def check_translated(name: str, original: bytes, translated: bytes) -> None:
    """Same structure, German text."""
    if name.endswith(".txt"):
        assert translated.startswith(codecs.BOM_UTF8)
        text = translated.decode("utf-8-sig")
        assert text.count("\r\n") == 4 and "\n" not in text.replace("\r\n", "")
        assert [bool(line.strip()) for line in text.split("\r\n")] == [True, True, False, True, False]
        assert text.split("\r\n")[0] == "drei zwei eins"
        assert all(is_german(line) for line in text.split("\r\n") if line.strip())
    elif name.endswith(".srt"):
        # A cue is translated as one line, then broken into as many lines again: its tags stay in the cue.
        old, new = original.decode().split("\r\n\r\n"), translated.decode().split("\r\n\r\n")
        assert len(old) == len(new)
        for before, after in zip(old, new):
            head, text = before.split("\r\n", 2)[:2], before.split("\r\n", 2)[2]
            assert after.split("\r\n", 2)[:2] == head  # numbers and timings (also "00:01:05,5") byte for byte
            out = after.split("\r\n", 2)[2]
            assert len(out.strip().split("\r\n")) == len(text.strip().split("\r\n"))
            assert is_german(untagged(out.replace("\r\n", " "))), (before, after)
            assert sorted(re.findall("<[^>]+>", out)) == sorted(re.findall("<[^>]+>", text))
        assert new[0].split("\r\n")[2] == "drei zwei eins"
    elif name.endswith(".docx"):
        before, after = docx.Document(io.BytesIO(original)), docx.Document(io.BytesIO(translated))
        assert len(after.paragraphs) == len(before.paragraphs) == 3
        assert after.paragraphs[2].text == "zwei eins\ndrei\tfünf vier"
        assert all(is_german(p.text) for p in after.paragraphs)
        old_runs, new_runs = runs(before), runs(after)
        # every formatting comes back, each on German words
        assert {(b, i) for _, b, i in new_runs} == {(b, i) for _, b, i in old_runs}
        assert all(is_german(text) for text, _, _ in new_runs)
        assert len(after.tables) == 1 and [len(r.cells) for r in after.tables[0].rows] == [2, 2]
        assert all(is_german(cell.text) for cell in after.tables[0]._cells)
        assert after.sections[0].header.paragraphs[0].text == "acht neun"
    else:
        old, new = original.decode(), translated.decode()
        if name.endswith(".html"):
            assert re.findall(r"<[^>]+>", new) == re.findall(r"<[^>]+>", old)
            assert is_german(re.sub(r"<[^>]+>", " ", new).replace("DOCTYPE", "").replace("html", ""))
        else:
            def marks(text: str) -> list[str]:
                return [re.match(r"[#*\- ]*", line).group() for line in text.splitlines()]

            assert marks(new) == marks(old)
            assert new.count("**") == 2 and is_german(new.replace("*", " ").replace("#", " ").replace("-", " "))


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("translated-files")


@pytest.fixture(scope="module")
def small_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("keys") / "keys.sqlite"
    store = KeyStore(db)
    key = store.add("small", Limits(chars_per_minute=SMALL_QUOTA))
    store.close()
    return db, key


@pytest.fixture(scope="module")
def url(served_models_dir: Path, files_dir: Path, small_key: tuple[Path, str],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own: small file limits, a files folder to look into, a key with a small quota."""
    env = {**SERVER_ENV, "RNNMT_FILES_DIR": str(files_dir), "RNNMT_MAX_FILE_BYTES": str(MAX_FILE_BYTES),
           "RNNMT_MAX_FILE_CHARS": "2000", "RNNMT_FILE_TTL_S": "120", "RNNMT_KEYS_DB": str(small_key[0])}
    log = tmp_path_factory.mktemp("files-server") / "serve.log"
    with running_server(served_models_dir, env, log_file=log) as base:
        wait_ready(base)
        yield base


@pytest.fixture()
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60.0) as client:
        yield client


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_native_face_translates_the_file(http: httpx.Client, name: str) -> None:
    response = http.post("/translate_file", files={"file": (name, DOCUMENTS[name])},
                         data={"source": "en", "target": "de"})
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
    expected = {"txt": "text/plain", "srt": "application/x-subrip", "html": "text/html", "md": "text/markdown",
                "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
    assert response.headers["content-type"].startswith(expected[name.rsplit(".", 1)[1]])
    check_translated(name, DOCUMENTS[name], response.content)


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_libretranslate_face_stores_the_file_for_download(http: httpx.Client, url: str, files_dir: Path,
                                                          name: str) -> None:
    response = http.post("/libretranslate/translate_file", files={"file": (name, DOCUMENTS[name])},
                         data={"source": "en", "target": "de"})
    assert response.status_code == 200, response.text
    link = response.json()["translatedFileUrl"]
    assert re.fullmatch(re.escape(url) + r"/libretranslate/download_file/[0-9a-f]{32}\." + re.escape(name), link)
    stored = link.rsplit("/", 1)[1]
    assert (files_dir / stored).is_file() and not list(files_dir.glob(".*"))  # no temporary file left
    download = httpx.get(link, timeout=30.0)
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="{name}"'
    check_translated(name, DOCUMENTS[name], download.content)


def test_source_auto_detects_the_language_of_the_document(http: httpx.Client) -> None:
    response = http.post("/translate_file", files={"file": ("a.srt", SRT)}, data={"source": "auto", "target": "de"})
    assert response.status_code == 200, response.text
    assert response.headers["x-detected-language"] == "en"
    check_translated("a.srt", SRT, response.content)


BAD_FILES = [
    ("setup.exe", b"MZ\x90\x00", 415, "unsupported_file_type"),
    ("noextension", b"one two", 415, "unsupported_file_type"),
    ("broken.docx", b"PK\x03\x04 this is no zip archive", 400, "invalid_document"),
    ("locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), 400, "encrypted_document"),
    ("latin1.txt", "zwölf".encode("latin-1"), 400, "invalid_encoding"),
    ("garbage.srt", b"this is not\na subtitle file\n", 400, "invalid_document"),
    ("empty.txt", b"", 400, "empty_file"),
    ("big.txt", b"one two three\n" * (MAX_FILE_BYTES // 14 + 1), 413, "file_too_large"),
    ("long.txt", b"one two three\n\n" * 200, 413, "too_many_characters"),
]


@pytest.mark.parametrize(("name", "data", "status", "code"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_refused_and_nothing_is_kept(http: httpx.Client, files_dir: Path, name: str, data: bytes,
                                                   status: int, code: str) -> None:
    before = sorted(files_dir.iterdir())
    for path in ("/translate_file", "/libretranslate/translate_file"):
        response = http.post(path, files={"file": (name, data)}, data={"source": "en", "target": "de"})
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
    assert sorted(files_dir.iterdir()) == before
    assert http.get("/health").status_code == 200


def test_a_docx_that_is_another_zip_is_refused(http: httpx.Client) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    response = http.post("/translate_file", files={"file": ("sheet.docx", archive.getvalue())},
                         data={"source": "en", "target": "de"})
    assert response.status_code == 400 and "not a Word document" in response.json()["error"]["message"]


def test_unknown_pair_and_missing_fields(http: httpx.Client) -> None:
    response = http.post("/translate_file", files={"file": ("a.txt", b"one two")}, data={"source": "en",
                                                                                         "target": "xx"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "unsupported_pair"
    response = http.post("/libretranslate/translate_file", data={"source": "en", "target": "de"})
    assert response.status_code == 422


def test_keys_and_quotas_count_the_documents_characters(http: httpx.Client, small_key: tuple[Path, str]) -> None:
    key = small_key[1]
    send = {"source": "en", "target": "de"}
    response = http.post("/libretranslate/translate_file", files={"file": ("a.txt", b"one two")},
                         data={**send, "api_key": "not-a-key"})
    assert response.status_code == 403
    response = http.post("/libretranslate/translate_file", files={"file": ("a.txt", b"one two three")},
                         data={**send, "api_key": key})
    assert response.status_code == 200, response.text
    assert int(response.headers["ratelimit-remaining"]) == SMALL_QUOTA - len("one two three")
    response = http.post("/translate_file", files={"file": ("b.txt", b"four five six seven eight")}, data=send,
                         headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"


def test_downloads_of_unknown_or_odd_names_are_404(http: httpx.Client) -> None:
    for name in ["0" * 32 + ".a.txt", "..%2F..%2Fetc%2Fpasswd", "x.txt"]:
        assert http.get(f"/libretranslate/download_file/{name}").status_code == 404


def test_sweep_removes_expired_files(tmp_path: Path) -> None:
    old, new = tmp_path / ("a" * 32 + ".old.txt"), tmp_path / ("b" * 32 + ".new.txt")
    old.write_text("x")
    new.write_text("y")
    os.utime(old, (time.time() - 700, time.time() - 700))
    assert sweep(tmp_path, 600) == 1
    assert not old.exists() and new.exists()


def test_safe_names() -> None:
    assert safe_name("Bericht (v2) ü.docx") == "Bericht_v2_u.docx"
    assert safe_name("отчёт.DOCX") == "document.docx"
    assert safe_name("..hidden.txt") == "hidden.txt"


def test_docx_runs_are_rebuilt_from_the_projected_spans() -> None:
    """Without a model: a stand-in that reverses the spans and upper-cases them, as a translation that moves the
    bold word; every run keeps its formatting, text outside spans joins its neighbour."""

    class Reverse(Translators):
        async def html(self, html: str) -> str:
            tokens = re.findall(r'<span data-r="\d+">.*?</span>|<br[^>]*>', html)
            return " " + "".join(re.sub(r">(.*?)<", lambda m: m.group().upper(), t) for t in reversed(tokens))

    async def upper(texts: list[str]) -> list[str]:
        return [t.upper() for t in texts]

    document = open_document(make_docx(), "a.docx", DocumentLimits(10**6, 10**4))
    assert [u.kind for u in document.units] == ["html", "text", "html", "text", "text", "text", "text", "text"]
    assert document.units[2].source == ('<span data-r="0">one two</span><br data-r="0"><span data-r="0">three</span>'
                                        '<br data-r="0" data-tab=""><span data-r="0">four five</span>')
    done: list[int] = []
    translations = asyncio.run(translate_units(document.units, Reverse(upper, upper), done.append))
    assert sum(done) == len(document.units)
    result = docx.Document(io.BytesIO(document.render(translations)))
    assert runs(result) == [("  SIX", None, True), (" FOUR FIVE", None, None), ("THREE", True, None),
                            ("ONE TWO ", None, None)]
    assert result.paragraphs[2].text == " FOUR FIVE\tTHREE\nONE TWO"  # the stand-in reverses breaks too


def test_limits_are_checked_before_anything_is_translated() -> None:
    with pytest.raises(DocumentError) as error:
        open_document(TXT, "a.txt", DocumentLimits(max_bytes=10))
    assert error.value.status == 413


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RNNMT_DEVICE": "cpu", "RNNMT_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "app.cli", "translate-file", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)


def test_cli_translates_srt_and_docx(served_models_dir: Path, tmp_path: Path) -> None:
    for name in ["numbers.srt", "numbers.docx"]:
        source, target = tmp_path / name, tmp_path / "out" / name
        source.write_bytes(DOCUMENTS[name])
        done = cli(str(source), str(target), "--source", "en", "--target", "de", "--models-dir",
                   str(served_models_dir), "--beam-size", "3")
        assert done.returncode == 0, done.stderr
        assert f"wrote {target}" in done.stdout
        check_translated(name, DOCUMENTS[name], target.read_bytes())
        assert not [p for p in target.parent.iterdir() if p.name.endswith(".part")]  # no temporary file left


def test_cli_bad_file_is_one_line_and_exit_2(served_models_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "broken.docx"
    source.write_bytes(b"PK\x03\x04 broken")
    done = cli(str(source), str(tmp_path / "out.docx"), "--source", "en", "--target", "de", "--models-dir",
               str(served_models_dir))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("rnnmt: error: broken.docx is not")
    assert not (tmp_path / "out.docx").exists()
