"""Reranking a beam's hypotheses with second opinions: the reverse model and the right-to-left model.

A small model's beam often ends on a fluent sentence that drops or invents content ("Es wird nicht, wie er?").
Two other models tell those apart, each unlike the searching model in its errors:
- the reverse model (target -> source) gives a faithful hypothesis a higher probability of having produced the
  source: the channel model of noisy-channel reranking without its language model (Yee et al. 2019,
  arXiv:1908.05731), the "reverse model" feature of n-best rescoring in Marian and WMT systems;
- the right-to-left model (same direction, ModelConfig.right_to_left) reads each hypothesis last piece first, so
  a bad ending that the left-to-right search committed to late is what it sees first (Liu et al. 2016,
  Sennrich et al. 2016 "Edinburgh NMT systems for WMT 16").

The ranking score of a hypothesis y of source x becomes

    score(y) = log p(y | x) / lp(|y|)  +  w_rev * log p(x | y) / |x|  +  w_r2l * log p_r2l(y | x) / |y|

the search's own length-normalized score plus each second opinion's log-probability per token (EOS included).
The weights are decoding settings (SearchConfig.reverse_weight, right_to_left_weight) that `rnnmt tune` chooses on
dev sets; 0 leaves a model out. Reranking needs beam search (greedy has nothing to choose from) and the models
loaded beside the forward one (Translator.use_reverse, use_right_to_left).

Both scores come from the search step itself, fed the tokens (`forced_log_probs`): the same kernel, at the same
precision, as the model translates with, so int8 models rerank too.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from model.config import BOS_ID, EOS_ID, PAD_ID
from model.kernels.selection import chunk_maxima, log_normalizer
from model.seq2seq import Seq2Seq

if TYPE_CHECKING:
    from model.search import SearchConfig
    from model.translator import Translation, TranslationHypothesis, Translator


@torch.inference_mode()
def forced_log_probs(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor,
                     tgt: torch.Tensor) -> torch.Tensor:
    """log p(tgt | src) of each row, summed over its tokens: the search step fed tgt one token at a time.

    src: (batch, src_len), tgt: (batch, tgt_len) padded with PAD_ID, each row's EOS included -> (batch,).
    """
    encoded = model.encode(src, src_lengths)
    state = model.init_state(encoded)
    rows = torch.arange(tgt.size(0), device=tgt.device)
    prev = torch.full_like(rows, BOS_ID)
    total = torch.zeros(tgt.size(0), device=tgt.device)
    for t in range(tgt.size(1)):
        logits, state, _ = model.decode_step(prev, state, encoded)  # (vocab, batch)
        gold = tgt[:, t]  # (batch,)
        step = logits[gold, rows] - log_normalizer(logits, chunk_maxima(logits))
        total += step.masked_fill(gold == PAD_ID, 0.0)
        prev = gold
    return total


def add_source_log_probs(reverse: Translator, translations: list[Translation]) -> None:
    """Store in every hypothesis the reverse model's log p(source | hypothesis) per source token (translations of
    empty sources, which were not searched, are left as they are)."""
    pairs = [(hyp, t.source) for t in translations if t.src_pieces for hyp in t.hypotheses]
    if not pairs:
        return
    hyp_ids = [s.ids or [EOS_ID] for s in reverse.encode([hyp.text for hyp, _ in pairs])]
    unique = list(dict.fromkeys(source for _, source in pairs))
    encoded = reverse.bundle.tgt_tokenizer.encode([" ".join(s.split()) for s in unique])
    src_ids = {s: ids[: reverse.max_src_tokens - 1] + [EOS_ID] for s, ids in zip(unique, encoded)}
    device = reverse.device
    pad = torch.nn.utils.rnn.pad_sequence
    for group in reverse.batches([len(ids) for ids in hyp_ids]):
        src = pad([torch.tensor(hyp_ids[i]) for i in group], batch_first=True, padding_value=PAD_ID)
        tgt = pad([torch.tensor(src_ids[pairs[i][1]]) for i in group], batch_first=True, padding_value=PAD_ID)
        lengths = torch.tensor([len(hyp_ids[i]) for i in group])
        totals = forced_log_probs(reverse.model, src.to(device), lengths.to(device), tgt.to(device)).tolist()
        for i, total in zip(group, totals):
            pairs[i][0].source_log_prob = total / len(src_ids[pairs[i][1]])


def add_right_to_left_log_probs(right_to_left: Translator, translations: list[Translation]) -> None:
    """Store in every hypothesis the right-to-left model's log p(hypothesis | source) per target token, its
    pieces fed last to first (translations of empty sources are left as they are)."""
    pairs = [(hyp, t.source) for t in translations if t.src_pieces for hyp in t.hypotheses]
    if not pairs:
        return
    unique = list(dict.fromkeys(source for _, source in pairs))
    src_ids = dict(zip(unique, (s.ids for s in right_to_left.encode(unique)), strict=True))
    encoded = right_to_left.bundle.tgt_tokenizer.encode([hyp.text for hyp, _ in pairs])
    tgt_ids = [ids[::-1] + [EOS_ID] for ids in encoded]
    device = right_to_left.device
    pad = torch.nn.utils.rnn.pad_sequence
    for group in right_to_left.batches([len(src_ids[source]) for _, source in pairs]):
        src = pad([torch.tensor(src_ids[pairs[i][1]]) for i in group], batch_first=True, padding_value=PAD_ID)
        tgt = pad([torch.tensor(tgt_ids[i]) for i in group], batch_first=True, padding_value=PAD_ID)
        lengths = torch.tensor([len(src_ids[pairs[i][1]]) for i in group])
        totals = forced_log_probs(right_to_left.model, src.to(device), lengths.to(device), tgt.to(device)).tolist()
        for i, total in zip(group, totals):
            pairs[i][0].right_to_left_log_prob = total / len(tgt_ids[i])


def reranked(translations: list[Translation], config: SearchConfig) -> list[Translation]:
    """The translations with their hypotheses ordered by score + the weighted second opinions (the config's
    reverse_weight and right_to_left_weight), the best n_best kept (new Translation objects: tune reranks the same
    beams with several weights)."""
    def rank(hyp: TranslationHypothesis) -> float:
        return (hyp.score + config.reverse_weight * (hyp.source_log_prob or 0.0)
                + config.right_to_left_weight * (hyp.right_to_left_log_prob or 0.0))

    return [replace(t, hypotheses=sorted(t.hypotheses, key=rank, reverse=True)[: config.n_best])
            for t in translations]
