"""The API contract: schemathesis (4.x) against a real `rnnmt serve` with the tiny en->de model, both faces.

The run is what `st run http://HOST/openapi.json --checks all` does (examples, coverage and fuzzing phases; positive
and negative data; every check), through schemathesis's engine, with a fixed seed, derandomized, and at most
MAX_EXAMPLES generated cases per operation. Two settings of the checks say how this API answers:
- negative data: 413 is how the service rejects a text over max_chars or more than max_texts texts (the schema
  states both limits), so it counts as a rejection like 400 and 422;
- positive data: a schema-valid request may get a documented 400/415 that JSON Schema cannot state, and only those
  (DOCUMENTED_REJECTIONS): source "auto" with a text that has no letters of a served language, and a document whose
  file name or content is not a supported document. An unsupported pair, an empty text or a wrong type is never one.
(schemathesis.pytest.from_fixture fails on pytest 9.2, `'Function' object has no attribute '_nodeid'`, hence the
engine.)
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import schemathesis
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.engine import Status, events, from_schema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.bench_serve import running_server
from app.openapi import NOT_BLANK, declare_languages
from tests.app.conftest import SERVER_ENV, wait_ready

SEED = 19
MAX_EXAMPLES = 50
MAX_CHARS, MAX_TEXTS = 200, 4  # small limits: the schema must carry them, and the decodes stay short
FACES = {"native": {"exclude": "^/libretranslate"}, "libretranslate": {"include": "^/libretranslate"}}
DOCUMENTED_REJECTIONS = {  # error code -> the operations that may answer it to schema-valid data
    "language_not_detected": ("/translate", "/libretranslate/translate", "/translate_file",
                              "/libretranslate/translate_file"),
    "unsupported_file_type": ("/translate_file", "/libretranslate/translate_file"),
    "invalid_encoding": ("/translate_file", "/libretranslate/translate_file"),
    "invalid_document": ("/translate_file", "/libretranslate/translate_file"),
}


@schemathesis.check
def positive_data_acceptance_documented(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                                        case: schemathesis.Case) -> bool | None:
    """schemathesis's positive_data_acceptance, except for the DOCUMENTED_REJECTIONS."""
    if response.status_code in (400, 415):
        try:
            code = json.loads(response.content)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        if case.operation.path in DOCUMENTED_REJECTIONS.get(code, ()):
            return None
    return positive_data_acceptance(ctx, response, case)


@pytest.fixture(scope="module")
def contract_url(served_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {**SERVER_ENV, "RNNMT_MAX_CHARS": str(MAX_CHARS), "RNNMT_MAX_TEXTS": str(MAX_TEXTS),
           "RNNMT_FILES_DIR": str(tmp_path_factory.mktemp("contract-files"))}
    log = tmp_path_factory.mktemp("contract-log") / "serve.log"
    with running_server(served_models_dir, env, log_file=log, access_log=False) as url:
        wait_ready(url)
        yield url


def run_schemathesis(url: str, face: str) -> tuple[Counter[str], list[str]]:
    """(check results by status, one line per distinct failure) of a run over one face's operations."""
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"deterministic": True, "max-examples": MAX_EXAMPLES},
        "checks": {
            "positive_data_acceptance": {"enabled": False},  # replaced by positive_data_acceptance_documented
            "negative_data_rejection": {"expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]},
        },
    })
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    schema = schema.include(path_regex=FACES[face]["include"]) if "include" in FACES[face] else \
        schema.exclude(path_regex=FACES[face]["exclude"])
    results: Counter[str] = Counter()
    failures: dict[str, None] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    results[check.status.value] += 1
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        body = event.recorder.cases[case_id].value.body
                        interaction = event.recorder.interactions.get(case_id)
                        answer = interaction.response if interaction else None
                        got = f"{answer.status_code} {answer.content[:300]!r}" if answer else "no response"
                        line = f"{event.recorder.label}: {failure.title}: {' / '.join(failure.message.splitlines())}"
                        failures.setdefault(f"{line}\n    body: {body!r:.300}\n    got: {got}")
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            failures.setdefault(f"error: {getattr(event, 'label', '')} {getattr(event, 'value', '')!r:.500}"
                                f"{getattr(event, 'exception', '')!r:.500}")
    return results, list(failures)


@pytest.mark.parametrize("face", FACES)
def test_schemathesis_finds_no_failure(contract_url: str, face: str) -> None:
    results, failures = run_schemathesis(contract_url, face)
    assert results[Status.SUCCESS.value] > 100, results  # the checks ran
    assert not failures, f"{len(failures)} distinct failures ({dict(results)}):\n" + "\n".join(failures)


def test_schema_declares_the_served_languages_and_the_limits(contract_url: str) -> None:
    schema = httpx.get(f"{contract_url}/openapi.json").json()
    body = schema["components"]["schemas"]["TranslateRequest"]["properties"]
    assert body["source"]["enum"] == ["en", "auto"] and body["target"]["enum"] == ["de"]
    text, texts = body["text"]["anyOf"]
    assert (text["minLength"], text["maxLength"], text["pattern"]) == (1, MAX_CHARS, NOT_BLANK)
    assert (texts["minItems"], texts["maxItems"], texts["items"]["maxLength"]) == (1, MAX_TEXTS, MAX_CHARS)
    assert body["return_attention"]["type"] == "boolean"
    libre = schema["paths"]["/libretranslate/translate"]["post"]["requestBody"]["content"]
    for media in ("application/json", "application/x-www-form-urlencoded"):
        assert libre[media]["schema"]["properties"]["target"]["enum"] == ["de"]
    for status in ("400", "401", "403", "413", "422", "429", "503"):
        assert schema["paths"]["/translate"]["post"]["responses"][status]["content"]["application/json"]


def test_strict_json_types_lax_libretranslate_forms(contract_url: str) -> None:
    pair = {"source": "en", "target": "de"}
    with httpx.Client(base_url=contract_url, timeout=60.0) as http:
        attention = http.post("/translate", json={"text": "one two", **pair, "return_attention": 0})
        assert attention.status_code == 422 and "return_attention" in attention.json()["error"]["message"]
        assert http.post("/translate", json={"text": "one", **pair, "beam_size": "3"}).status_code == 422
        assert http.post("/libretranslate/translate", json={"q": "one", **pair, "alternatives": "1"}).status_code == 422
        form = http.post("/libretranslate/translate", data={"q": "one two", **pair, "alternatives": "1"})
        assert form.status_code == 200 and len(form.json()["alternatives"]) == 1


def test_n_best_widens_the_beam(contract_url: str) -> None:
    """n_best > beam_size is valid by the schema, so it is served: the beam is widened to n_best."""
    body = {"text": "three one four", "source": "en", "target": "de", "beam_size": 1, "n_best": 3}
    answer = httpx.post(f"{contract_url}/translate", json=body, timeout=60.0)
    assert answer.status_code == 200
    assert len(answer.json()["translations"][0]["alternatives"]) == 3


def test_pairs_are_declared_when_enums_alone_would_allow_more() -> None:
    """en<->de served both ways: en->en and de->de are schema-invalid; with source auto any target is valid."""
    body = {"type": "object", "properties": {"source": {"type": "string"}, "target": {"type": "string"}}}
    declare_languages(body, [("de", "en"), ("en", "de")])
    valid = jsonschema.Draft202012Validator(body).is_valid
    assert valid({"source": "en", "target": "de"}) and valid({"source": "de", "target": "en"})
    assert valid({"source": "auto", "target": "en"})
    assert not valid({"source": "en", "target": "en"}) and not valid({"source": "fr", "target": "de"})


def test_not_blank_pattern_is_what_the_server_calls_blank() -> None:
    """check_texts rejects a text when text.strip() is empty: the pattern matches every other character."""
    pattern = re.compile(NOT_BLANK)
    assert [c for c in map(chr, range(sys.maxunicode + 1)) if bool(pattern.match(c)) == c.isspace()] == []
