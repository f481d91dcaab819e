"""FastAPI dependencies, named once (`SettingsDep`, `RegistryDep`, ...), and the client-disconnect guard."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from app.access import Access
from app.errors import ApiError
from app.metrics import Metrics
from app.registry import ModelRegistry
from app.service import TranslationService
from app.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


# `async def` on purpose: FastAPI runs a plain `def` dependency in its threadpool, a thread hop per dependency
# per request that also has to win the GIL back from the decode worker.
async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_service(request: Request) -> TranslationService:
    return request.app.state.service


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_access(request: Request) -> Access:
    return request.app.state.access


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
ServiceDep = Annotated[TranslationService, Depends(get_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
AccessDep = Annotated[Access, Depends(get_access)]


def require_models(registry: ModelRegistry) -> None:
    """503 while no model can serve (none found, or not loaded yet)."""
    if not registry.models:
        broken = "; ".join(f"{name}: {why}" for name, why in registry.broken.items())
        raise ApiError(503, "not_ready", f"no translation model is loaded (models dir: {registry.settings.models_dir})"
                       + (f"; broken model folders: {broken}" if broken else ""), {"Retry-After": "30"})


async def _disconnected(request: Request) -> None:
    """Return when the client closes the connection (the request body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client goes away first (its queued sentences are then dropped)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        log.info("client disconnected from %s; its request was cancelled", request.url.path)
        raise ApiError(499, "client_disconnected", "the client closed the connection")
    return task.result()
