"""The app factory in-process (no model needed): importing loads nothing, and without models the app starts,
answers /health, and says 503 on /ready and /translate with a clear log line."""

from __future__ import annotations

import asyncio
import inspect
import logging
from pathlib import Path

import httpx
import pytest

from app import api, libretranslate
from app.main import create_app
from app.settings import Settings, get_settings

PAIR = {"source": "en", "target": "de"}


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RNNMT_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("RNNMT_MAX_CHARS", "10")
    settings = Settings()
    assert settings.models_dir == tmp_path and settings.max_chars == 10
    assert Settings.model_fields["models_dir"].default.name == "released-models"
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings() and get_settings().max_chars == 10
    finally:
        get_settings.cache_clear()


def test_app_without_models_starts_but_is_not_ready(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(models_dir=tmp_path / "empty", device="cpu"))
    assert not app.state.registry.models  # nothing is loaded before the lifespan runs

    async def scenario() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return [await client.get("/ready"), await client.get("/health"),
                        await client.post("/translate", json={"text": "one", **PAIR}), await client.get("/languages")]

    with caplog.at_level(logging.ERROR, logger="app.registry"):
        ready, health, translate, languages = asyncio.run(scenario())
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
    assert health.json() == {"status": "ok"}
    assert translate.status_code == 503 and translate.json()["error"]["code"] == "not_ready"
    assert languages.json() == {"languages": [], "pairs": []}
    assert "no model folders" in caplog.text and str(tmp_path / "empty") in caplog.text


def test_web_page_is_served_when_present(tmp_path: Path) -> None:
    from fastapi import FastAPI

    from app.main import mount_web_page

    (tmp_path / "index.html").write_text("<!doctype html><title>rnnmt</title>", encoding="utf-8")
    (tmp_path / "app.js").write_text("console.log('hi')", encoding="utf-8")
    app = FastAPI()
    mount_web_page(app, tmp_path)

    async def fetch(path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.get(path)

    page = asyncio.run(fetch("/"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>rnnmt</title>" in page.text
    assert asyncio.run(fetch("/static/app.js")).text == "console.log('hi')"


def test_request_dependencies_run_on_the_event_loop(tmp_path: Path) -> None:
    """FastAPI runs a plain-`def` dependency in its threadpool and rebuilds an overridden one on every request.
    With the decode worker holding the GIL between torch ops, that cost 2.5x per request (cached requests,
    32 clients: 860 vs 2150 requests/s), so the app's dependencies are `async def` and nothing is overridden."""
    app = create_app(Settings(models_dir=tmp_path, device="cpu"))
    assert not app.dependency_overrides
    checked = 0
    for route in [*api.router.routes, *libretranslate.router.routes]:
        stack = list(route.dependant.dependencies)
        while stack:
            dependency = stack.pop()
            assert inspect.iscoroutinefunction(dependency.call), f"{route.path}: {dependency.call.__name__} is a def"
            stack.extend(dependency.dependencies)
            checked += 1
    assert checked >= 10


def test_cors_is_off_by_default_and_configurable(tmp_path: Path) -> None:
    async def preflight(settings: Settings) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)),
                                     base_url="http://test") as client:
            return await client.options("/translate", headers={"Origin": "https://example.org",
                                                               "Access-Control-Request-Method": "POST"})

    closed = asyncio.run(preflight(Settings(models_dir=tmp_path, device="cpu")))
    assert "access-control-allow-origin" not in closed.headers
    opened = asyncio.run(preflight(Settings(models_dir=tmp_path, device="cpu", cors_origins=["https://example.org"])))
    assert opened.status_code == 200 and opened.headers["access-control-allow-origin"] == "https://example.org"
