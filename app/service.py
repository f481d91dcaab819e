"""Texts in, TranslationItems out: limits, language detection, sentence splitting, the cache, the batcher,
pivoting and reassembly.

Every sentence of every text of a request goes to the model's batcher in one submission (so a request's
sentences are decoded together with those of concurrent requests); cached sentences skip decoding. Each
text is rebuilt from its sentences' translations with its original whitespace; alternative k of a text
joins the k-th hypothesis of each of its sentences, its score is their sum. A pivoted pair (X -> en -> Y)
translates the texts with the first model (its best hypothesis, same beam size), then that English with the
second; the item keeps the English and the first leg's attention in `pivot`. With source "auto" each text is
detected on its own and the texts are translated in groups by detected language.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.alignment import Alignment, align_sentence, compose, concatenate, replace_terms
from app.batcher import QueueFullError
from app.cache import LRUCache
from app.documents.markup import html_text
from app.errors import ApiError
from app.markup import translate_html, translate_markdown
from app.metrics import Metrics
from app.protect import find_spans, load_glossaries, translate_protected
from app.registry import LoadedModel, ModelRegistry, Route
from app.schemas import Alternative, DecodeOptions, DetectedLanguage, PivotStep, SentenceAttention, TranslationItem
from app.segment import Segmented, split
from app.settings import Settings
from model.translator import Translation, TranslationHypothesis

log = logging.getLogger(__name__)

EOS_PIECE = "</s>"
EMPTY = TranslationHypothesis(text="", score=0.0, log_prob=0.0, tgt_pieces=[])
REJECT_REASONS = {"DeadlineExceededError": "deadline_exceeded", "CancelledError": "cancelled",
                  "BatcherClosedError": "shutting_down"}  # QueueFullError: its code (queue_full, overloaded)


def check_texts(texts: list[str], settings: Settings) -> None:
    """Reject empty requests and texts (422) and oversized ones (413)."""
    if not texts:
        raise ApiError(422, "empty_text", "text must be a non-empty string or a non-empty list of strings")
    if len(texts) > settings.max_texts:
        raise ApiError(413, "too_many_texts", f"{len(texts)} texts in one request; the limit is {settings.max_texts}")
    for i, text in enumerate(texts):
        where = "text" if len(texts) == 1 else f"text[{i}]"
        if not text.strip():
            raise ApiError(422, "empty_text", f"{where} is empty; send some text to translate")
        if len(text) > settings.max_chars:
            raise ApiError(413, "text_too_long",
                           f"{where} has {len(text)} characters; the limit is {settings.max_chars}")


def sentence_attention(src_pieces: list[str], hyp: TranslationHypothesis) -> SentenceAttention | None:
    """The hypothesis' attention with '</s>' appended to both piece lists (its EOS row and column)."""
    if hyp.attention is None:
        return None
    weights = [[round(w, 5) for w in row] for row in hyp.attention]  # (tgt + 1) x (src + 1)
    return SentenceAttention(source_pieces=[*src_pieces, EOS_PIECE], target_pieces=[*hyp.tgt_pieces, EOS_PIECE],
                             weights=weights)


def assemble(segmented: Segmented, translations: list[Translation], n_best: int, return_scores: bool,
             return_attention: bool) -> TranslationItem:
    """One text's TranslationItem from the translations of its sentences."""
    alternatives = []
    for k in range(n_best):
        hyps = [t.hypotheses[min(k, len(t.hypotheses) - 1)] if t.hypotheses else EMPTY for t in translations]
        attention = None
        if return_attention:
            per_sentence = [sentence_attention(t.src_pieces, h) for t, h in zip(translations, hyps)]
            attention = None if any(a is None for a in per_sentence) else per_sentence
        alternatives.append(Alternative(text=segmented.join([h.text for h in hyps]),
                                        score=sum(h.score for h in hyps) if return_scores else None,
                                        attention=attention))
    return TranslationItem(text=alternatives[0].text, score=alternatives[0].score, alternatives=alternatives)


@dataclass(frozen=True)
class Content:
    """What the texts of a request are and what must survive their translation."""

    format: str = "text"  # text | html | markdown
    glossary: dict[str, str] | None = None
    do_not_translate: list[str] | None = None


def plain_item(text: str, route: Route, unplaced: list[str] | None = None) -> TranslationItem:
    """An item with the best translation only (markup, protected spans): no scores, alternatives or attention."""
    return TranslationItem(text=text, alternatives=[Alternative(text=text)], models=route.model_names,
                           unplaced=unplaced)


def check_detected(texts: list[str], detections: list[DetectedLanguage | None]) -> list[DetectedLanguage]:
    """A 400 for a text whose language could not be detected (no letters of any served language)."""
    for i, found in enumerate(detections):
        if found is None:
            where = "text" if len(texts) == 1 else f"text[{i}]"
            raise ApiError(400, "language_not_detected", f"the language of {where} could not be detected (it has "
                           "no letters of a served language); pass the source language")
    return detections  # type: ignore[return-value]


class TranslationService:
    """The translation path shared by the native and the LibreTranslate routes."""

    def __init__(self, registry: ModelRegistry, settings: Settings, metrics: Metrics) -> None:
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self.cache: LRUCache[Translation] = LRUCache(settings.cache_size)
        self.glossaries = load_glossaries(settings.glossary_dir)

    async def detect(self, texts: list[str]) -> list[DetectedLanguage | None]:
        """The most likely served source language of each text (None when a text has no letters)."""
        detector = self.registry.detector
        if detector is None:
            raise ApiError(503, "not_ready", "no translation model is loaded, so no language can be detected",
                           {"Retry-After": "30"})
        found = await asyncio.to_thread(detector.detect_batch, texts)
        return [None if d is None else DetectedLanguage(language=d.language, confidence=round(d.confidence, 4),
                                                        reliable=d.reliable) for d in found]

    async def translate_auto(self, texts: list[str], target: str, options: DecodeOptions, content: Content,
                             return_scores: bool = False, client: str | None = None) -> list[TranslationItem]:
        """Detect each text's language, then translate the texts of each language along its route (a text in the
        target language already is returned unchanged, with no model)."""
        if content.format == "html":  # detect the language of the visible text, not of the tags
            detections = check_detected(texts, await self.detect([html_text(t) for t in texts]))
        else:
            detections = check_detected(texts, await self.detect(texts))
        groups: dict[str, list[int]] = {}
        for i, found in enumerate(detections):
            groups.setdefault(found.language, []).append(i)
        # A text already in the target language comes back as it is (as Google's and LibreTranslate's auto-detection
        # do): a page's texts, some in the reader's language, then translate without a 400 for the whole request.
        unchanged = groups.pop(target, [])
        routes = {lang: self.registry.route(lang, target, detected=True) for lang in groups}
        results = await asyncio.gather(*(self.translate_content([texts[i] for i in indices], routes[lang], options,
                                                                content, return_scores, client)
                                         for lang, indices in groups.items()))
        items: list[TranslationItem | None] = [None] * len(texts)
        for indices, translated in zip(groups.values(), results):
            for i, item in zip(indices, translated):
                items[i] = item.model_copy(update={"detected_language": detections[i]})
        for i in unchanged:
            items[i] = TranslationItem(text=texts[i], alternatives=[Alternative(text=texts[i])], models=[],
                                       detected_language=detections[i])
        return items  # type: ignore[return-value]

    async def translate_content(self, texts: list[str], route: Route, options: DecodeOptions, content: Content,
                                return_scores: bool = False, client: str | None = None) -> list[TranslationItem]:
        """A request's texts along one route: markup through app.markup, texts with protected spans or glossary
        terms through app.protect (both use the best hypothesis and its alignment), the others through
        `translate` (n-best, scores, attention)."""
        glossary, dnt = self.glossary(route, content), content.do_not_translate or ()
        aligned = self.aligned_with_terms(route, options, content, client)
        if content.format != "text":
            project = translate_html if content.format == "html" else translate_markdown
            outputs = await asyncio.gather(*(project(text, aligned) for text in texts))
            return [plain_item(text, route) for text in outputs]
        special = [k for k, text in enumerate(texts) if find_spans(text, dnt, glossary)]
        plain = sorted(set(range(len(texts))) - set(special))
        items: list[TranslationItem | None] = [None] * len(texts)
        if plain:
            found = await self.translate([texts[k] for k in plain], route, options, return_scores, client)
            for k, item in zip(plain, found):
                items[k] = item
        if special:
            restored = await translate_protected([texts[k] for k in special], aligned, dnt, glossary)
            for k, r in zip(special, restored):
                items[k] = plain_item(r.text, route, [slot.text for slot in r.unplaced] or None)
        return items  # type: ignore[return-value]

    def glossary(self, route: Route, content: Content) -> dict[str, str]:
        """The pair's glossary file, then the request's own entries (which win)."""
        return {**self.glossaries.get((route.source, route.target), {}), **(content.glossary or {})}

    def aligned_with_terms(self, route: Route, options: DecodeOptions, content: Content,
                           client: str | None = None) -> Callable[[list[str]], Awaitable[list[Alignment]]]:
        """translate_aligned for markup (HTML, Markdown, documents), with glossary terms and protected spans put
        where their source words went before the tags are projected."""
        glossary, dnt = self.glossary(route, content), content.do_not_translate or ()

        async def aligned(batch: list[str]) -> list[Alignment]:
            found = await self.translate_aligned(batch, route, options, client)
            return [replace_terms(a, [(start, end, new) for start, end, _, new in find_spans(a.source, dnt, glossary)])
                    for a in found]

        return aligned

    async def translate(self, texts: list[str], route: Route, options: DecodeOptions,
                        return_scores: bool = False, client: str | None = None) -> list[TranslationItem]:
        """Translate texts (already checked) along a route, for a client (fair queuing); one item per text."""
        if route.pivot is None:
            return await self.translate_with(texts, route.legs[0], options, return_scores, client)
        first, second = route.legs
        middle = await self.translate_with(texts, first, options.best_only(), False, client)
        final = await self.translate_with([item.text for item in middle], second, options, return_scores, client)
        return [item.model_copy(update={"models": route.model_names, "pivot": PivotStep(
            language=route.pivot, text=step.text, attention=step.alternatives[0].attention)})
            for step, item in zip(middle, final)]

    async def translate_aligned(self, texts: list[str], route: Route, options: DecodeOptions,
                                client: str | None = None) -> list[Alignment]:
        """Each text's best translation with its word alignment from attention (markup, placeholders and
        glossaries put things back through it); a pivoted route composes its legs' alignments."""
        options = options.model_copy(update={"n_best": 1, "return_attention": True})
        aligned: list[Alignment] | None = None
        for leg in route.legs:
            step = await self._aligned_with([a.target for a in aligned] if aligned else texts, leg, options, client)
            aligned = step if aligned is None else [compose(a, b) for a, b in zip(aligned, step)]
        return aligned or []

    async def _aligned_with(self, texts: list[str], model: LoadedModel, options: DecodeOptions,
                            client: str | None) -> list[Alignment]:
        segmented = [split(text, model.info.source) for text in texts]
        sentences = [s for seg in segmented for s in seg.sentences]
        found = iter(await self.translate_sentences(sentences, model, options, client))
        out = []
        for seg in segmented:
            parts = []
            for sentence in seg.sentences:
                translation = next(found)
                hyp = translation.hypotheses[0] if translation.hypotheses else EMPTY
                parts.append(align_sentence(sentence, translation.src_pieces, hyp.text, hyp.tgt_pieces,
                                            hyp.attention or []))
            out.append(concatenate(parts, seg.gaps, seg.gaps))
        return out

    async def translate_with(self, texts: list[str], model: LoadedModel, options: DecodeOptions,
                             return_scores: bool = False, client: str | None = None) -> list[TranslationItem]:
        """Translate texts with one model."""
        segmented = [split(text, model.info.source) for text in texts]
        sentences = [s for seg in segmented for s in seg.sentences]
        found = await self.translate_sentences(sentences, model, options, client)
        items, pos = [], 0
        for seg in segmented:
            count = len(seg.sentences)
            item = assemble(seg, found[pos: pos + count], options.n_best, return_scores, options.return_attention)
            items.append(item.model_copy(update={"models": [model.name]}))
            pos += count
        return items

    async def translate_sentences(self, sentences: list[str], model: LoadedModel, options: DecodeOptions,
                                  client: str | None = None) -> list[Translation]:
        """Cached sentences from the cache, the others (each distinct one once) through the batcher, with the
        request's options over the model's decoding settings."""
        config = options.search_config(model.translator.defaults)
        keys = [LRUCache.key(model.name, config, s) for s in sentences]
        found: list[Translation | None] = [self.cache.get(k) for k in keys]
        if self.cache.capacity:
            hits = sum(t is not None for t in found)
            self.metrics.cache.inc("hit", amount=hits)
            self.metrics.cache.inc("miss", amount=len(found) - hits)
        missing = list(dict.fromkeys(s for s, t in zip(sentences, found) if t is None))
        if missing:
            try:
                decoded = await model.batcher.submit(missing, config, self.settings.request_timeout_s, client)
            except BaseException as exc:  # CancelledError too: the client went away
                reason = exc.code if isinstance(exc, QueueFullError) else REJECT_REASONS.get(type(exc).__name__)
                self.metrics.rejected.inc(reason or "error")
                raise
            by_sentence = dict(zip(missing, decoded))
            for key, sentence, cached in zip(keys, sentences, found):
                if cached is None:
                    self.cache.put(key, by_sentence[sentence])
            found = [t if t is not None else by_sentence[s] for s, t in zip(sentences, found)]
        return found  # type: ignore[return-value]
