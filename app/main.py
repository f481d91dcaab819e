"""The app factory: assembles settings, routers, error handlers, metrics and the web page; loads models once.

Run with `rnnmt serve`, or `uvicorn app.main:create_app --factory`. Importing this module loads nothing.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from app import api, files, libretranslate
from app.access import Access
from app.body_limit import BodyLimitMiddleware
from app.errors import install_error_handlers
from app.liveness import LivenessMiddleware
from app.metrics import Metrics, MetricsMiddleware
from app.openapi import published_openapi
from app.registry import ModelRegistry
from app.runtime import tune_allocator
from app.service import TranslationService
from app.settings import Settings, get_settings
from app.shutdown import Drain, DrainMiddleware

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
VERSION = "0.1.0"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load every model folder once at start-up (off the event loop); drain on SIGTERM (app/shutdown.py);
    stop the batchers at shutdown."""
    settings: Settings = app.state.settings
    tune_allocator()  # also in `uvicorn app.main:...` workers, which skip the CLI
    if settings.threads > 0:
        import torch

        torch.set_num_threads(settings.threads)
    registry: ModelRegistry = app.state.registry
    await asyncio.to_thread(registry.load)
    log.info("serving %d model(s): %s", len(registry.models),
             ", ".join(f"{s}-{t}" for s, t in registry.models) or "none")
    # Everything loaded so far lives as long as the process: keep it out of the cyclic GC's full passes,
    # which otherwise walk it again and again while requests wait.
    gc.collect()
    gc.freeze()
    drain: Drain = app.state.drain
    unhook_signals = drain.hook_signals()
    try:
        yield
    finally:
        drain.begin()
        unhook_signals()
        registry.close()
        app.state.access.close()
        app.state.metrics.close()


def mount_web_page(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    """GET / serves static/index.html and /static/* its assets, when the page exists."""
    index = static_dir / "index.html"
    if index.is_file():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")

        @app.get("/", include_in_schema=False)
        async def web_page() -> FileResponse:
            return FileResponse(index, media_type="text/html")

        return

    @app.get("/", include_in_schema=False)
    async def root() -> JSONResponse:
        return JSONResponse({"name": "rnnmt", "docs": "/docs", "translate": "POST /translate"})


def max_body_bytes(settings: Settings) -> int:
    """Room for max_texts texts of max_chars characters, each JSON-escaped (up to 6 bytes), or one uploaded
    document, plus options."""
    return max(settings.max_texts * settings.max_chars * 6, settings.max_file_bytes) + 64 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI app. Without settings, they come from RNNMT_* environment variables."""
    settings = settings or get_settings()
    # /docs and /redoc load Swagger UI and ReDoc from the app itself (fastapi-offline ships them), not from a CDN:
    # an offline or air-gapped server shows its API docs too.
    app = FastAPIOffline(title="rnnmt", version=VERSION, lifespan=lifespan,
                         description="Machine translation with a recurrent encoder-decoder and Bahdanau attention.")
    metrics = Metrics()
    registry = ModelRegistry(settings, metrics)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.registry = registry
    app.state.access = Access(settings, metrics)
    app.state.service = TranslationService(registry, settings, metrics)
    app.state.drain = drain = Drain()
    # Innermost first: /health's cheap answer comes after the body limit, the drain and the metrics, so that
    # clients and operators see it as they see the app's own.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes(settings))
    app.add_middleware(LivenessMiddleware)
    if settings.cors_origins:  # off by default: browsers then only call the API from its own pages
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key"])
    app.add_middleware(DrainMiddleware, drain=drain)  # inside the metrics: its 503s are counted
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(libretranslate.router)
    app.include_router(files.router)
    mount_web_page(app)
    app.openapi = partial(published_openapi, app)  # type: ignore[method-assign]  # languages and limits filled in
    return app
