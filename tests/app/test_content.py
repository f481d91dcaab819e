"""Real content through the real server (tiny en->de model: "one two three" -> "drei zwei eins"): HTML and
Markdown keep their tags on both faces, protected spans survive byte-identical, glossary terms are forced, and a
server-side glossary file applies to its pair."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.bench_serve import running_server
from tests.app.conftest import SERVER_ENV, wait_ready

NATIVE = {"source": "en", "target": "de", "beam_size": 2}
GERMAN = {"null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"}


def tags(html: str) -> list[str]:
    return sorted(re.findall(r"</?[a-z][^>]*>", html))


def test_html_on_both_faces(client: httpx.Client) -> None:
    html = '<p>one <b>two</b> three</p><ul><li>four <a href="/x?a=1&amp;b=2">five</a></li></ul><pre>one two</pre>'
    native = client.post("/translate", json={**NATIVE, "text": html, "format": "html"})
    assert native.status_code == 200
    out = native.json()["translations"][0]["text"]
    assert tags(out) == tags(html) and "<pre>one two</pre>" in out and 'href="/x?a=1&amp;b=2"' in out
    assert GERMAN & set(re.sub(r"<[^>]+>", " ", out).split())
    lt = client.post("/libretranslate/translate", data={"q": html, "source": "en", "target": "de", "format": "html"})
    assert lt.status_code == 200 and tags(lt.json()["translatedText"]) == tags(html)
    text = client.post("/translate", json={**NATIVE, "text": "<b>one</b>"}).json()["translations"][0]["text"]
    assert "<b>" not in text  # format "text" (the default) does not know tags


def test_markdown_keeps_code_and_links(client: httpx.Client) -> None:
    md = "# one two\n\nthree **four** [five](https://example.com/a_b) `one two`\n\n```\nsix seven\n```\n"
    out = client.post("/translate", json={**NATIVE, "text": md, "format": "markdown"}).json()["translations"][0]
    assert "](https://example.com/a_b)" in out["text"] and "`one two`" in out["text"]
    assert "```\nsix seven\n```" in out["text"] and out["text"].count("**") == 2 and out["text"].startswith("# ")


def test_placeholders_survive_and_glossary_terms_are_forced(client: httpx.Client) -> None:
    texts = ["one {name} two", "three %1$s four https://example.com/q?x=1", "five 42 six", "seven $HOME eight"]
    items = client.post("/translate", json={**NATIVE, "text": texts}).json()["translations"]
    for text, item in zip(texts, items):
        for span in re.findall(r"\{name\}|%1\$s|https://\S+|\b42\b|\$HOME", text):
            assert item["text"].count(span) == 1, (text, item["text"])
    keep = client.post("/translate", json={**NATIVE, "text": "one Acme two", "do_not_translate": ["Acme"]})
    assert "Acme" in keep.json()["translations"][0]["text"]
    forced = client.post("/translate", json={**NATIVE, "text": "one two three", "glossary": {"two": "ZWO"}})
    assert "ZWO" in forced.json()["translations"][0]["text"]
    plain = client.post("/translate", json={**NATIVE, "text": "one two three"}).json()["translations"][0]
    empty = client.post("/translate", json={**NATIVE, "text": "one two three", "glossary": {}}).json()
    assert empty["translations"][0]["text"] == plain["text"] and "ZWO" not in plain["text"]


@pytest.fixture(scope="module")
def glossary_url(served_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("glossaries")
    (folder / "en-de.tsv").write_text("# a server-side glossary\nthree\tDREI-X\n", encoding="utf-8")
    env = {**SERVER_ENV, "RNNMT_GLOSSARY_DIR": str(folder), "RNNMT_KEYS_DB": str(folder / "keys.sqlite")}
    with running_server(served_models_dir, env) as url:
        wait_ready(url)
        yield url


def test_server_glossary_file(glossary_url: str) -> None:
    out = httpx.post(f"{glossary_url}/translate", json={**NATIVE, "text": "one two three"}, timeout=60).json()
    assert "DREI-X" in out["translations"][0]["text"]
    own = httpx.post(f"{glossary_url}/translate", json={**NATIVE, "text": "one two three",
                                                        "glossary": {"three": "THREE-Y"}}, timeout=60).json()
    assert "THREE-Y" in own["translations"][0]["text"]  # the request's entry wins over the file's


def test_glossary_and_protected_spans_in_markup(client: httpx.Client) -> None:
    body = {**NATIVE, "glossary": {"two": "ZWO"}}
    html = client.post("/translate", json={**body, "text": "<p>one <b>two</b> three 42</p>", "format": "html"})
    out = html.json()["translations"][0]["text"]
    assert "<b>ZWO</b>" in out and out.count("42") == 1 and tags(out) == ["</b>", "</p>", "<b>", "<p>"]
    md = client.post("/translate", json={**body, "text": "one **two** three", "format": "markdown"})
    assert "**ZWO**" in md.json()["translations"][0]["text"]


def test_documents_use_the_pair_glossary_and_protect_spans(glossary_url: str) -> None:
    files = {"file": ("a.txt", b"one two three\n\nfour {name} five\n")}
    answer = httpx.post(f"{glossary_url}/translate_file", files=files, data={"source": "en", "target": "de"},
                        timeout=60)
    assert answer.status_code == 200
    text = answer.content.decode()
    assert "DREI-X" in text and text.count("{name}") == 1


def test_translate_file_cli_with_a_glossary(served_models_dir: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "g.tsv").write_text("# mine\ntwo\tZWO\n", encoding="utf-8")
    (tmp_path / "in.txt").write_text("one two three\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "app.cli", "translate-file", str(tmp_path / "in.txt"),
                           str(tmp_path / "out.txt"), "--source", "en", "--target", "de", "--models-dir",
                           str(served_models_dir), "--glossary", str(tmp_path / "g.tsv")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ZWO" in (tmp_path / "out.txt").read_text(encoding="utf-8")
