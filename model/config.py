"""The architecture of a model: one frozen dataclass, stored as config.json in every model folder."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from model.errors import ConfigError

CELLS = ("rnn", "gru", "lstm")
ATTENTIONS = ("bahdanau", "none")
TYING = ("none", "decoder", "all")

# SentencePiece ids are fixed so that every model folder agrees on them.
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a Seq2Seq (weights aside)."""

    src_vocab_size: int
    tgt_vocab_size: int
    emb_size: int = 256
    cell: str = "gru"
    encoder_hidden: int = 256  # per direction
    encoder_layers: int = 1
    bidirectional: bool = True
    decoder_hidden: int = 512
    decoder_layers: int = 1
    attention: str = "bahdanau"
    attention_size: int = 512
    readout_size: int = 256  # the layer before the vocabulary projection; = emb_size when tying
    dropout: float = 0.3  # between layers and on the readout
    emb_dropout: float = 0.2
    tie_embeddings: str = "decoder"  # none | decoder (tgt emb = output proj) | all (three-way, joint vocab)
    right_to_left: bool = False  # writes the target's pieces last to first: a second opinion for reranking

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"model.cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"model.attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")
        if self.tie_embeddings not in TYING:
            raise ConfigError(f"model.tie_embeddings must be one of {', '.join(TYING)}, got {self.tie_embeddings!r}")
        for name in ("src_vocab_size", "tgt_vocab_size", "emb_size", "encoder_hidden", "encoder_layers",
                     "decoder_hidden", "decoder_layers", "attention_size", "readout_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        for name in ("dropout", "emb_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {value!r}")
        if self.tie_embeddings != "none" and self.readout_size != self.emb_size:
            raise ConfigError("tied embeddings need model.readout_size == model.emb_size "
                              f"(got {self.readout_size} and {self.emb_size})")
        if self.tie_embeddings == "all" and self.src_vocab_size != self.tgt_vocab_size:
            raise ConfigError("model.tie_embeddings=all needs a joint vocabulary (same source and target size)")

    @property
    def encoder_output_size(self) -> int:
        return self.encoder_hidden * (2 if self.bidirectional else 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model setting(s): {', '.join(unknown)}")
        return cls(**data)
