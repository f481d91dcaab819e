"""Document translation over HTTP, on both faces (the documents themselves: app/documents/).

POST /translate_file (native) takes a multipart form with `file`, `target` and `source` (a language code, or
"auto" to detect the language of the document's text) and answers the translated file itself, as an attachment
with the same file name and its content type (X-Detected-Language tells what "auto" found).

POST /libretranslate/translate_file is LibreTranslate's: the same form plus an optional `api_key`; it answers
{"translatedFileUrl": ".../libretranslate/download_file/<uuid>.<file name>"}, an absolute URL from the request's
base URL, and GET /libretranslate/download_file/<uuid>.<file name> serves the file as an attachment named
<file name> (LibreTranslate's URL shape and download name). A stored file is written atomically (a temporary
file, then a rename) into RNNMT_FILES_DIR (default <system temp>/rnnmt-files, shared by the workers of one host)
and deleted RNNMT_FILE_TTL_S seconds later: by a timer in the process that stored it, and by the sweep every
request of this router makes (which also catches files left behind by a process that stopped).

Both check API keys and quotas like /translate; the characters spent are those of the document's text. Limits:
RNNMT_MAX_FILE_BYTES (413), RNNMT_MAX_FILE_CHARS (413); unsupported types get 415, unreadable files 400. Nothing
is stored for a request that fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
import time
import unicodedata
import uuid
from functools import partial
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from app.access import Access, Caller
from app.dependencies import AccessDep, RegistryDep, ServiceDep, SettingsDep, require_models, unless_disconnected
from app.documents import (
    CONTENT_TYPES,
    SUPPORTED_EXTENSIONS,
    Document,
    DocumentError,
    DocumentLimits,
    Translators,
    check_type,
    content_type,
    open_document,
    translate_units,
)
from app.errors import ApiError
from app.registry import ModelRegistry, Route
from app.schemas import ERROR_RESPONSES, DecodeOptions, error_responses
from app.service import TranslationService, check_detected
from app.settings import Settings
from model.atomic import atomic_write
from model.errors import WriteError

log = logging.getLogger(__name__)

router = APIRouter(tags=["documents"])

STORED_NAME = re.compile(r"[0-9a-f]{32}\.[A-Za-z0-9_][A-Za-z0-9_.-]*")
FILE_HELP = f"the document: {', '.join(SUPPORTED_EXTENSIONS)}"
FILE_ERRORS = {**ERROR_RESPONSES, **error_responses(415)}
DOCUMENT = {200: {"description": "the translated document",
                  "content": {media.split(";")[0]: {} for media in CONTENT_TYPES.values()}}}


# --- the translation both faces share ------------------------------------------------------------------------------


def upload_name(file: UploadFile) -> str:
    """The uploaded file's own name, without any folder a client put in front of it."""
    name = (file.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name:
        raise DocumentError(400, "missing_file_name", "the uploaded file has no name; send it with its file name "
                            "(the extension says what kind of document it is)")
    return name


async def read_upload(file: UploadFile, settings: Settings) -> tuple[str, bytes]:
    name = upload_name(file)
    check_type(name)  # the 415 before the file is read
    return name, await file.read(settings.max_file_bytes + 1)


async def document_route(document: Document, source: str, target: str, service: TranslationService,
                         registry: ModelRegistry) -> tuple[Route, str | None]:
    """The route to translate along, and the detected language when source is "auto"."""
    if source != "auto":
        return registry.route(source, target), None
    sample = document.sample()
    found = check_detected([sample], await service.detect([sample]))[0]
    return registry.route(found.language, target, detected=True), found.language


async def translate_upload(request: Request, file: UploadFile, source: str, target: str, access: Access,
                           caller: Caller, service: TranslationService, registry: ModelRegistry,
                           settings: Settings) -> tuple[str, bytes, dict[str, str]]:
    """(file name, translated file, headers for the answer: quotas, the detected language)."""
    require_models(registry)
    name, data = await read_upload(file, settings)
    document = await asyncio.to_thread(open_document, data, name, DocumentLimits.from_settings(settings))
    if not document.units:  # nothing to translate: the file comes back as it was (after the pair is checked)
        if source != "auto":
            registry.route(source, target)
        return name, data, await access.spend(caller, 0)
    route, detected = await document_route(document, source, target, service, registry)
    headers = await access.spend(caller, document.chars)
    if detected:
        headers["X-Detected-Language"] = detected
    translators = Translators.from_service(service, route, DecodeOptions(), caller.client)
    translations = await unless_disconnected(request, translate_units(document.units, translators))
    return name, await asyncio.to_thread(document.render, translations), headers


def attachment(name: str) -> str:
    """Content-Disposition for a download named `name` (RFC 6266: other names as filename*, with an ASCII one
    for old clients)."""
    quoted = quote(name)
    if quoted == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{safe_name(name)}\"; filename*=utf-8''{quoted}"


# --- the native face ---------------------------------------------------------------------------------------------


@router.post("/translate_file", response_class=Response, responses={**FILE_ERRORS, **DOCUMENT})
async def translate_file(request: Request, file: Annotated[UploadFile, File(description=FILE_HELP)],
                         target: Annotated[str, Form(description="target language code")],
                         service: ServiceDep, registry: RegistryDep, settings: SettingsDep, access: AccessDep,
                         source: Annotated[str, Form(description="source language code, or auto")] = "auto",
                         ) -> Response:
    """Translate a document; the answer is the translated document, with the same name and type."""
    caller = access.identify(request)
    name, data, headers = await translate_upload(request, file, source, target, access, caller, service, registry,
                                               settings)
    return Response(data, media_type=content_type(name), headers={**headers, "Content-Disposition": attachment(name)})


# --- LibreTranslate's face ---------------------------------------------------------------------------------------


def files_dir(settings: Settings) -> Path:
    folder = settings.files_dir or Path(tempfile.gettempdir()) / "rnnmt-files"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def sweep(folder: Path, ttl_s: float, now: float | None = None) -> int:
    """Delete the files of `folder` older than ttl_s seconds (stale temporary files too); how many went."""
    now = time.time() if now is None else now
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and now - entry.stat().st_mtime > ttl_s:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:  # another worker swept it first
                pass
    return removed


def safe_name(name: str) -> str:
    """An ASCII file name for URLs and folders: 'Bericht (v2) ü.docx' -> 'Bericht_v2_u.docx'."""
    stem, ext = os.path.splitext(name)
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._-") or "document"
    return stem + re.sub(r"[^a-z0-9.]", "", ext.lower())


def store(folder: Path, name: str, data: bytes) -> str:
    """Write `data` as <uuid>.<safe name> atomically (no reader ever sees half a file); the stored name."""
    stored = f"{uuid.uuid4().hex}.{safe_name(name)}"
    try:
        atomic_write(folder / stored, data)
    except WriteError as exc:  # the disk is full: say so, without the server's paths
        log.error("%s", exc)
        raise ApiError(507, "insufficient_storage", "the server has no room to store the translated document") \
            from None
    return stored


@router.post("/libretranslate/translate_file", tags=["libretranslate"], responses=FILE_ERRORS)
async def libretranslate_translate_file(
        request: Request, file: Annotated[UploadFile, File(description=FILE_HELP)],
        source: Annotated[str, Form(description="source language code, or auto")],
        target: Annotated[str, Form(description="target language code")],
        service: ServiceDep, registry: RegistryDep, settings: SettingsDep, access: AccessDep,
        api_key: Annotated[str | None, Form()] = None) -> JSONResponse:
    """LibreTranslate's /translate_file: {"translatedFileUrl"} to GET the translated document from."""
    caller = access.identify(request, api_key)
    folder = files_dir(settings)
    await asyncio.to_thread(sweep, folder, settings.file_ttl_s)
    name, data, headers = await translate_upload(request, file, source, target, access, caller, service, registry,
                                               settings)
    stored = await asyncio.to_thread(store, folder, name, data)
    asyncio.get_running_loop().call_later(settings.file_ttl_s, partial((folder / stored).unlink, missing_ok=True))
    url = request.url_for("libretranslate_download_file", filename=stored)
    return JSONResponse({"translatedFileUrl": str(url)}, headers=headers)


@router.get("/libretranslate/download_file/{filename}", name="libretranslate_download_file",
            tags=["libretranslate"], response_class=Response, responses={**error_responses(404), **DOCUMENT})
async def libretranslate_download_file(filename: str, settings: SettingsDep) -> Response:
    """A document translated by /libretranslate/translate_file, for file_ttl_s seconds."""
    folder = files_dir(settings)
    await asyncio.to_thread(sweep, folder, settings.file_ttl_s)
    gone = ApiError(404, "file_not_found", f"no translated file {filename!r}: translated files can be downloaded "
                    f"for {settings.file_ttl_s:g} s")
    if not STORED_NAME.fullmatch(filename):
        raise gone
    try:
        data = await asyncio.to_thread((folder / filename).read_bytes)
    except FileNotFoundError:
        raise gone from None
    name = filename.split(".", 1)[1]
    return Response(data, media_type=content_type(name), headers={"Content-Disposition": attachment(name)})
