"""The HTTP service end to end: a real server subprocess (see conftest.py) serving the tiny en->de model,
which translates English number words into reversed German ("three one four" -> "vier eins drei")."""

from __future__ import annotations

import asyncio
import random
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import TEST_BLEU
from tests.conftest import EN

PAIR = {"source": "en", "target": "de"}


def translate(client: httpx.Client, text: str | list[str], **options) -> dict:
    response = client.post("/translate", json={"text": text, **PAIR, **options})
    assert response.status_code == 200, response.text
    return response.json()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def test_translate_one_text(client: httpx.Client) -> None:
    body = translate(client, "three one four")
    item = body["translations"][0]
    assert item["text"] == "vier eins drei"
    assert item["score"] is None
    assert item["alternatives"] == [{"text": "vier eins drei", "score": None, "attention": None}]
    model = body["model"]
    assert (model["name"], model["source"], model["target"]) == ("tiny-en-de", "en", "de")
    assert model["architecture"]["cell"] == "gru" and model["parameters"] > 0
    assert body["timing_ms"] > 0


def test_translate_list_keeps_order(client: httpx.Client) -> None:
    body = translate(client, ["one two", "five six seven", "nine"], beam_size=1)
    assert [t["text"] for t in body["translations"]] == ["zwei eins", "sieben sechs fünf", "neun"]


def test_n_best_with_scores(client: httpx.Client) -> None:
    item = translate(client, "two eight five", beam_size=4, n_best=3, return_scores=True)["translations"][0]
    alternatives = item["alternatives"]
    assert len(alternatives) == 3
    assert alternatives[0]["text"] == item["text"] == "fünf acht zwei"
    assert item["score"] == alternatives[0]["score"]
    scores = [a["score"] for a in alternatives]
    assert all(s <= 0 for s in scores) and scores == sorted(scores, reverse=True)
    assert len({a["text"] for a in alternatives}) == 3


def test_attention_matches_pieces(client: httpx.Client) -> None:
    body = translate(client, "six four\nzero one nine", n_best=2, return_attention=True)
    for alternative in body["translations"][0]["alternatives"]:
        attention = alternative["attention"]
        assert len(attention) == 2  # one per sentence
        for sentence in attention:
            assert sentence["source_pieces"][-1] == sentence["target_pieces"][-1] == "</s>"
            assert len(sentence["weights"]) == len(sentence["target_pieces"])
            for row in sentence["weights"]:
                assert len(row) == len(sentence["source_pieces"])
                assert sum(row) == pytest.approx(1.0, abs=1e-3)


def test_paragraph_keeps_whitespace_and_joins_n_best(client: httpx.Client) -> None:
    text = "  one two\n\nthree four  \n"
    body = translate(client, text, beam_size=3, n_best=2, return_scores=True)
    item = body["translations"][0]
    assert item["text"] == "  zwei eins\n\nvier drei  \n"
    first = translate(client, "one two", beam_size=3, n_best=2, return_scores=True)["translations"][0]
    second = translate(client, "three four", beam_size=3, n_best=2, return_scores=True)["translations"][0]
    for k, alternative in enumerate(item["alternatives"]):
        parts = (first["alternatives"][k], second["alternatives"][k])
        assert alternative["text"] == f"  {parts[0]['text']}\n\n{parts[1]['text']}  \n"
        assert alternative["score"] == pytest.approx(parts[0]["score"] + parts[1]["score"], abs=1e-4)


def test_languages(client: httpx.Client) -> None:
    body = client.get("/languages").json()
    assert {(lang["code"], lang["name"]) for lang in body["languages"]} == {("en", "English"), ("de", "German")}
    (pair,) = body["pairs"]
    assert (pair["source"], pair["target"], pair["model"]) == ("en", "de", "tiny-en-de")
    assert pair["bleu"] == TEST_BLEU and pair["parameters"] > 0 and pair["architecture"]["attention"] == "bahdanau"


def test_health_and_ready(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "models": 1, "broken": {}}


def test_libretranslate(client: httpx.Client) -> None:
    one = client.post("/libretranslate/translate", json={"q": "three one", **PAIR, "format": "text"})
    assert one.json() == {"translatedText": "eins drei"}
    many = client.post("/libretranslate/translate", json={"q": ["one two", "four"], **PAIR, "alternatives": 1})
    assert many.json()["translatedText"] == ["zwei eins", "vier"]
    assert [len(a) for a in many.json()["alternatives"]] == [1, 1]
    form = client.post("/libretranslate/translate", data={"q": "five six", "source": "auto", "target": "de"})
    assert form.json()["translatedText"] == "sechs fünf"
    assert form.json()["detectedLanguage"]["language"] == "en"
    assert client.get("/libretranslate/languages").json() == [{"code": "en", "name": "English", "targets": ["de"]}]
    bad = client.post("/libretranslate/translate", json={"q": "one", "source": "de", "target": "en"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unsupported_pair"
    empty = client.post("/libretranslate/translate", json={"q": " ", **PAIR})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "empty_text"


JSON = {"content-type": "application/json"}
BAD_REQUESTS = [
    ("empty text", {"json": {"text": "", **PAIR}}, 422, "empty_text"),
    ("blank text", {"json": {"text": " \n ", **PAIR}}, 422, "empty_text"),
    ("empty list", {"json": {"text": [], **PAIR}}, 422, "empty_text"),
    ("blank item", {"json": {"text": ["one", ""], **PAIR}}, 422, "empty_text"),
    ("too long", {"json": {"text": "one " * 1300, **PAIR}}, 413, "text_too_long"),
    ("too many", {"json": {"text": ["one"] * 65, **PAIR}}, 413, "too_many_texts"),
    ("unknown pair", {"json": {"text": "one", "source": "fr", "target": "de"}}, 400, "unsupported_pair"),
    ("beam 0", {"json": {"text": "one", **PAIR, "beam_size": 0}}, 422, "validation_error"),
    ("beam 17", {"json": {"text": "one", **PAIR, "beam_size": 17}}, 422, "validation_error"),
    ("beam text", {"json": {"text": "one", **PAIR, "beam_size": "wide"}}, 422, "validation_error"),
    ("bool as 0", {"json": {"text": "one", **PAIR, "return_attention": 0}}, 422, "validation_error"),
    ("text number", {"json": {"text": 5, **PAIR}}, 422, "validation_error"),
    ("text list of numbers", {"json": {"text": ["one", 2], **PAIR}}, 422, "validation_error"),
    ("bool field", {"json": {"text": "one", **PAIR, "return_scores": "maybe"}}, 422, "validation_error"),
    ("max_length 0", {"json": {"text": "one", **PAIR, "max_length": 0}}, 422, "validation_error"),
    ("no source", {"json": {"text": "one", "target": "de"}}, 422, "validation_error"),
    ("array body", {"json": ["one"]}, 422, "validation_error"),
    ("no body", {"headers": JSON}, 422, "validation_error"),
    ("malformed json", {"content": b'{"text": "one",', "headers": JSON}, 400, "malformed_json"),
    ("body too large", {"content": b'{"text": "' + b"one " * 600_000 + b'", "source": "en", "target": "de"}',
                        "headers": JSON}, 413, "payload_too_large"),
    ("not utf-8", {"content": b'{"text": "\xff\xfe one", "source": "en", "target": "de"}', "headers": JSON}, 400,
     "invalid_encoding"),
]


@pytest.mark.parametrize(("case", "request_kwargs", "status", "code"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_input_gives_json_error(client: httpx.Client, case: str, request_kwargs: dict, status: int,
                                    code: str) -> None:
    response = client.post("/translate", **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    if code == "unsupported_pair":
        assert "en-de" in error["message"]
    assert client.get("/health").status_code == 200
    assert translate(client, "seven")["translations"][0]["text"] == "sieben"


def test_unknown_route_and_method(client: httpx.Client) -> None:
    assert client.get("/nope").json()["error"]["code"] == "not_found"
    response = client.get("/translate")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_metrics_move(client: httpx.Client) -> None:
    before = client.get("/metrics").text
    translate(client, "eight eight one")
    translate(client, "eight eight one")  # the second one comes from the cache
    client.post("/translate", json={"text": "", **PAIR})
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    total = "rnnmt_http_requests_total"
    ok = {"route": "/translate", "method": "POST", "status": "200"}
    assert metric(after.text, total, **ok) == metric(before, total, **ok) + 2
    bad = {"route": "/translate", "method": "POST", "status": "422"}
    assert metric(after.text, total, **bad) == metric(before, total, **bad) + 1
    for name, labels in [("rnnmt_cache_lookups_total", {"result": "hit"}),
                         ("rnnmt_tokens_translated_total", {"model": "tiny-en-de"}),
                         ("rnnmt_sentences_translated_total", {"model": "tiny-en-de"}),
                         ("rnnmt_batch_sentences_count", {"model": "tiny-en-de"}),
                         ("rnnmt_http_request_duration_seconds_count", {"route": "/translate"})]:
        assert metric(after.text, name, **labels) > metric(before, name, **labels), name
    assert 'rnnmt_queue_depth{model="tiny-en-de"} 0' in after.text
    assert metric(after.text, "rnnmt_models_loaded") == 1


def test_concurrent_requests_equal_single_requests(client: httpx.Client, server_url: str) -> None:
    rng = random.Random(7)
    texts = [" ".join(rng.choice(EN) for _ in range(rng.randint(2, 6))) for _ in range(32)]
    options = {"beam_size": 3, "n_best": 2, "return_scores": True}
    single = [translate(client, text, **options)["translations"][0] for text in texts]
    before = client.get("/metrics").text

    async def all_at_once() -> list[dict]:
        async with httpx.AsyncClient(base_url=server_url, timeout=60.0) as http:
            # return_attention changes the cache key but not the search: the batcher must answer these.
            responses = await asyncio.gather(*(http.post("/translate", json={"text": t, **PAIR, **options,
                                                                              "return_attention": True})
                                               for t in texts))
        return [r.json()["translations"][0] for r in responses]

    together = asyncio.run(all_at_once())
    for one, many in zip(single, together):
        assert [a["text"] for a in many["alternatives"]] == [a["text"] for a in one["alternatives"]]
        assert [a["score"] for a in many["alternatives"]] == pytest.approx([a["score"] for a in one["alternatives"]],
                                                                            abs=1e-4)
    after = client.get("/metrics").text
    labels = {"model": "tiny-en-de"}
    calls = metric(after, "rnnmt_batch_sentences_count", **labels) - metric(before, "rnnmt_batch_sentences_count",
                                                                           **labels)
    sentences = metric(after, "rnnmt_batch_sentences_sum", **labels) - metric(before, "rnnmt_batch_sentences_sum",
                                                                             **labels)
    assert sentences == 32 and calls < 32  # some requests shared a decode call


def test_health_answers_during_a_long_decode(client: httpx.Client, server_url: str) -> None:
    rng = random.Random(3)
    texts = ["\n".join(" ".join(rng.choice(EN) for _ in range(6)) for _ in range(40)) for _ in range(16)]

    async def probe() -> tuple[float, int]:
        async with httpx.AsyncClient(base_url=server_url, timeout=120.0) as http:
            big = asyncio.ensure_future(http.post("/translate", json={"text": texts, **PAIR, "beam_size": 16,
                                                                       "n_best": 4}))
            await asyncio.sleep(0.3)
            start = time.perf_counter()
            health = await http.get("/health")
            waited = time.perf_counter() - start
            response = await big
            assert response.status_code == 200
        return waited, health.status_code

    waited, status = asyncio.run(probe())
    assert status == 200 and waited < 2.0


def test_openapi_has_examples(client: httpx.Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["TranslateRequest"]["examples"][0]["text"]
    assert "TranslateResponse" in schemas and "ErrorResponse" in schemas


def test_root_serves_the_page_or_points_to_docs(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    if (Path(__file__).resolve().parents[2] / "app" / "static" / "index.html").is_file():
        assert response.headers["content-type"].startswith("text/html")
    else:
        assert response.json()["docs"] == "/docs"


def test_client_disconnect_drops_its_queued_sentences(client: httpx.Client, server_url: str) -> None:
    rng = random.Random(11)
    # 64 texts (the most a request may have) x 60 lines: more than a fast CPU decodes before the client gives up
    # (16 texts were all decoded within the 0.3 s on an AVX-512 Zen 5)
    texts = ["\n".join(" ".join(rng.choice(EN) for _ in range(6)) for _ in range(60)) for _ in range(64)]
    before = client.get("/metrics").text
    with pytest.raises(httpx.TimeoutException):  # the client gives up and closes the connection
        httpx.post(f"{server_url}/translate", json={"text": texts, **PAIR, "beam_size": 16}, timeout=0.3)
    deadline = time.monotonic() + 30
    while True:
        after = client.get("/metrics").text
        cancelled = metric(after, "rnnmt_requests_rejected_total", reason="cancelled") - metric(
            before, "rnnmt_requests_rejected_total", reason="cancelled")
        if cancelled == 1 and metric(after, "rnnmt_queue_depth", model="tiny-en-de") == 0:
            break
        assert time.monotonic() < deadline, "the abandoned request was not cancelled"
        time.sleep(0.1)
    time.sleep(0.5)  # let the batch that was already decoding finish
    after = client.get("/metrics").text
    decoded = metric(after, "rnnmt_sentences_translated_total", model="tiny-en-de") - metric(
        before, "rnnmt_sentences_translated_total", model="tiny-en-de")
    assert decoded < len(texts) * 60
    assert translate(client, "four")["translations"][0]["text"] == "vier"


def test_a_request_partly_in_the_cache(client: httpx.Client) -> None:
    """One sentence cached, one not: both translated (a partial hit used to fail with a 500)."""
    body = {"source": "en", "target": "de", "beam_size": 2}
    alone = client.post("/translate", json={**body, "text": "seven eight nine"}).json()["translations"][0]["text"]
    both = client.post("/translate", json={**body, "text": ["seven eight nine", "three two one zero"]})
    assert both.status_code == 200
    assert both.json()["translations"][0]["text"] == alone and both.json()["translations"][1]["text"]
