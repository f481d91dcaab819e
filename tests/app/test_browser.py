"""The web page in a real headless Chromium against a real uvicorn: translate, compare with the API,
check the heatmap, detect the source language, translate through a pivot, show an API error, translate HTML
(shown as source and in a sandboxed preview), use a glossary, and translate documents (download link, errors).
Screenshots are saved to test-artifacts/browser*.png."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.bench_serve import running_server
from tests.app.conftest import SERVER_ENV, wait_ready
from tests.conftest import DE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium here (make test installs Debian's chromium when apt and root are available)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(url + "/")
    page.wait_for_function("document.querySelectorAll('#target option').length > 0")
    return page


@pytest.fixture(scope="module")
def page(browser, server_url: str):
    page = open_page(browser, server_url)
    yield page
    page.close()


def screenshot(page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=full_page)


def translate(page, text: str) -> None:
    """Type a text, translate it, and wait until the request has finished."""
    page.fill("#text", text)
    page.click("#translate")
    page.wait_for_function("!document.getElementById('translate').disabled")


def test_translate_in_the_browser_matches_the_api(page, server_url: str) -> None:
    page.select_option("#source", "en")
    page.select_option("#target", "de")
    page.fill("#beam", "3")
    page.fill("#nbest", "2")
    page.fill("#text", "three one four")
    page.press("#text", "Control+Enter")
    page.wait_for_selector("#heatmap tr.att-row")
    api = httpx.post(f"{server_url}/translate", timeout=60, json={
        "text": "three one four", "source": "en", "target": "de", "beam_size": 3, "n_best": 2,
        "return_scores": True, "return_attention": True}).json()
    best = api["translations"][0]
    assert page.inner_text("#output") == best["text"]
    attention = best["alternatives"][0]["attention"][0]
    assert page.locator("#heatmap tr.att-row").count() == len(attention["target_pieces"])
    assert page.locator("#heatmap thead th").count() == len(attention["source_pieces"]) + 1
    assert page.locator("#alternatives li").count() == 2
    assert page.is_hidden("#detected") and page.is_hidden("#pivot")
    assert "tiny-en-de" in page.inner_text("#timing")
    screenshot(page, "browser.png")


def test_detect_language_in_the_browser(page, server_url: str) -> None:
    first = page.locator("#source option").first
    assert first.get_attribute("value") == "auto" and first.inner_text() == "Detect language"
    page.select_option("#source", "auto")
    assert page.locator("#target option").evaluate_all("options => options.map(o => o.value)") == ["de"]
    page.select_option("#target", "de")
    page.fill("#beam", "3")
    page.fill("#nbest", "2")
    translate(page, "one two three")
    assert page.is_hidden("#error")
    api = httpx.post(f"{server_url}/translate", timeout=60, json={
        "text": "one two three", "source": "auto", "target": "de", "beam_size": 3, "n_best": 2,
        "return_scores": True, "return_attention": True}).json()
    item = api["translations"][0]
    assert page.inner_text("#output") == item["text"] and item["text"]
    detected = page.inner_text("#detected")
    percent = round(item["detected_language"]["confidence"] * 100)
    assert "English" in detected and "(en)" in detected and f"{percent}%" in detected
    assert re.search(r"\d+%", detected)
    assert ("not sure" in detected) == (not item["detected_language"]["reliable"])
    assert page.locator("#heatmap tr.att-row").count() > 0
    screenshot(page, "browser-detect.png")

    translate(page, "on")  # too few letters to trust the detection
    found = httpx.post(f"{server_url}/detect", timeout=60, json={"text": "on"}).json()["detections"][0][0]
    assert not found["reliable"]
    assert "(not sure)" in page.inner_text("#detected")
    assert "unsure" in (page.get_attribute("#detected", "class") or "")
    screenshot(page, "browser-detect-unsure.png", full_page=False)


def test_api_errors_are_shown(page) -> None:
    page.select_option("#source", "en")
    translate(page, "three " * 2000)  # over the 5000-character limit
    page.wait_for_selector("#error:not([hidden])")
    message = page.inner_text("#error")
    assert "12000 characters" in message and "limit is 5000" in message
    assert page.inner_text("#output") == "" and page.is_hidden("#detected")
    screenshot(page, "browser-error.png", full_page=False)


def german_words(text: str) -> list[str]:
    """The words of a translation (tags, cue numbers and timestamps left out), each checked to be German."""
    words = re.findall(r"[^\W\d_]+", re.sub(r"<[^>]*>", " ", text))
    assert words and all(word in DE for word in words), text
    return words


def choose_format(page, value: str) -> None:
    page.check(f"input[name=format][value={value}]")


def test_html_in_the_browser(page) -> None:
    page.select_option("#source", "en")
    page.select_option("#target", "de")
    choose_format(page, "html")
    try:
        translate(page, "<p>one <b>two</b> three</p>")
        assert page.is_hidden("#error")
        shown = page.inner_text("#output")  # the translated HTML as text, not as markup of this page
        assert shown.startswith("<p>") and shown.endswith("</p>")
        assert shown.count("<b>") == 1 and shown.count("</b>") == 1
        assert len(german_words(shown)) >= 2
        assert page.locator("#output *").count() == 0
        assert page.get_attribute("#preview", "sandbox") == ""
        assert page.get_attribute("#preview", "srcdoc").endswith(shown)
        preview = page.frame_locator("#preview")
        assert preview.locator("b").count() == 1 and preview.locator("p").count() == 1
        german_words(preview.locator("b").inner_text())
        assert german_words(preview.locator("body").inner_text()) == german_words(shown)
        assert page.is_visible("#no-attention") and page.locator("#heatmap tr.att-row").count() == 0
        screenshot(page, "browser-html.png")

        # a script in the translated HTML runs neither in the page nor in the preview
        translate(page, '<p>one two</p><img src="x" onerror="parent.document.title=1">'
                        '<script>document.body.dataset.ran = 1; parent.document.title = 2</script>')
        assert page.is_hidden("#error") and "<script>" in page.inner_text("#output")
        assert page.locator("main script, main img").count() == 0
        page.wait_for_timeout(300)
        assert page.title() == "rnnmt — translate"
        assert page.frame_locator("#preview").locator("body").get_attribute("data-ran") is None
    finally:
        choose_format(page, "text")
    translate(page, "one two")  # back to plain text: no preview, the heatmap again
    assert page.is_hidden("#preview-box") and page.locator("#heatmap tr.att-row").count() > 0
    assert "markup" not in (page.get_attribute("#output", "class") or "")


def test_glossary_in_the_browser(page) -> None:
    page.select_option("#source", "en")
    page.select_option("#target", "de")
    page.click("#glossary-box summary")
    try:
        page.fill("#glossary", "two = ZWEI\n\n")
        translate(page, "one two three")
        assert page.is_hidden("#error") and "ZWEI" in page.inner_text("#output")
        assert page.is_visible("#no-attention")
        screenshot(page, "browser-glossary.png")
        page.fill("#glossary", "two ZWEI")
        translate(page, "one two three")
        assert "Glossary line 1" in page.inner_text("#error") and page.inner_text("#output") == ""
    finally:
        page.fill("#glossary", "")
    translate(page, "one two three")
    assert page.is_hidden("#error") and "ZWEI" not in page.inner_text("#output")


def translate_document(page, path: Path) -> None:
    page.set_input_files("#file", str(path))
    page.click("#translate-file")
    page.wait_for_function("!document.getElementById('translate-file').disabled")


def download_text(page) -> str:
    """The translated document behind the download link (a Blob URL of the page)."""
    href = page.get_attribute("#download", "href")
    assert href.startswith("blob:")
    return page.evaluate("async (url) => (await fetch(url)).text()", href)


def test_translate_documents_in_the_browser(page, tmp_path: Path) -> None:
    text = tmp_path / "numbers.txt"
    text.write_text("one two three\n\nfour five\n", encoding="utf-8")
    page.select_option("#source", "auto")
    page.select_option("#target", "de")
    translate_document(page, text)
    assert page.is_hidden("#file-error") and page.is_visible("#download")
    assert page.get_attribute("#download", "download") == "numbers.txt"
    assert page.inner_text("#download") == "Download numbers.txt"
    assert page.inner_text("#file-detected") == "Detected: English (en)"
    paragraphs = download_text(page).rstrip("\n").split("\n\n")
    assert len(paragraphs) == 2 and all(german_words(p) for p in paragraphs)
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "numbers.txt"
    screenshot(page, "browser-document.png")

    subtitles = tmp_path / "film.srt"
    subtitles.write_text("1\n00:00:01,000 --> 00:00:02,500\none two three\n\n"
                         "2\n00:00:03,000 --> 00:00:04,000\nfour\n", encoding="utf-8")
    page.select_option("#source", "en")
    translate_document(page, subtitles)
    assert page.is_hidden("#file-error") and page.get_attribute("#download", "download") == "film.srt"
    assert page.is_hidden("#file-detected")
    cues = download_text(page).strip().split("\n\n")
    assert [cue.split("\n")[:2] for cue in cues] == [["1", "00:00:01,000 --> 00:00:02,500"],
                                                      ["2", "00:00:03,000 --> 00:00:04,000"]]
    assert all(german_words(cue.split("\n", 2)[2]) for cue in cues)


def test_document_errors_are_shown(page, tmp_path: Path) -> None:
    bad = tmp_path / "x.exe"
    bad.write_bytes(b"MZ\x90\x00")
    translate_document(page, bad)
    page.wait_for_selector("#file-error:not([hidden])")
    message = page.inner_text("#file-error")
    assert ".exe files cannot be translated" in message and ".txt" in message and ".docx" in message
    assert page.is_hidden("#file-result") and page.inner_text("#file-status") == ""
    screenshot(page, "browser-document-error.png")


@pytest.fixture(scope="module")
def pivot_url(served_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with the tiny en->de model and a copy of it relabelled fr->en: fr->de goes through English."""
    root = tmp_path_factory.mktemp("pivot-models")
    shutil.copytree(served_models_dir / "tiny-en-de", root / "tiny-en-de")
    relabelled = root / "tiny-fr-en"
    shutil.copytree(served_models_dir / "tiny-en-de", relabelled)
    config = json.loads((relabelled / "config.json").read_text())
    (relabelled / "config.json").write_text(json.dumps({**config, "source_lang": "fr", "target_lang": "en"}))
    with running_server(root, SERVER_ENV, log_file=root / "serve.log") as url:
        wait_ready(url)
        yield url


def test_pivoted_pair_in_the_browser(browser, pivot_url: str) -> None:
    page = open_page(browser, pivot_url)
    page.select_option("#source", "fr")
    labels = page.locator("#target option").evaluate_all("options => options.map(o => [o.value, o.text])")
    assert labels == [["en", "English"], ["de", "German (via English)"]]
    page.select_option("#target", "de")
    assert "through English" in page.inner_text("#route")
    page.fill("#beam", "3")
    page.fill("#nbest", "2")
    translate(page, "one two")
    assert page.is_hidden("#error")
    item = httpx.post(f"{pivot_url}/translate", timeout=60, json={
        "text": "one two", "source": "fr", "target": "de", "beam_size": 3, "n_best": 2,
        "return_scores": True, "return_attention": True}).json()["translations"][0]
    assert item["pivot"]["language"] == "en" and item["models"] == ["tiny-fr-en", "tiny-en-de"]
    assert page.inner_text("#output") == item["text"]
    assert page.is_visible("#pivot") and page.inner_text("#pivot-text") == item["pivot"]["text"]
    assert "tiny-fr-en → tiny-en-de" in page.inner_text("#timing")
    captions = page.locator("#heatmap figcaption").all_inner_texts()
    assert len(captions) == 2 and "French → English" in captions[0] and "English → German" in captions[1]
    first, second = item["pivot"]["attention"][0], item["alternatives"][0]["attention"][0]
    rows = page.locator("#heatmap figure").evaluate_all(
        "figures => figures.map(f => f.querySelectorAll('tr.att-row').length)")
    assert rows == [len(first["target_pieces"]), len(second["target_pieces"])]
    screenshot(page, "browser-pivot.png")
    page.close()


def test_api_docs_load_offline(browser, server_url: str) -> None:
    """/docs and /redoc render with every request that leaves 127.0.0.1 blocked (an air-gapped server)."""
    page = browser.new_page()
    outside: list[str] = []

    def only_local(route) -> None:
        url = route.request.url
        if url.startswith(server_url):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", only_local)
    try:
        page.goto(server_url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "rnnmt" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector("text=/translate", timeout=30_000)
        page.goto(server_url + "/redoc")
        page.wait_for_selector("text=Machine translation with a recurrent encoder-decoder", timeout=30_000)
        assert page.locator("h1").first.inner_text().startswith("rnnmt")
    finally:
        screenshot(page, "docs-offline.png")
        page.close()
    # Only ReDoc's decorative "API docs by Redocly" logo (an <img> built into its bundle) asks another host;
    # it is blocked and the pages render without it. Every script, style sheet and font comes from the app.
    assert all(url.startswith("https://cdn.redoc.ly/") and url.endswith(".svg") for url in outside), outside
