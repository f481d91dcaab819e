"""SentencePiece wrapper with the fixed special ids every rnnmt model uses."""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm

from model.config import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from model.errors import ModelLoadError


class Tokenizer:
    """Text <-> SentencePiece ids. Encoding never adds BOS/EOS; the model code decides where they go."""

    # Up to this many texts, one plain call per text. A list call hands the texts to SentencePiece's thread
    # pool: ~35 us to set up when the cores are idle, but ~1 ms for one sentence right after a decoding step,
    # while PyTorch's OpenMP threads still spin on both cores (the service's single-sentence path; measured
    # in `Translator.translate`, int8 greedy, 2 threads). A plain call is ~4 us a sentence.
    FEW = 16

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.processor = spm.SentencePieceProcessor()
        try:
            self.processor.Load(str(self.path))
        except (OSError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot load SentencePiece model {self.path}: {exc}") from None
        expected = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}
        actual = {
            "pad": self.processor.pad_id(),
            "unk": self.processor.unk_id(),
            "bos": self.processor.bos_id(),
            "eos": self.processor.eos_id(),
        }
        if actual != expected:
            raise ModelLoadError(f"SentencePiece model {self.path} has special ids {actual}, expected {expected}")
        # Pieces by id, read once: a Python-level IdToPiece call per token cost ~3 us (40 ms per 512 sentences).
        self.pieces = [self.processor.IdToPiece(i) for i in range(self.processor.GetPieceSize())]

    @property
    def vocab_size(self) -> int:
        return self.processor.GetPieceSize()

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Ids of many texts. A list call runs SentencePiece's thread pool, worth it for a batch; a few texts
        are encoded one call each (see FEW)."""
        if len(texts) <= self.FEW:
            return [self.processor.Encode(text, out_type=int) for text in texts]
        return self.processor.Encode(texts, out_type=int)

    def encode_pieces(self, text: str) -> list[str]:
        return self.processor.Encode(text, out_type=str)

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Many sentences in one call: each Decode call of a list sets up a thread pool (about 0.2 ms), so
        one call per sentence cost more than greedy decoding of it on 2 cores (measured: 86 ms vs 2.5 ms
        for 512 sentences). A few sentences are decoded one call each, without the pool (see FEW)."""
        if len(ids) <= self.FEW:
            return [self.processor.Decode(one) for one in ids]
        return self.processor.Decode(ids)

    def id_to_piece(self, ids: list[int]) -> list[str]:
        return [self.pieces[i] for i in ids]
