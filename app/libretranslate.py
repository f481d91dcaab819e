"""A LibreTranslate-compatible subset under /libretranslate, so existing clients and plugins can use rnnmt.

POST /libretranslate/translate takes q (a string or a list), source, target, format, alternatives and api_key
(checked like the Authorization and X-API-Key headers), as JSON or as a form (application/x-www-form-urlencoded,
which LibreTranslate's own Python client sends), and answers {"translatedText": ...}. GET
/libretranslate/languages lists the source languages with their targets (pivoted pairs included), POST
/libretranslate/detect detects a text's language, GET /libretranslate/frontend/settings tells LibreTranslate's web
UI and clients the limits and whether a key is required. source "auto" detects each text's language, and
detectedLanguage carries the detector's confidence in percent (LibreTranslate's unit). Errors keep this service's
shape {"error": {"code", "message"}}.

Validation, where LibreTranslate is looser than a strict schema: form fields are all strings on the wire, so a form
body is validated in lax mode ("alternatives=2" is the integer 2, as LibreTranslate reads it); a JSON body is
validated strictly, as the published schema says ("alternatives": "2" is a 422). q may be a string or a list, in
JSON and in forms (q=...&q=... or q[]=...), as in LibreTranslate. An empty q is a 422 (LibreTranslate answers 400).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.dependencies import AccessDep, RegistryDep, ServiceDep, SettingsDep, require_models, unless_disconnected
from app.documents import SUPPORTED_EXTENSIONS
from app.errors import ApiError
from app.registry import language_name
from app.schemas import (
    ERROR_RESPONSES,
    DecodeOptions,
    LibreTranslateDetection,
    LibreTranslateDetectRequest,
    LibreTranslateFrontendSettings,
    LibreTranslateLanguage,
    LibreTranslateRequest,
    LibreTranslateResponse,
    error_responses,
)
from app.service import Content, check_texts

log = logging.getLogger(__name__)

router = APIRouter(prefix="/libretranslate", tags=["libretranslate"])
T = TypeVar("T", bound=BaseModel)

FORM = "application/x-www-form-urlencoded"
DETECT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": LibreTranslateDetectRequest.model_json_schema()},
    FORM: {"schema": LibreTranslateDetectRequest.model_json_schema()},
}}}
LT_ERRORS = {**ERROR_RESPONSES, **error_responses(415)}  # 415: a multipart body
REQUEST_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": LibreTranslateRequest.model_json_schema()},
    FORM: {"schema": LibreTranslateRequest.model_json_schema()},
}}}


async def read_fields(request: Request) -> tuple[dict[str, Any], bool]:
    """The request's fields from a JSON or a form-encoded body (strict UTF-8 either way), and whether it was JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("multipart/"):
        raise ApiError(415, "unsupported_media_type", f"send JSON or {FORM}, not {content_type}")
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_encoding", "request body is not valid UTF-8") from None
    if content_type == FORM:
        fields = parse_qs(text, keep_blank_values=True)
        single = {key: values[0] if len(values) == 1 and key != "q[]" else values for key, values in fields.items()}
        return single, False
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "the request body must be a JSON object")
    return data, True


def validate(model: type[T], fields: dict[str, Any], strict: bool) -> T:
    """The body as `model`, or the usual 422 (strict for JSON bodies, lax for forms: see the module)."""
    try:
        return model.model_validate(fields, strict=strict)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


@router.post("/translate", response_model=LibreTranslateResponse, response_model_exclude_none=True,
             responses=LT_ERRORS, openapi_extra=REQUEST_BODY)
async def translate(request: Request, response: Response, service: ServiceDep, registry: RegistryDep,
                    settings: SettingsDep, access: AccessDep) -> LibreTranslateResponse:
    """LibreTranslate's /translate: {"q", "source", "target"} -> {"translatedText"}."""
    fields, is_json = await read_fields(request)
    api_key = fields.get("api_key")
    caller = access.identify(request, api_key if isinstance(api_key, str) else None)
    if "q[]" in fields and "q" not in fields:
        fields["q"] = fields.pop("q[]")
    body = validate(LibreTranslateRequest, fields, strict=is_json)
    require_models(registry)
    texts = [body.q] if isinstance(body.q, str) else list(body.q)
    check_texts(texts, settings)
    auto = body.source == "auto"
    route = None if auto else registry.route(body.source, body.target)
    n_best = body.alternatives + 1
    options = DecodeOptions(n_best=n_best)  # the model's beam, widened to n_best
    response.headers.update(await access.spend(caller, sum(len(t) for t in texts)))
    content = Content(format=body.format)
    if route is None:
        work = service.translate_auto(texts, body.target, options, content, client=caller.client)
    else:
        work = service.translate_content(texts, route, options, content, client=caller.client)
    items = await unless_disconnected(request, work)
    translated = [item.text for item in items]
    alternatives = [[alt.text for alt in item.alternatives[1:]] for item in items] if body.alternatives else None
    detected = [{"language": d.language, "confidence": round(100.0 * d.confidence, 1)}
                for d in (item.detected_language for item in items) if d is not None] if auto else None
    if isinstance(body.q, str):
        return LibreTranslateResponse(translatedText=translated[0], alternatives=alternatives and alternatives[0],
                                      detectedLanguage=detected and detected[0])
    return LibreTranslateResponse(translatedText=translated, alternatives=alternatives, detectedLanguage=detected)


@router.post("/detect", response_model=list[LibreTranslateDetection], responses=LT_ERRORS,
             openapi_extra=DETECT_BODY)
async def detect(request: Request, response: Response, registry: RegistryDep, settings: SettingsDep,
                 access: AccessDep) -> list[LibreTranslateDetection]:
    """LibreTranslate's /detect: {"q"} -> [{"language", "confidence"}], best first, confidence in percent."""
    fields, is_json = await read_fields(request)
    api_key = fields.get("api_key")
    caller = access.identify(request, api_key if isinstance(api_key, str) else None)
    body = validate(LibreTranslateDetectRequest, fields, strict=is_json)
    require_models(registry)
    check_texts([body.q], settings)
    response.headers.update(await access.spend(caller, len(body.q)))
    detector = registry.detector
    assert detector is not None  # built with the models
    found = await asyncio.to_thread(detector.detect, body.q)
    return [LibreTranslateDetection(language=d.language, confidence=round(100.0 * d.confidence, 1)) for d in found]


@router.get("/languages", response_model=list[LibreTranslateLanguage])
async def languages(registry: RegistryDep) -> list[LibreTranslateLanguage]:
    """LibreTranslate's /languages: each source language with the targets it can be translated into."""
    targets: dict[str, list[str]] = {}
    for source, target in registry.routes:
        targets.setdefault(source, []).append(target)
    return [LibreTranslateLanguage(code=code, name=language_name(code), targets=sorted(tgts))
            for code, tgts in targets.items()]


@router.get("/frontend/settings", response_model=LibreTranslateFrontendSettings)
async def frontend_settings(registry: RegistryDep, settings: SettingsDep) -> LibreTranslateFrontendSettings:
    """LibreTranslate's /frontend/settings: limits, whether a key is required, and default languages."""
    pairs = list(registry.models)
    source, target = pairs[0] if pairs else ("en", "en")
    return LibreTranslateFrontendSettings(
        charLimit=settings.max_chars, frontendTimeout=500, apiKeys=True, keyRequired=settings.require_api_key,
        suggestions=False, filesTranslation=True, supportedFilesFormat=list(SUPPORTED_EXTENSIONS),
        language={"source": {"code": source, "name": language_name(source)},
                  "target": {"code": target, "name": language_name(target)}})
