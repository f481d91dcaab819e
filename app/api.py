"""The native HTTP routes: /translate, /languages, /health, /ready, /metrics."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from app.dependencies import MetricsDep, RegistryDep, ServiceDep, SettingsDep, require_models, unless_disconnected
from app.errors import ApiError
from app.registry import DecodeOptions, language_name
from app.schemas import (
    ERROR_RESPONSES,
    ErrorResponse,
    HealthResponse,
    Language,
    LanguagesResponse,
    ReadyResponse,
    TranslateRequest,
    TranslateResponse,
)
from app.service import check_texts

log = logging.getLogger(__name__)

router = APIRouter(tags=["translation"])


@router.post("/translate", response_model=TranslateResponse, responses=ERROR_RESPONSES)
async def translate(body: TranslateRequest, request: Request, service: ServiceDep, registry: RegistryDep,
                    settings: SettingsDep) -> TranslateResponse:
    """Translate a text or a list of texts; paragraphs are split into sentences and joined back."""
    start = time.perf_counter()
    require_models(registry)
    texts = body.texts
    check_texts(texts, settings)
    model = registry.get(body.source, body.target)
    options = DecodeOptions(beam_size=body.beam_size, n_best=body.n_best, return_attention=body.return_attention,
                            max_length=body.max_length)
    items = await unless_disconnected(request, service.translate(texts, model, options, body.return_scores))
    return TranslateResponse(translations=items, model=model.info,
                             timing_ms=round((time.perf_counter() - start) * 1000.0, 2))


@router.get("/languages", response_model=LanguagesResponse)
async def languages(registry: RegistryDep) -> LanguagesResponse:
    """The languages and the language pairs that the loaded models serve."""
    pairs = [model.language_pair() for model in registry.models.values()]
    codes = list(dict.fromkeys(code for pair in pairs for code in (pair.source, pair.target)))
    return LanguagesResponse(languages=[Language(code=c, name=language_name(c)) for c in codes], pairs=pairs)


@router.get("/health", response_model=HealthResponse, tags=["operations"])
async def health() -> HealthResponse:
    """Liveness: the process answers (also while a batch is being decoded)."""
    return HealthResponse(status="ok")


@router.get("/ready", response_model=ReadyResponse, tags=["operations"], responses={503: {"model": ErrorResponse}})
async def ready(registry: RegistryDep) -> ReadyResponse:
    """Readiness: 200 once at least one model is loaded, 503 otherwise."""
    if not registry.loaded:
        raise ApiError(503, "not_ready", "models are still loading", {"Retry-After": "5"})
    require_models(registry)
    return ReadyResponse(status="ready", models=len(registry.models))


@router.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
async def metrics(registry: RegistryDep, metrics: MetricsDep) -> PlainTextResponse:
    """Prometheus metrics (text exposition format 0.0.4)."""
    registry.update_queue_metrics()
    return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
