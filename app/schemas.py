"""Request and response bodies of the HTTP API (pydantic), with the examples shown in the OpenAPI docs.

Validation of types and ranges happens here, at the edge; limits that depend on settings (characters,
number of texts) and on loaded models (language pairs) are checked by the service, and app/openapi.py writes them
into the published schema. The native bodies are strict (JSON types as declared: `0` is not a boolean, `"5"` not an
integer), so that what the schema calls invalid is rejected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from model.search import SearchConfig

MAX_BEAM = 16
MAX_GLOSSARY = 1000

ARCHITECTURE_EXAMPLE = {
    "src_vocab_size": 8000, "tgt_vocab_size": 8000, "emb_size": 256, "cell": "gru", "encoder_hidden": 256,
    "encoder_layers": 1, "bidirectional": True, "decoder_hidden": 512, "decoder_layers": 1,
    "attention": "bahdanau", "attention_size": 512, "readout_size": 256, "dropout": 0.3, "emb_dropout": 0.2,
    "tie_embeddings": "decoder",
}


def json_integer(value: Any) -> Any:
    """JSON Schema's integer, which strict mode alone would narrow: 3.0 is the integer 3; "3" and true stay invalid."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def text_or_texts(value: Any) -> Any:
    """One clear message instead of pydantic's one-per-union-member for a field that is str | list[str]."""
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return value
    raise ValueError("must be a string or a list of strings")


class DecodeOptions(BaseModel):
    """The decoding settings a request chooses, mapped onto the serving model's SearchConfig by `search_config`
    (the one place): a setting the request leaves out is the model's (its config.json `decoding` section, else
    SearchConfig's own default). The service carries these, as a pair may be served by two models (a pivot)."""

    model_config = ConfigDict(strict=True)

    beam_size: int | None = Field(None, ge=1, le=MAX_BEAM, description="1 = greedy search; default: the model's "
                                  "(widened to n_best when narrower)")
    n_best: int = Field(1, ge=1, le=MAX_BEAM, description="alternatives per text (the beam is at least this wide)")
    max_length: int | None = Field(None, ge=1, le=1024, description="maximum target pieces per sentence "
                                   "(default: proportional to the source length)")
    reverse_weight: float | None = Field(None, ge=0.0, le=10.0, description="rerank the beam with the reverse "
                                         "model (its log-probability of the source, per token, times this "
                                         "weight); 0 = off; default: the model's (/languages: reranks_with)")
    right_to_left_weight: float | None = Field(None, ge=0.0, le=10.0, description="rerank the beam with the "
                                               "right-to-left model (its log-probability of each alternative read "
                                               "last word first, per token, times this weight); 0 = off; default: "
                                               "the model's")
    shortlist: bool | None = Field(None, description="search only the model's lexical shortlist of target pieces "
                                   "for these sentences (faster; scores renormalized over it); default: the model's; "
                                   "no effect for a model without one (/languages: shortlist)")
    return_attention: bool = Field(False, description="add the attention matrix of every sentence")

    _integers = field_validator("beam_size", "n_best", "max_length", mode="before")(json_integer)

    def search_config(self, defaults: SearchConfig) -> SearchConfig:
        """The serving model's settings (`defaults`) with this request's. n_best alternatives need a beam of at
        least n_best: the beam is widened (a rule JSON Schema cannot state, so no 422)."""
        limits = {} if self.max_length is None else {"max_len_a": 0.0, "max_len_b": self.max_length + 1}
        return defaults.changed(beam_size=max(self.beam_size or defaults.beam_size, self.n_best), n_best=self.n_best,
                                reverse_weight=self.reverse_weight, right_to_left_weight=self.right_to_left_weight,
                                shortlist=self.shortlist, return_attention=self.return_attention, **limits)

    def best_only(self) -> DecodeOptions:
        """The best hypothesis only, with the beam this request would search (a pivot's first leg)."""
        beam = None if self.beam_size is None else max(self.beam_size, self.n_best)
        return DecodeOptions(beam_size=beam, n_best=1, max_length=self.max_length,
                             reverse_weight=self.reverse_weight, right_to_left_weight=self.right_to_left_weight,
                             shortlist=self.shortlist, return_attention=self.return_attention)


class TranslateRequest(DecodeOptions):
    """POST /translate: one text or a list of texts (each may hold several sentences and line breaks), and the
    decoding settings (DecodeOptions)."""

    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [
        {"text": "A man is riding a bike.", "source": "en", "target": "de"},
        {"text": ["Two dogs play in the snow.", "A girl reads a book.\nShe smiles."], "source": "en",
         "target": "de", "beam_size": 5, "n_best": 3, "return_scores": True, "return_attention": True},
    ]})

    text: str | list[str] = Field(description="a text, or a list of texts translated as one batch")
    source: str = Field(min_length=1, max_length=20, description="source language code, or 'auto' to detect "
                        "the language of each text", examples=["en", "auto"])
    target: str = Field(min_length=1, max_length=20, description="target language code", examples=["de"])
    return_scores: bool = Field(False, description="add length-normalized log-probabilities")
    format: Literal["text", "html", "markdown"] = Field("text", description="html and markdown: tags and "
                                                        "syntax kept, inline tags put back around the words their "
                                                        "source words aligned to (the best hypothesis only)")
    glossary: dict[str, str] | None = Field(None, max_length=MAX_GLOSSARY, description="source term -> target "
                                            "term, forced into the translation (with the pair's glossary file)")
    do_not_translate: list[str] | None = Field(None, max_length=MAX_GLOSSARY, description="terms kept as they "
                                               "are (URLs, e-mails, numbers, {name}, %s, $VAR and `code` always are)")

    _check_text = field_validator("text", mode="before")(text_or_texts)

    @property
    def texts(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)

    def decode_options(self) -> DecodeOptions:
        """The decoding settings alone (what the service carries)."""
        return DecodeOptions.model_validate(self.model_dump(include=set(DecodeOptions.model_fields)))


class SentenceAttention(BaseModel):
    """Attention of one sentence: weights[i][j] = how much target piece i looked at source piece j."""

    source_pieces: list[str] = Field(examples=[["▁three", "▁one", "</s>"]])
    target_pieces: list[str] = Field(examples=[["▁eins", "▁drei", "</s>"]])
    weights: list[list[float]] = Field(description="len(target_pieces) rows x len(source_pieces) columns",
                                       examples=[[[0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.0, 0.1, 0.9]]])


class Alternative(BaseModel):
    """One complete translation of a text (the k-th hypothesis of each of its sentences, joined)."""

    text: str
    score: float | None = Field(None, description="sum over sentences (when return_scores)")
    attention: list[SentenceAttention] | None = Field(None, description="one per sentence (when return_attention)")


class DetectedLanguage(BaseModel):
    """A language detection (lingua): confidence is the detector's probability among the served languages."""

    language: str = Field(examples=["de"])
    confidence: float = Field(ge=0.0, le=1.0, examples=[0.97])
    reliable: bool = Field(description="false for inputs too short or too ambiguous to trust")


class PivotStep(BaseModel):
    """The intermediate translation of a pair served through a pivot language (X -> en -> Y)."""

    language: str = Field(examples=["en"])
    text: str = Field(description="the first model's best translation, which the second model translated")
    attention: list[SentenceAttention] | None = Field(None, description="the first leg's attention, one per "
                                                      "sentence (when return_attention)")


class TranslationItem(BaseModel):
    """The translation of one input text; alternatives[0].text == text."""

    text: str
    score: float | None = None
    alternatives: list[Alternative]
    models: list[str] = Field(default_factory=list, description="the models used, in order (two through a pivot; "
                              "none for a text detected in the target language, returned unchanged)")
    pivot: PivotStep | None = None
    detected_language: DetectedLanguage | None = Field(None, description="with source 'auto'")
    unplaced: list[str] | None = Field(None, description="protected spans or glossary terms the alignment could not "
                                       "place: appended at the end of the text")


class ModelInfo(BaseModel):
    """The model that served a request or a language pair."""

    name: str
    source: str
    target: str
    architecture: dict[str, Any] = Field(examples=[ARCHITECTURE_EXAMPLE])
    parameters: int
    precision: str = Field("fp32", description="what the decoder computes in (RNNMT_PRECISION)")
    kernel: str = Field("", description="the decoding kernel chosen when the model loaded", examples=["feature-major"])
    reranks_with: list[str] = Field(default_factory=list, description="the models that rerank this model's beams: "
                                    "its reverse and its right-to-left model, when loaded too and the decoding "
                                    "settings give them a weight", examples=[["everyday-de-en", "everyday-en-de-r2l"]])
    shortlist: bool = Field(False, description="whether the model has a lexical shortlist (shortlist.safetensors) "
                            "that requests may search (DecodeOptions.shortlist)")


class TranslateResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "translations": [{"text": "Ein Mann fährt Fahrrad.", "score": None,
                          "alternatives": [{"text": "Ein Mann fährt Fahrrad.", "score": None, "attention": None}]}],
        "model": {"name": "multi30k-en-de", "source": "en", "target": "de", "architecture": ARCHITECTURE_EXAMPLE,
                  "parameters": 5922560},
        "timing_ms": 41.7,
    }]})

    translations: list[TranslationItem] = Field(description="one per input text, in order")
    model: ModelInfo | None = Field(description="the model that translated the first translated text; null when "
                                    "every text was detected in the target language already (source auto)")
    timing_ms: float


class Language(BaseModel):
    code: str = Field(examples=["en"])
    name: str = Field(examples=["English"])


class LanguagePair(BaseModel):
    source: str
    target: str
    model: str
    architecture: dict[str, Any]
    parameters: int
    bleu: float | None = Field(None, description="test BLEU from the model folder's metrics.json")
    pivot: str | None = Field(None, description="the language translated through, when no model serves the pair")
    models: list[str] = Field(default_factory=list, description="the models used, in order")
    reranks_with: list[str] = Field(default_factory=list, description="the models that rerank the model's beams")
    shortlist: bool = Field(False, description="whether the model has a lexical shortlist a request may search "
                            "(\"shortlist\": true)")


class LanguagesResponse(BaseModel):
    languages: list[Language]
    pairs: list[LanguagePair]


class DetectRequest(BaseModel):
    """POST /detect: one text or a list of texts, each detected on its own."""

    model_config = ConfigDict(strict=True, json_schema_extra={"examples": [{"text": "Ein Mann fährt Fahrrad."}]})

    text: str | list[str]

    _check_text = field_validator("text", mode="before")(text_or_texts)

    @property
    def texts(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)


class DetectResponse(BaseModel):
    detections: list[list[DetectedLanguage]] = Field(description="per text, the candidate languages, best first "
                                                     "(empty when a text has no letters)")


class HealthResponse(BaseModel):
    status: str = Field("ok", examples=["ok"])


class ReadyResponse(BaseModel):
    status: str = Field(examples=["ready"])
    models: int
    broken: dict[str, str] = Field(default_factory=dict, description="model folders that could not be loaded, "
                                   "and why (the others are served)")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unsupported_pair"])
    message: str = Field(examples=["no model translates fr -> de; available pairs: en-de, de-en"])


class ErrorResponse(BaseModel):
    """The shape of every error response."""

    error: ErrorDetail


class LibreTranslateRequest(BaseModel):
    """LibreTranslate's POST /translate (JSON or form-encoded).

    Not strict in itself: a form sends every field as a string ("alternatives=2"), which LibreTranslate accepts,
    so app/libretranslate.py validates form bodies in lax mode and JSON bodies strictly (JSON types as declared).
    """

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"q": "A man is riding a bike.", "source": "en", "target": "de", "format": "text"},
    ]})

    q: str | list[str]
    source: str = Field(min_length=1, max_length=20, description="a language code, or 'auto' when unambiguous")
    target: str = Field(min_length=1, max_length=20)
    format: Literal["text", "html"] = Field("text", description="html: tags kept, inline tags projected")
    alternatives: int = Field(0, ge=0, le=MAX_BEAM - 1)
    api_key: str | None = Field(None, description="an API key (rnnmt keys add); also accepted as "
                                "'Authorization: Bearer KEY' or 'X-API-Key: KEY'")

    _check_q = field_validator("q", mode="before")(text_or_texts)
    _integers = field_validator("alternatives", mode="before")(json_integer)


class LibreTranslateResponse(BaseModel):
    translatedText: str | list[str]  # LibreTranslate's field names
    alternatives: list[str] | list[list[str]] | None = None
    detectedLanguage: dict[str, Any] | list[dict[str, Any]] | None = None


class LibreTranslateDetection(BaseModel):
    """One entry of LibreTranslate's POST /detect answer (confidence in percent, as LibreTranslate gives it)."""

    language: str
    confidence: float


class LibreTranslateDetectRequest(BaseModel):
    q: str
    api_key: str | None = None


class LibreTranslateFrontendSettings(BaseModel):
    """LibreTranslate's GET /frontend/settings (its field names)."""

    charLimit: int = Field(description="characters per text")
    frontendTimeout: int = Field(description="ms the web UI waits after typing before it translates")
    apiKeys: bool = Field(description="whether the service knows API keys")
    keyRequired: bool = Field(description="whether every request needs one")
    suggestions: bool
    filesTranslation: bool
    supportedFilesFormat: list[str]
    language: dict[str, dict[str, str]] = Field(description="default source and target {code, name}")


class LibreTranslateLanguage(BaseModel):
    code: str
    name: str
    targets: list[str]


ERROR_DESCRIPTIONS = {
    400: "unknown language pair, malformed JSON, a body that is not UTF-8, or a text whose language could not be "
         "detected (source 'auto' needs letters of a served language)",
    401: "an API key is required (RNNMT_REQUIRE_API_KEY)",
    403: "the API key is not valid or was revoked",
    404: "no such file (translated files expire)",
    413: "a text longer than max_chars, more than max_texts texts, or a body or file over the limits",
    415: "a content type or a file type that is not supported",
    422: "a field with the wrong type or out of range, or an empty text",
    429: "a quota is used up (see Retry-After and the RateLimit-* headers)",
    503: "no model loaded (not_ready), the queue is full (queue_full), the expected wait exceeds the request "
         "deadline (overloaded), or the server is shutting down (shutting_down); see Retry-After",
    504: "the request deadline passed while it waited (deadline_exceeded)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the error JSON model."""
    return {status: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}


ERROR_RESPONSES = error_responses(400, 401, 403, 413, 422, 429, 503, 504)
"""The errors of a translation or detection request (the documents' routes add 415)."""
