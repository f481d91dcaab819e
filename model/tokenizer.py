"""SentencePiece wrapper with the fixed special ids every rnnmt model uses."""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm

from model.config import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from model.errors import ModelLoadError


class Tokenizer:
    """Text <-> SentencePiece ids. Encoding never adds BOS/EOS; the model code decides where they go."""

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
        return self.processor.Encode(texts, out_type=int)

    def encode_pieces(self, text: str) -> list[str]:
        return self.processor.Encode(text, out_type=str)

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Many sentences in one call: each Decode call of a list sets up a thread pool (about 0.2 ms), so
        one call per sentence cost more than greedy decoding of it on 2 cores (measured: 86 ms vs 2.5 ms
        for 512 sentences)."""
        return self.processor.Decode(ids)

    def id_to_piece(self, ids: list[int]) -> list[str]:
        return [self.pieces[i] for i in ids]
