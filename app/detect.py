"""Which of the service's languages is a text written in: language detection with lingua.

Why lingua (``lingua-language-detector`` 2.x: Rust, its models inside the wheel, nothing downloaded at run time),
in high-accuracy mode with its models preloaded: measured against py3langid on Multi30k val restricted to en, de,
fr and cs (4 x 1014 sentences), both are right on whole sentences (lingua 99.98%, py3langid 100%), but on the
short inputs people type into a translator lingua is right far more often: first word of each sentence 85.1% vs
58.8% (en+de only: 98.5% vs 55.8%), one word from a random position 83.8% vs 68.5%, first two words 94.0% vs 93.0%;
py3langid wins at three words (99.5% vs 97.6%). Lingua's low-accuracy mode (99.78% on sentences, 65% on single
words, 92% on three) trails both. The price: about 11,000 sentences/s on one core (py3langid 42,000), about
165 MiB of resident memory for four languages' models (75 MiB for en+de; py3langid about 75 MiB), 0.6-1.6 s to load.
So the models are not preloaded: lingua loads a language's models when a detection first needs them (its default)
and then keeps them, shared between detectors; the library itself is imported when a detector is built. A service
whose clients always name the source language never pays that memory (the service with the en<->de models: 140 MB
less resident when ready); the first request that needs detection waits for the load, once.

A detection is *reliable* when the library's confidence is at least ``min_confidence`` (0.6 by default) and the
text (its first ``MAX_CHARS`` characters, on which detection runs) has at least ``min_letters`` (3) letters. On
Multi30k val inputs of one to three words (en, de, fr, cs) that rule keeps 73% of detections, 99.5% of them right,
and keeps 99.7% of whole sentences. Confidences are lingua's: probabilities over the candidate languages, which
sum to 1, so they say "more German than English or French", never "German rather than any other language".

With a single candidate language the answer is always that language. Lingua cannot score one language alone (it
returns 0 or 1 arbitrarily), so the confidence is then the library's probability for that language against three
foils, the first three of English, German, French and Spanish other than itself: it flags text that looks more like
one of those, not every foreign text (the foils' models cost memory as other candidates would).

Detection changes no state of a ``LanguageDetector`` and lingua's detector is documented as safe to share between
threads, so one instance may serve concurrent ``asyncio.to_thread`` calls (tested with 8 at once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lingua import Language
    from lingua import LanguageDetector as LinguaDetector

log = logging.getLogger(__name__)

MAX_CHARS = 1000  # detection runs on this prefix, which bounds its cost (0.5-0.8 ms per 1000 characters)
FOILS = ("en", "de", "fr", "es")  # a single candidate language is scored against the three others than itself


@dataclass(frozen=True)
class Detection:
    """One candidate language for a text: ISO 639-1 code, the library's confidence (0..1), and whether to trust it."""

    language: str
    confidence: float
    reliable: bool


def _lingua_language(code: str) -> Language | None:
    from lingua import IsoCode639_1, Language

    try:
        return Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
    except ValueError:
        return None


def _build(models: list[Language]) -> LinguaDetector:
    """Lingua's detector over `models`, which loads each language's n-gram models when a detection first needs
    them (not preloaded: see the module)."""
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(*models).build()


class LanguageDetector:
    """Detects which of ``languages`` (ISO 639-1 codes) a text is written in; build once, share between threads."""

    def __init__(self, languages: Iterable[str], min_confidence: float = 0.6, min_letters: int = 3) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within [0, 1], got {min_confidence}")
        requested = list(languages)
        known: dict[str, Language] = {}
        for raw in requested:
            code = raw.strip().lower()
            language = _lingua_language(code)
            if language is None:
                log.warning("language detection: skipping %r, which it does not know", raw)
            else:
                known.setdefault(code, language)
        if not known:
            raise ValueError(f"language detection knows none of the languages {requested}")
        self._languages = tuple(known)
        self._codes = {language: code for code, language in known.items()}
        self.min_confidence = min_confidence
        self.min_letters = min_letters
        models = list(known.values())
        self._single = models[0] if len(models) == 1 else None
        if self._single is not None:
            foils = [code for code in FOILS if code != self._languages[0]][:3]
            models += [found for code in foils if (found := _lingua_language(code)) is not None]
        self._detector = _build(models)

    @property
    def languages(self) -> tuple[str, ...]:
        """The ISO 639-1 codes detection chooses among, in the order given, without the skipped ones."""
        return self._languages

    def _detection(self, language: str, confidence: float, letters: int) -> Detection:
        confidence = min(1.0, max(0.0, float(confidence)))
        reliable = confidence >= self.min_confidence and letters >= self.min_letters
        return Detection(language=language, confidence=confidence, reliable=reliable)

    def detect(self, text: str, top: int = 3) -> list[Detection]:
        """The likeliest languages of ``text``, best first, at most ``top``, none with confidence 0.

        Empty when ``text`` has no letters (digits, punctuation, emoji) or only letters of scripts that none of the
        languages uses. With a single candidate language: that language, even at confidence 0 (see the module).
        """
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
        text = text[:MAX_CHARS]
        letters = sum(ch.isalpha() for ch in text)
        if letters == 0:
            return []
        if self._single is not None:
            confidence = self._detector.compute_language_confidence(text, self._single)
            return [self._detection(self._languages[0], confidence, letters)]
        values = self._detector.compute_language_confidence_values(text)
        return [self._detection(self._codes[v.language], v.value, letters) for v in values[:top] if v.value > 0.0]

    def detect_batch(self, texts: list[str]) -> list[Detection | None]:
        """The best detection per text (None where ``detect`` finds none), one thread, in order."""
        return [found[0] if (found := self.detect(text, top=1)) else None for text in texts]
