"""Text in, text out: the one translation path that the CLI, the evaluator and the service all call.

SentencePiece-encode (`encode`, once: the service's batcher encodes a request when it arrives and counts its
tokens from that), then `translate_encoded`: beam search in length-sorted batches of at most `batch_tokens`
padded source tokens; greedy search over all the sentences at once, longest first, keeping its rows full by
admitting the next sentences as others finish (model/search.py); restore the input order, decode; with a reverse
model (`use_reverse`) or a right-to-left one (`use_right_to_left`) and its weight, rerank each beam
(model/rerank.py). Empty lines stay empty. Safe to
share between threads: nothing per-request is stored on the object or the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import torch

from model.checkpoint import ModelBundle, load_model_folder
from model.config import EOS_ID
from model.errors import InputError
from model.rerank import add_right_to_left_log_probs, add_source_log_probs, reranked
from model.search import SearchConfig, search

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One sentence ready for search: its text and its SentencePiece ids (cut to max_src_tokens, EOS last;
    none for an empty sentence)."""

    text: str
    ids: list[int]


@dataclass
class TranslationHypothesis:
    text: str
    score: float  # length-normalized log-probability (the ranking score)
    log_prob: float
    tgt_pieces: list[str]
    attention: list[list[float]] | None = None  # (len(tgt_pieces) + 1 for EOS) x (len(src_pieces) + 1 for EOS)
    source_log_prob: float | None = None  # the reverse model's log p(source | text) per source token (model/rerank.py)
    right_to_left_log_prob: float | None = None  # the right-to-left model's log p(text | source) per target token


@dataclass
class Translation:
    source: str
    src_pieces: list[str]
    hypotheses: list[TranslationHypothesis]

    @property
    def text(self) -> str:
        return self.hypotheses[0].text if self.hypotheses else ""


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when available."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA device is available")
    return torch.device(device)


class Translator:
    STREAM_SENTENCES = 2048  # greedy search decodes at most this many sentences per call (bounds its buffers)

    def __init__(self, bundle: ModelBundle, defaults: SearchConfig | None = None, batch_tokens: int = 2000,
                 max_batch_size: int = 128, max_src_tokens: int = 200) -> None:
        self.bundle = bundle
        self.model = bundle.model
        self.device = next(self.model.parameters()).device
        self.defaults = defaults or bundle.decoding  # the model folder's decoding settings
        self.batch_tokens = batch_tokens
        self.max_batch_size = max_batch_size
        self.max_src_tokens = max_src_tokens
        self.reverse: Translator | None = None  # the opposite direction's model, for reranking (use_reverse)
        self.right_to_left: Translator | None = None  # this direction's right-to-left model (use_right_to_left)

    @classmethod
    def from_folder(cls, folder: str, device: str = "auto", precision: str = "fp32", **kwargs) -> Translator:
        """precision: fp32 | bf16 | int8 | auto, what the decoder's products compute in (model/kernels/)."""
        return cls(load_model_folder(folder, resolve_device(device), precision), **kwargs)

    @property
    def kernel_name(self) -> str:
        """The decoding kernel chosen at load, e.g. 'int8-row-major' (for bench and /languages)."""
        return self.model.kernel.name

    def use_reverse(self, reverse: Translator) -> None:
        """Rerank beams with this model of the opposite direction (model/rerank.py) when the decoding settings
        give it a weight (SearchConfig.reverse_weight)."""
        if (reverse.bundle.source_lang, reverse.bundle.target_lang) != (self.bundle.target_lang,
                                                                         self.bundle.source_lang):
            raise InputError(f"{reverse.bundle.source_lang}->{reverse.bundle.target_lang} is not the reverse of "
                             f"{self.bundle.source_lang}->{self.bundle.target_lang}")
        self.reverse = reverse

    def use_right_to_left(self, right_to_left: Translator) -> None:
        """Rerank beams with this right-to-left model of the same direction (model/rerank.py) when the decoding
        settings give it a weight (SearchConfig.right_to_left_weight)."""
        theirs, mine = right_to_left.bundle, self.bundle
        if (theirs.source_lang, theirs.target_lang) != (mine.source_lang, mine.target_lang):
            raise InputError(f"{theirs.source_lang}->{theirs.target_lang} is not {mine.source_lang}->"
                             f"{mine.target_lang}: a right-to-left model reranks its own direction")
        if not right_to_left.model.config.right_to_left or self.model.config.right_to_left:
            raise InputError(f"{theirs.name} is not a right-to-left model, or {mine.name} is one itself")
        self.right_to_left = right_to_left

    def reranks(self, config: SearchConfig) -> bool:
        """Whether these settings rerank the beam with a second opinion (the reverse or right-to-left model)."""
        return config.beam_size > 1 and (config.reverse_weight > 0 and self.reverse is not None
                                         or config.right_to_left_weight > 0 and self.right_to_left is not None)

    def encode(self, texts: list[str]) -> list[Source]:
        """The texts as search's input (one SentencePiece call for all), whitespace runs made single spaces."""
        stripped = [" ".join(t.split()) for t in texts]
        encoded = self.bundle.src_tokenizer.encode(stripped)
        return [Source(text, ids[: self.max_src_tokens - 1] + [EOS_ID] if clean else [])
                for text, clean, ids in zip(texts, stripped, encoded)]

    @staticmethod
    def count_tokens(source: Source) -> int:
        """Source tokens, what the service's batches and admission count in (an empty sentence counts one)."""
        return max(len(source.ids), 1)

    def batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped into length-sorted batches under batch_tokens (padded) and max_batch_size."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        groups, current, longest = [], [], 0
        for i in order:
            longest_if_added = max(longest, lengths[i])
            if current and (longest_if_added * (len(current) + 1) > self.batch_tokens
                            or len(current) >= self.max_batch_size):
                groups.append(current)
                current, longest_if_added = [], lengths[i]
            current.append(i)
            longest = longest_if_added
        if current:
            groups.append(current)
        return groups

    def greedy_rows(self, lengths: list[int]) -> int:
        """How many sentences greedy search decodes at a time: as many as the largest of `batches` would hold
        (the shortest ones, as many as fit batch_tokens padded)."""
        shortest = sorted(lengths)
        rows = 1
        while rows < min(len(shortest), self.max_batch_size) and shortest[rows] * (rows + 1) <= self.batch_tokens:
            rows += 1
        return rows

    def translate(self, texts: list[str], config: SearchConfig | None = None) -> list[Translation]:
        return self.translate_encoded(self.encode(texts), config)

    def translate_encoded(self, sources: list[Source], config: SearchConfig | None = None) -> list[Translation]:
        """Translations of sentences already encoded (`encode`), in their order."""
        config = config or self.defaults
        rerank = self.reranks(config)
        searched = config.changed(n_best=config.beam_size) if rerank else config  # reranked: the whole beam
        results: list[Translation | None] = [
            None if s.ids else Translation(s.text, [], [TranslationHypothesis("", 0.0, 0.0, [])]) for s in sources]
        todo = [i for i, s in enumerate(sources) if s.ids]
        lengths = [len(sources[i].ids) for i in todo]
        if config.beam_size > 1:
            groups, max_rows = [[todo[g] for g in group] for group in self.batches(lengths)], None
        else:  # one stream, longest first (see greedy_search), cut only to bound greedy search's buffers
            stream = sorted(todo, key=lambda i: len(sources[i].ids), reverse=True)
            groups = [stream[i: i + self.STREAM_SENTENCES] for i in range(0, len(stream), self.STREAM_SENTENCES)]
            max_rows = self.greedy_rows(lengths) if todo else None
        for rows in groups:
            for i, translation in zip(rows, self._search([sources[i] for i in rows], searched, max_rows)):
                results[i] = translation
        if rerank:  # by the second opinions' scores (model/rerank.py), then cut to n_best
            if config.reverse_weight > 0 and self.reverse is not None:
                add_source_log_probs(self.reverse, results)
            if config.right_to_left_weight > 0 and self.right_to_left is not None:
                add_right_to_left_log_probs(self.right_to_left, results)
            results = reranked(results, config)
        return results  # type: ignore[return-value]

    def _search(self, sources: list[Source], config: SearchConfig, max_rows: int | None) -> list[Translation]:
        """One search call over these (non-empty) sentences."""
        src_tok, tgt_tok = self.bundle.src_tokenizer, self.bundle.tgt_tokenizer
        src = torch.nn.utils.rnn.pad_sequence([torch.tensor(s.ids) for s in sources], batch_first=True)
        lengths = torch.tensor([len(s.ids) for s in sources])
        shortlist = self.bundle.shortlist if config.shortlist else None  # used where the model folder has one
        vocab = None if shortlist is None else shortlist.vocabulary(src)
        found = search(self.model, src.to(self.device), lengths.to(self.device), config, max_rows, vocab)
        if self.model.config.right_to_left:  # searched last piece first: put them in reading order
            for h in (h for hyps in found for h in hyps):
                h.tokens = h.tokens[::-1]
                if h.attention is not None:  # (pieces + EOS, src): the pieces' rows reversed, EOS's row stays last
                    h.attention = torch.cat([h.attention[:-1].flip(0), h.attention[-1:]])
        decoded = iter(tgt_tok.decode([h.tokens for hyps in found for h in hyps]))  # one call for them all
        return [Translation(source.text, src_tok.id_to_piece(source.ids[:-1]), [
            TranslationHypothesis(next(decoded), h.score, h.log_prob, tgt_tok.id_to_piece(h.tokens),
                                  None if h.attention is None else h.attention.tolist())
            for h in hyps]) for source, hyps in zip(sources, found)]

    def translate_stream(self, lines: Iterable[str], config: SearchConfig | None = None,
                         chunk_lines: int = 512) -> Iterator[Translation]:
        """Translate an endless stream in chunks, keeping order, without reading it all into memory."""
        iterator = iter(lines)
        while chunk := list(islice(iterator, chunk_lines)):
            yield from self.translate(chunk, config)
