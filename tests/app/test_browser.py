"""The web page in a real headless Chromium against a real uvicorn: translate, compare with the API,
check the heatmap, and show an API error. A screenshot is saved to test-artifacts/browser.png."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(server_url: str):
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium here (make test installs Debian's chromium when apt and root are available)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(server_url + "/")
        page.wait_for_function("document.querySelectorAll('#target option').length > 0")
        yield page
        browser.close()


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
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)


def test_api_errors_are_shown(page) -> None:
    page.fill("#text", "three " * 2000)  # over the 5000-character limit
    page.click("#translate")
    page.wait_for_selector("#error:not([hidden])")
    message = page.inner_text("#error")
    assert "413" in message and "character" in message.lower()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-error.png"))
