"""The native HTTP routes: /translate, /detect, /languages, /health, /ready, /metrics."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from app.dependencies import (
    AccessDep,
    MetricsDep,
    RegistryDep,
    ServiceDep,
    SettingsDep,
    require_models,
    unless_disconnected,
)
from app.errors import ApiError
from app.metrics import authorized
from app.registry import language_name
from app.schemas import (
    ERROR_RESPONSES,
    DetectedLanguage,
    DetectRequest,
    DetectResponse,
    ErrorResponse,
    HealthResponse,
    Language,
    LanguagesResponse,
    ReadyResponse,
    TranslateRequest,
    TranslateResponse,
    error_responses,
)
from app.service import Content, check_texts

log = logging.getLogger(__name__)

router = APIRouter(tags=["translation"])


@router.post("/translate", response_model=TranslateResponse, responses=ERROR_RESPONSES)
async def translate(body: TranslateRequest, request: Request, response: Response, service: ServiceDep,
                    registry: RegistryDep, settings: SettingsDep, access: AccessDep) -> TranslateResponse:
    """Translate a text or a list of texts; paragraphs are split into sentences and joined back. Pairs without
    a model of their own go through English; source "auto" detects each text's language."""
    start = time.perf_counter()
    caller = access.identify(request)
    require_models(registry)
    texts = body.texts
    check_texts(texts, settings)
    auto = body.source == "auto"
    route = None if auto else registry.route(body.source, body.target)
    options = body.decode_options()
    response.headers.update(await access.spend(caller, sum(len(t) for t in texts)))
    content = Content(body.format, body.glossary, body.do_not_translate)
    if route is None:
        work = service.translate_auto(texts, body.target, options, content, body.return_scores, caller.client)
    else:
        work = service.translate_content(texts, route, options, content, body.return_scores, caller.client)
    items = await unless_disconnected(request, work)
    last = next((item.models[-1] for item in items if item.models), None)  # None: all already in the target language
    return TranslateResponse(translations=items, model=None if last is None else registry.model_named(last).info,
                             timing_ms=round((time.perf_counter() - start) * 1000.0, 2))


@router.post("/detect", response_model=DetectResponse, responses=error_responses(400, 401, 403, 413, 422, 429, 503))
async def detect(body: DetectRequest, request: Request, response: Response, service: ServiceDep,
                 registry: RegistryDep, settings: SettingsDep, access: AccessDep) -> DetectResponse:
    """Which of the served source languages each text is written in (candidates, best first)."""
    caller = access.identify(request)
    require_models(registry)
    check_texts(body.texts, settings)
    response.headers.update(await access.spend(caller, sum(len(t) for t in body.texts)))
    detector = registry.detector
    assert detector is not None  # built with the models
    found = await asyncio.to_thread(lambda: [detector.detect(text) for text in body.texts])
    return DetectResponse(detections=[[DetectedLanguage(language=d.language, confidence=round(d.confidence, 4),
                                                        reliable=d.reliable) for d in ds] for ds in found])


@router.get("/languages", response_model=LanguagesResponse)
async def languages(registry: RegistryDep) -> LanguagesResponse:
    """The languages and the language pairs that the loaded models serve."""
    pairs = [route.language_pair() for route in registry.routes.values()]
    codes = list(dict.fromkeys(code for pair in pairs for code in (pair.source, pair.target)))
    return LanguagesResponse(languages=[Language(code=c, name=language_name(c)) for c in codes], pairs=pairs)


@router.get("/health", response_model=HealthResponse, tags=["operations"])
async def health() -> HealthResponse:
    """Liveness: the process answers (also while a batch is being decoded). Served by app/liveness.py before
    the app; this route documents it and answers the same."""
    return HealthResponse(status="ok")


@router.get("/ready", response_model=ReadyResponse, tags=["operations"], responses=error_responses(503))
async def ready(registry: RegistryDep) -> ReadyResponse:
    """Readiness: 200 once at least one model is loaded, 503 otherwise."""
    if not registry.loaded:
        raise ApiError(503, "not_ready", "models are still loading", {"Retry-After": "5"})
    require_models(registry)
    return ReadyResponse(status="ready", models=len(registry.models), broken=registry.broken)


@router.get("/metrics", response_class=PlainTextResponse, tags=["operations"],
            responses={401: {"model": ErrorResponse, "description": "RNNMT_METRICS_TOKEN is set and the request "
                                 "does not carry it"}})
async def metrics(request: Request, registry: RegistryDep, metrics: MetricsDep,
                  settings: SettingsDep) -> PlainTextResponse:
    """Prometheus metrics (text exposition format 0.0.4), of every worker; with RNNMT_METRICS_TOKEN set, only
    for 'Authorization: Bearer <token>'."""
    if settings.metrics_token and not authorized(request.headers.get("authorization"), settings.metrics_token):
        raise ApiError(401, "unauthorized", "GET /metrics needs 'Authorization: Bearer <metrics token>'",
                       {"WWW-Authenticate": "Bearer"})
    registry.update_queue_metrics()
    return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
