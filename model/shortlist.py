"""A lexical shortlist: the target pieces a batch may produce, so search scores a few hundred, not all of them.

Marian and Bergamot decode this way on CPUs (Junczys-Dowmunt et al. 2018, "Marian: Cost-effective high-quality
neural machine translation in C++"). A model folder's `shortlist.safetensors` holds, built from training data by
`rnnmt shortlist` (training/shortlist.py):
- `frequent` (F,): the F most frequent target pieces, most frequent first;
- `table` (src_vocab, K): for every source piece, the K target pieces that co-occur with it most often beyond
  chance, best first (-1 where a piece has fewer).
A search's vocabulary is the union of the specials, the frequent pieces and the table rows of every source piece in
its batch (`Shortlist.vocabulary`). Its logits then cover only those pieces, and their log-normalizer too: the scores
are log-probabilities renormalized over the shortlist, as in Marian. `rnnmt shortlist` reports the BLEU it costs.

In search, a token is a row of that vocabulary (`TargetVocabulary.ids` maps rows to piece ids); the specials keep
their own ids as rows (ids[i] == i for PAD, UNK, BOS, EOS), so EOS_ID means EOS in both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from model.config import EOS_ID, PAD_ID
from model.errors import ModelLoadError

SHORTLIST = "shortlist.safetensors"
ROW_MULTIPLE = 64  # vocabularies are padded with frequent pieces to a multiple of this (model/kernels/selection.py)
SPECIALS = EOS_ID + 1  # PAD, UNK, BOS, EOS: ids 0..3
# A batch's vocabulary grows with its sentences (released en-de, 50 per source piece: 896 pieces of 10,000 for one
# sentence, 2,432 for 8, 4,224 for 32, 6,656 for 512). Over half of the vocabulary, the shortlist's fp32 product
# no longer beats the int8 product of all of it (greedy, 512 sentences: 0.90x): search the whole vocabulary then.
MAX_SHARE = 0.5


@dataclass
class TargetVocabulary:
    """The target pieces one search may produce: ids (rows,) ascending, the specials first at their own ids.

    Kernels keep their products restricted to these rows here (`product`), built once per search on first use.
    """

    ids: torch.Tensor  # (rows,) piece id of each logit row
    _products: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return self.ids.numel()

    def product(self, name: str, build: Callable[[torch.Tensor], Any]) -> Any:
        """The kernel product `name` restricted to these rows: build(ids) the first time, then kept."""
        if name not in self._products:
            self._products[name] = build(self.ids)
        return self._products[name]


@dataclass(frozen=True)
class Shortlist:
    ranked: torch.Tensor  # (tgt_vocab,) every target piece id, most frequent in the training data first
    frequent: int  # F: every vocabulary holds the first F of `ranked`
    table: torch.Tensor  # (src_vocab, K) candidate target ids per source piece, best first; -1 = none
    always: torch.Tensor = field(init=False, repr=False)  # (tgt_vocab,) bool: the specials and the frequent pieces

    def __post_init__(self) -> None:
        always = torch.zeros(self.ranked.numel(), dtype=torch.bool)
        always[:SPECIALS] = True
        always[self.ranked[: self.frequent]] = True
        object.__setattr__(self, "always", always)
        # -1 (none) points at PAD, which every vocabulary holds anyway: one indexing op a search, no filtering
        # int32 in memory: 2 MB, not 4, for the released models' 10,000 x 50
        object.__setattr__(self, "table", self.table.clamp(min=PAD_ID).int())

    @classmethod
    def load(cls, path: str | Path) -> Shortlist:
        """Read a shortlist file (safetensors: tensors only, nothing unpickled)."""
        try:
            with safe_open(str(path), framework="pt") as f:
                ranked, table = f.get_tensor("ranked").long(), f.get_tensor("table")
                frequent = int(f.get_tensor("frequent"))
        except Exception as exc:  # safetensors raises its own errors for truncated or foreign files
            raise ModelLoadError(f"cannot read shortlist {path}: {exc}") from None
        if ranked.dim() != 1 or table.dim() != 2 or not 0 <= frequent <= ranked.numel():
            raise ModelLoadError(f"{path}: expected ranked (tgt_vocab,), frequent <= tgt_vocab, table (src_vocab, K)")
        if table.numel() and (int(table.max()) >= ranked.numel() or int(table.min()) < -1):
            raise ModelLoadError(f"{path}: the table names target pieces outside the vocabulary")
        return cls(ranked, frequent, table)

    def tensors(self) -> dict[str, torch.Tensor]:
        """What `load` reads, in the file's compact form."""
        table = torch.where(self.table == PAD_ID, -1, self.table)  # PAD is never a candidate: -1, as built
        return {"ranked": self.ranked.int().contiguous(), "frequent": torch.tensor(self.frequent),
                "table": table.int().contiguous()}

    @property
    def sizes(self) -> tuple[int, int]:
        """(frequent pieces, candidates per source piece)."""
        return self.frequent, self.table.size(1)

    def vocabulary(self, src: torch.Tensor) -> TargetVocabulary | None:
        """src: (batch, src_len) source ids (PAD_ID padding) -> the vocabulary of a search over them; None (search
        the whole vocabulary) when it would hold more than MAX_SHARE of it."""
        taken = self.always.clone()  # (tgt_vocab,)
        taken[self.table[src.cpu().unique()].flatten()] = True  # PAD's row and the table's -1 mark PAD only
        short = -int(taken.sum()) % ROW_MULTIPLE  # pad with the next most frequent pieces
        if short:
            taken[self.ranked[~taken[self.ranked]][:short]] = True
        if int(taken.sum()) > MAX_SHARE * taken.numel():
            return None
        return TargetVocabulary(taken.nonzero().squeeze(1).to(src.device))
