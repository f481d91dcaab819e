"""Model folders by language pair: every folder with a config.json under models_dir is loaded once.

Each loaded model gets a Translator and its own MicroBatcher, which serves that Translator (one decoding thread
per model; the service's path is api -> service -> batcher -> translator -> search). BLEU for
/languages comes from the folder's metrics.json ("test_bleu") when present. A pair without a model of its own
is served through English when models X->en and en->Y are loaded (a `Route` of two legs). The language
detector is built once, over the languages the models translate from; its models load on the first detection
(app/detect.py), so a service whose clients name their languages never holds them.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from app.batcher import MicroBatcher
from app.detect import LanguageDetector
from app.errors import ApiError
from app.metrics import Metrics
from app.runtime import release_free_memory
from app.schemas import LanguagePair, ModelInfo
from app.settings import Settings
from model.checkpoint import CONFIG, ModelBundle, load_model_folder
from model.errors import RnnmtError
from model.translator import Source, Translation, Translator, resolve_device

log = logging.getLogger(__name__)

LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "fi": "Finnish", "fr": "French", "hu": "Hungarian", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "sv": "Swedish", "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
}


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code.lower(), code)


@dataclass
class LoadedModel:
    """One model folder ready to serve: its translator, its batcher and what /languages says about it."""

    bundle: ModelBundle
    translator: Translator
    batcher: MicroBatcher[Source, Translation]
    bleu: float | None
    info: ModelInfo

    @property
    def name(self) -> str:
        return self.bundle.name

    def language_pair(self) -> LanguagePair:
        info = self.info
        return LanguagePair(source=info.source, target=info.target, model=info.name,
                            architecture=info.architecture, parameters=info.parameters, bleu=self.bleu,
                            reranks_with=info.reranks_with, shortlist=info.shortlist)


@dataclass(frozen=True)
class Route:
    """How a pair is served: one model, or two through a pivot language (X -> en -> Y)."""

    legs: tuple[LoadedModel, ...]

    @property
    def source(self) -> str:
        return self.legs[0].info.source

    @property
    def target(self) -> str:
        return self.legs[-1].info.target

    @property
    def pivot(self) -> str | None:
        return self.legs[0].info.target if len(self.legs) > 1 else None

    @property
    def model_names(self) -> list[str]:
        return [leg.name for leg in self.legs]

    def language_pair(self) -> LanguagePair:
        if self.pivot is None:
            return self.legs[0].language_pair()
        first, second = self.legs
        return LanguagePair(source=self.source, target=self.target, model=" + ".join(self.model_names),
                            architecture=first.info.architecture,
                            parameters=first.info.parameters + second.info.parameters, bleu=None,
                            pivot=self.pivot, models=self.model_names)


def read_bleu(folder: Path) -> float | None:
    try:
        value = json.loads((folder / "metrics.json").read_text(encoding="utf-8")).get("test_bleu")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def model_folders(models_dir: Path) -> list[Path]:
    """models_dir itself if it is a model folder, else its sub-folders that hold a config.json (even a broken
    one, such as a symlink loop: those are reported, not ignored). Hidden folders are skipped: they are model
    folders being published, or left by an interrupted publish (model/atomic.py)."""
    if os.path.lexists(models_dir / CONFIG):
        return [models_dir]
    if not models_dir.is_dir():
        return []
    return sorted(p for p in models_dir.iterdir()
                  if not p.name.startswith(".") and p.is_dir() and os.path.lexists(p / CONFIG))


class ModelRegistry:
    """The loaded models keyed by (source, target)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.models: dict[tuple[str, str], LoadedModel] = {}
        self.routes: dict[tuple[str, str], Route] = {}
        self.detector: LanguageDetector | None = None
        self.broken: dict[str, str] = {}  # model folder name -> why it could not be loaded
        # right-to-left models (ModelConfig.right_to_left) rerank their direction's beams; they are not served
        self.right_to_left: dict[tuple[str, str], Translator] = {}
        self.loaded = False

    def load(self) -> None:
        """Load every model folder (blocking; called once from the app's lifespan)."""
        settings = self.settings
        folders = model_folders(settings.models_dir)
        if not folders:
            log.error("no model folders (with %s) found in %s: the service starts, but /ready answers 503 "
                      "until models are added and the service restarted (set RNNMT_MODELS_DIR or --models-dir)",
                      CONFIG, settings.models_dir)
        device = resolve_device(settings.device)
        for folder in folders:
            try:
                bundle = load_model_folder(folder, device, settings.precision)
            except RnnmtError as exc:
                log.error("skipping broken model folder %s: %s", folder, exc)
                self.broken[folder.name] = str(exc).replace(str(folder), folder.name)  # no server paths in /ready
                continue
            if bundle.model.config.attention == "none":
                log.info("%s has no attention: return_attention will give null", folder.name)
            pair = (bundle.source_lang, bundle.target_lang)
            if bundle.model.config.right_to_left:
                if pair not in self.right_to_left:
                    self.right_to_left[pair] = Translator(bundle, batch_tokens=settings.max_batch_tokens,
                                                          max_batch_size=settings.max_batch_sentences)
                    log.info("loaded %s, a right-to-left %s-%s model that reranks", bundle.name, *pair)
                continue
            if pair in self.models:
                log.warning("skipping %s: %s-%s is already served by %s", folder, *pair, self.models[pair].name)
                continue
            self.models[pair] = self._serve(bundle, read_bleu(folder))
            log.info("loaded %s (%s-%s, %d parameters) on %s, kernel %s", bundle.name, *pair,
                     bundle.model.num_parameters(), device, bundle.model.kernel.name)
        self.pair_rerankers()
        self.routes = plan_routes(self.models)
        sources = sorted({source for source, _ in self.models})
        if sources:
            self.detector = LanguageDetector(sources)
            log.info("language detection among %s", ", ".join(self.detector.languages))
        self.metrics.models.set(value=len(self.models))
        self.loaded = True
        gc.collect()  # loading's cyclic garbage first, so that its pages go back too
        release_free_memory()  # what loading left in the heap (fp16 staging, weights packed away): ~30 MB

    def pair_rerankers(self) -> None:
        """Each model reranks its beams (model/rerank.py) with its opposite direction's model and its own
        direction's right-to-left model, those that are loaded too, with the weights its decoding settings give
        them (0 in a folder that was not tuned for them)."""
        for (source, target), loaded in self.models.items():
            translator, defaults = loaded.translator, loaded.translator.defaults
            reverse, right_to_left = self.models.get((target, source)), self.right_to_left.get((source, target))
            if reverse is not None:
                translator.use_reverse(reverse.translator)
            if right_to_left is not None:
                translator.use_right_to_left(right_to_left)
            weighted = [(reverse.bundle if reverse else None, defaults.reverse_weight),
                        (right_to_left.bundle if right_to_left else None, defaults.right_to_left_weight)]
            loaded.info.reranks_with = [bundle.name for bundle, weight in weighted if bundle and weight > 0]
            if loaded.info.reranks_with:
                log.info("%s reranks its beams with %s (weights: reverse %g, right-to-left %g)", loaded.name,
                         " and ".join(loaded.info.reranks_with), defaults.reverse_weight,
                         defaults.right_to_left_weight)

    def _serve(self, bundle: ModelBundle, bleu: float | None) -> LoadedModel:
        s = self.settings
        translator = Translator(bundle, batch_tokens=s.max_batch_tokens, max_batch_size=s.max_batch_sentences)
        batcher: MicroBatcher[Source, Translation] = MicroBatcher(
            translator, name=bundle.name, max_batch_tokens=s.max_batch_tokens,
            max_batch_sentences=s.max_batch_sentences, max_wait_s=s.max_wait_ms / 1000.0,
            regroup_s=s.regroup_ms / 1000.0, max_queue=s.max_queue, max_queue_per_client=s.max_queue_per_client,
            shared_batch_sentences=s.shared_batch_sentences, on_batch=self.metrics.batch_observer(bundle.name))
        info = ModelInfo(name=bundle.name, source=bundle.source_lang, target=bundle.target_lang,
                         architecture=bundle.model.config.to_dict(), parameters=bundle.model.num_parameters(),
                         precision=bundle.model.kernel.precision, kernel=bundle.model.kernel.name,
                         shortlist=bundle.shortlist is not None)
        return LoadedModel(bundle, translator, batcher, bleu, info)

    def model_named(self, name: str) -> LoadedModel:
        return next(model for model in self.models.values() if model.name == name)

    def route(self, source: str, target: str, detected: bool = False) -> Route:
        """How to translate a pair (directly or through English), or a 400 that lists the pairs available."""
        route = self.routes.get((source, target))
        if route is None:
            available = ", ".join(f"{s}-{t}" for s, t in self.routes) or "none (no model is loaded)"
            what = f"the text was detected as {language_name(source)} ({source!r}), but " if detected else ""
            raise ApiError(400, "unsupported_pair", f"{what}no model translates {source!r} -> {target!r}; "
                           f"available pairs: {available}")
        return route

    def update_queue_metrics(self) -> None:
        for model in self.models.values():
            self.metrics.queue_depth.set(model.name, value=model.batcher.queue_depth)

    def close(self) -> None:
        for model in self.models.values():
            model.batcher.close()
        self.models.clear()
        self.right_to_left.clear()


def plan_routes(models: dict[tuple[str, str], LoadedModel], pivot: str = "en") -> dict[tuple[str, str], Route]:
    """Every pair the models serve: their own pairs, then X -> pivot -> Y for the pairs none serves directly."""
    routes = {pair: Route((model,)) for pair, model in models.items()}
    for (source, middle), first in models.items():
        if middle != pivot:
            continue
        for (start, target), second in models.items():
            if start == pivot and target != source and (source, target) not in routes:
                routes[(source, target)] = Route((first, second))
    return routes
