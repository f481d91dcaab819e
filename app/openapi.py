"""The published OpenAPI schema, completed from the loaded models and the settings, so that what it calls valid
the server accepts and what it calls invalid the server rejects (tests/app/test_contract.py checks this with
schemathesis against a real server).

FastAPI builds the schema from the pydantic models, which know neither the languages of the loaded models nor the
limits in the settings. Once the models are loaded, every request body (JSON, form or multipart) gets:
- `source`: an enum of the served source languages and "auto"; `target`: an enum of the served targets; and, when
  the served pairs are not every source with every target, an `anyOf` that lists each source's targets;
- `text` / `q`: at least one character that is not white space (NOT_BLANK) and at most max_chars characters; a
  list of them has 1 to max_texts items.
Before the models are loaded the schema is served without them and not cached.

What JSON Schema cannot state stays in the descriptions and the declared 400s: with source "auto" a text needs
letters of a served language to be detected, and a document's type comes from its file name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI

from app.settings import Settings

AUTO = "auto"
TEXT_FIELDS = ("text", "q")
# A character that is not white space by str.isspace, which check_texts uses (`\S` would differ: ECMA's \s, which
# JSON Schema's patterns use, leaves out \x1c-\x1f and \x85 and adds \ufeff).
NOT_BLANK = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"

JsonSchema = dict[str, Any]


def published_openapi(app: FastAPI) -> JsonSchema:
    """app.openapi: FastAPI's schema plus the languages and limits of this server (cached once models are loaded)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = FastAPI.openapi(app)  # builds and caches
    registry = app.state.registry
    if not registry.loaded:
        app.openapi_schema = None  # built again once the models are loaded
        return schema
    pairs = sorted(registry.routes)
    for body in request_bodies(schema):
        declare_limits(body, app.state.settings)
        if pairs:
            declare_languages(body, pairs)
    return schema


def request_bodies(schema: JsonSchema) -> Iterable[JsonSchema]:
    """Every request body's object schema ($refs resolved), once each."""
    components = schema.get("components", {}).get("schemas", {})
    seen: set[int] = set()
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                body = media.get("schema", {})
                if "$ref" in body:
                    body = components[body["$ref"].rsplit("/", 1)[-1]]
                if id(body) not in seen and "properties" in body:
                    seen.add(id(body))
                    yield body


def declare_limits(body: JsonSchema, settings: Settings) -> None:
    """Texts: not blank and at most max_chars characters; lists of texts: 1 to max_texts items."""
    for name in TEXT_FIELDS:
        field = body["properties"].get(name)
        if field is None:
            continue
        for branch in field.get("anyOf", [field]):
            if branch.get("type") == "array":
                branch.update(minItems=1, maxItems=settings.max_texts)
                branch = branch["items"]
            if branch.get("type") == "string":
                branch.update(minLength=1, maxLength=settings.max_chars, pattern=NOT_BLANK)


def declare_languages(body: JsonSchema, pairs: list[tuple[str, str]]) -> None:
    """source/target enums from the served pairs; the pairs themselves when enums alone would allow more."""
    properties = body["properties"]
    sources = sorted({source for source, _ in pairs})
    targets = sorted({target for _, target in pairs})
    if "source" in properties:
        language_field(properties["source"], [*sources, AUTO])
    if "target" in properties:
        language_field(properties["target"], targets)
    if "source" in properties and "target" in properties and len(pairs) < len(sources) * len(targets):
        body["anyOf"] = [{"properties": {"source": {"const": source},
                                         "target": {"enum": [t for s, t in pairs if s == source]}}}
                         for source in sources] + [{"properties": {"source": {"const": AUTO}}}]


def language_field(field: JsonSchema, codes: list[str]) -> None:
    """A language code field: one of `codes` (examples of other languages dropped; length limits implied)."""
    for key in ("minLength", "maxLength", "examples", "anyOf"):
        field.pop(key, None)
    field.update(type="string", enum=codes)
