"""Text in, text out: the one translation path that the CLI, the evaluator and the service all call.

SentencePiece-encode, sort by length into batches of at most `batch_tokens` source tokens, search,
restore the input order, decode. Greedy search takes the sorted batches as one stream and keeps its
batch full by admitting the next sentences as others finish (model/search.py). Empty lines stay
empty. Safe to share between threads: nothing per-request is stored on the object or the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import islice

import torch

from model.checkpoint import ModelBundle, load_model_folder
from model.config import EOS_ID
from model.search import SearchConfig, search

log = logging.getLogger(__name__)


@dataclass
class TranslationHypothesis:
    text: str
    score: float  # length-normalized log-probability (the ranking score)
    log_prob: float
    tgt_pieces: list[str]
    attention: list[list[float]] | None = None  # (len(tgt_pieces) + 1 for EOS) x (len(src_pieces) + 1 for EOS)


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
        from model.errors import InputError

        raise InputError("--device cuda was asked for but no CUDA device is available")
    return torch.device(device)


class Translator:
    STREAM_SENTENCES = 2048  # greedy search decodes at most this many sentences per call (bounds its buffers)

    def __init__(self, bundle: ModelBundle, defaults: SearchConfig | None = None, batch_tokens: int = 2000,
                 max_batch_size: int = 128, max_src_tokens: int = 200) -> None:
        self.bundle = bundle
        self.model = bundle.model
        self.device = next(self.model.parameters()).device
        decoding = bundle.meta.get("decoding", {})
        self.defaults = defaults or SearchConfig(
            beam_size=decoding.get("beam_size", 5), length_penalty=decoding.get("length_penalty", 1.0),
            max_len_a=decoding.get("max_len_a", 1.5), max_len_b=decoding.get("max_len_b", 10))
        self.batch_tokens = batch_tokens
        self.max_batch_size = max_batch_size
        self.max_src_tokens = max_src_tokens

    @classmethod
    def from_folder(cls, folder: str, device: str = "auto", **kwargs) -> Translator:
        return cls(load_model_folder(folder, resolve_device(device)), **kwargs)

    def search_config(self, **changes) -> SearchConfig:
        """The model's decoding defaults with some settings changed (None values are ignored)."""
        return replace(self.defaults, **{k: v for k, v in changes.items() if v is not None})

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

    def translate(self, texts: list[str], config: SearchConfig | None = None) -> list[Translation]:
        config = config or self.defaults
        src_tok, tgt_tok = self.bundle.src_tokenizer, self.bundle.tgt_tokenizer
        stripped = [" ".join(t.split()) for t in texts]
        ids = [s[: self.max_src_tokens - 1] + [EOS_ID] for s in src_tok.encode(stripped)]
        results: list[Translation | None] = [None] * len(texts)
        for i, text in enumerate(stripped):
            if not text:
                results[i] = Translation(texts[i], [], [TranslationHypothesis("", 0.0, 0.0, [])])
        todo = [i for i in range(len(texts)) if results[i] is None]
        groups = self.batches([len(ids[i]) for i in todo])
        max_rows = None
        if config.beam_size == 1 and groups:
            # Greedy search batches continuously: one stream, longest first (see greedy_search), as many
            # rows at a time as the largest batch would have.
            max_rows = max(len(g) for g in groups)
            stream = [i for g in reversed(groups) for i in reversed(g)]
            groups = [stream[i: i + self.STREAM_SENTENCES] for i in range(0, len(stream), self.STREAM_SENTENCES)]
        for group in groups:
            rows = [todo[g] for g in group]
            src = torch.nn.utils.rnn.pad_sequence([torch.tensor(ids[i]) for i in rows], batch_first=True)
            lengths = torch.tensor([len(ids[i]) for i in rows])
            found = search(self.model, src.to(self.device), lengths.to(self.device), config, max_rows)
            decoded = iter(tgt_tok.decode([h.tokens for hyps in found for h in hyps]))  # one call for the group
            for i, hyps in zip(rows, found):
                results[i] = Translation(texts[i], src_tok.id_to_piece(ids[i][:-1]), [
                    TranslationHypothesis(next(decoded), h.score, h.log_prob, tgt_tok.id_to_piece(h.tokens),
                                          None if h.attention is None else h.attention.tolist())
                    for h in hyps])
        return results  # type: ignore[return-value]

    def translate_stream(self, lines: Iterable[str], config: SearchConfig | None = None,
                         chunk_lines: int = 512) -> Iterator[Translation]:
        """Translate an endless stream in chunks, keeping order, without reading it all into memory."""
        iterator = iter(lines)
        while chunk := list(islice(iterator, chunk_lines)):
            yield from self.translate(chunk, config)
