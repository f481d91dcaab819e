"""The encoder-decoder: `encode` once, `decode_step` per step (for search), `forward` for training.

Both decode_step and forward run the model's kernel (model/kernels/): the search step and the training
recurrence chosen once for its configuration, device and precision, by whoever builds the model for a
purpose (the model-folder loader, the trainer); a new model starts with the fp32 choice for the CPU.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F

from model.config import PAD_ID, ModelConfig
from model.decoder import ConditionalDecoder, DecoderState
from model.encoder import EncoderOutput, RecurrentEncoder
from model.kernels import Kernel, choose_kernel
from model.kernels.base import StepFn
from model.shortlist import TargetVocabulary

log = logging.getLogger(__name__)


class Seq2Seq(nn.Module):
    """RNN encoder-decoder (Sutskever et al. 2014; Cho et al. 2014) with optional Bahdanau attention."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tgt_embedding = nn.Embedding(config.tgt_vocab_size, config.emb_size, padding_idx=PAD_ID)
        if config.tie_embeddings == "all":
            self.src_embedding = self.tgt_embedding  # three-way tying over a joint vocabulary
        else:
            self.src_embedding = nn.Embedding(config.src_vocab_size, config.emb_size, padding_idx=PAD_ID)
        self.encoder = RecurrentEncoder(config, self.src_embedding)
        self.decoder = ConditionalDecoder(config, self.tgt_embedding)
        self._init_weights()
        self.use_kernel(choose_kernel(config, "cpu", "fp32"))

    def use_kernel(self, kernel: Kernel) -> None:
        """Run `kernel` from now on. Call it after the weights are final (loaded) and on their device:
        a lower-precision step keeps its own copy of the weights, made here."""
        self.kernel = kernel
        self._search_step: StepFn = kernel.step.bind(self.decoder)
        self.encoder.run_rnn = kernel.encoder.bind(self.encoder.rnn)

    def _init_weights(self) -> None:
        for name, param in self.named_parameters():
            if "embedding" in name:
                nn.init.normal_(param, mean=0.0, std=self.config.emb_size**-0.5)
            elif param.dim() > 1:
                nn.init.xavier_uniform_(param)
            else:
                nn.init.zeros_(param)
        with torch.no_grad():
            self.tgt_embedding.weight[PAD_ID].zero_()
            self.src_embedding.weight[PAD_ID].zero_()

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> EncoderOutput:
        """src: (batch, src_len) ids padded with PAD_ID; src_lengths: (batch,)."""
        outputs, final = self.encoder(src, src_lengths)  # (batch, src_len, enc_out), (batch, enc_out)
        mask = src != PAD_ID  # (batch, src_len)
        attention = self.decoder.attention
        keys = attention.project_keys(outputs) if attention is not None else None
        return EncoderOutput(outputs=outputs, final=final, mask=mask, keys=keys)

    def init_state(self, encoded: EncoderOutput) -> DecoderState:
        return self.decoder.init_state(encoded)

    def decode_step(
        self, prev_tokens: torch.Tensor, state: DecoderState, encoded: EncoderOutput,
        vocab: TargetVocabulary | None = None,
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """One decoder step for search.

        prev_tokens: (batch,) -> logits (vocab, batch), the new state and attention (batch, src_len).
        With a shortlist's vocabulary (model/shortlist.py) tokens are its rows, and so are the logits' rows.
        Vocabulary-major in shape (a kernel may return a transposed view of row-major memory: index it,
        do not flatten it), and not normalized: search needs log p(v | row b) = logits[v, b] - log_normalizer[b]
        only for the few tokens it keeps (model/kernels/selection.py). Search steps other than the
        reference assume eval mode (no dropout), as search runs.
        """
        ids = prev_tokens if vocab is None else vocab.ids[prev_tokens]  # (batch,) piece ids
        # The table read directly (a kernel may keep it in fp16: model/kernels/row_major.py), not through the
        # embedding and dropout modules: their calls took 20-28 us a step against 7.5 (one sentence, AMX).
        prev_embedded = F.embedding(ids, self.tgt_embedding.weight).float()  # (batch, emb)
        if self.training:
            prev_embedded = self.decoder.emb_dropout(prev_embedded)
        logits, state, weights = self._search_step(prev_embedded, state, encoded, vocab)
        return logits.float(), state, weights

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (batch, tgt_len, vocab) for tgt_in (batch, tgt_len), which starts with BOS."""
        return self.decoder(tgt_in, self.encode(src, src_lengths), self.kernel.recurrence.run)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
