"""The training loop: token-bucket batches, Adam, clipping, label smoothing, plateau decay, validation
(perplexity + greedy BLEU), early stopping, best-checkpoint keeping, exact resume, DDP via torchrun.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from model.atomic import append_line, remove_leftovers
from model.checkpoint import ModelBundle, load_model_folder, read_config, save_model_folder
from model.config import PAD_ID
from model.errors import ConfigError
from model.kernels import choose_kernel
from model.seq2seq import Seq2Seq
from model.tokenizer import Tokenizer
from model.translator import Translator, resolve_device
from training.checkpoints import average_weights, load_training_state, save_training_state, save_weights
from training.config import ExperimentConfig
from training.data import Batch, make_batch, read_lines, token_batches
from training.evaluate import corpus_scores
from training.loss import smoothed_cross_entropy
from training.prepare import prepare, spm_files
from training.shards import TokenCorpus

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Everything about the loop's position that --resume restores (stored as JSON in the checkpoint)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    lr: float = 0.0
    best_bleu: float = -1.0  # best scheduled validation (drives early stopping and lr decay)
    stale_validations: int = 0
    plateau: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    tgt_tokens: int = 0
    kept: list[dict[str, Any]] = field(default_factory=list)  # best checkpoints: {"bleu", "step", "file"}


@dataclass
class Corpus:
    src: list[list[int]]
    tgt: list[list[int]]


def _encode(tokenizer_src: Tokenizer, tokenizer_tgt: Tokenizer, folder: Path, split: str) -> Corpus:
    return Corpus(tokenizer_src.encode(read_lines(folder / f"{split}.src")),
                  tokenizer_tgt.encode(read_lines(folder / f"{split}.tgt")))


def adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Fused Adam (one kernel over all parameters; 4 ms vs 25 ms per step as foreach on 2 CPU cores for the
    reference model), or foreach where this torch has no fused kernel for the device (CPU before 2.4)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr, foreach=True)


class Trainer:
    def __init__(self, config: ExperimentConfig, out_dir: str | Path, device: str = "auto",
                 max_steps: int | None = None) -> None:
        self.config = config
        self.out = Path(out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = resolve_device(device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.max_steps = config.train.max_steps if max_steps is None else max_steps
        self._batches: tuple[int, list[np.ndarray]] = (-1, [])
        self.built = time.perf_counter()
        torch.set_num_threads(config.train.threads or max(1, (os.cpu_count() or 1) // self.world))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def setup(self, resume: bool) -> None:
        if self.world > 1:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.is_main:
            prepare(self.config.data)
        if self.world > 1:
            dist.barrier()
        prepared = Path(self.config.data.prepared_dir)
        self.src_spm, self.tgt_spm = spm_files(prepared, self.config.data.joint_vocab)
        self.src_tok, self.tgt_tok = Tokenizer(self.src_spm), Tokenizer(self.tgt_spm)
        self.train_data = TokenCorpus(prepared, "train")  # memory-mapped token ids, any size
        self.valid_text = (read_lines(prepared / "valid.src"), read_lines(prepared / "valid.tgt"))
        self.valid_data = _encode(self.src_tok, self.tgt_tok, prepared, "valid")
        torch.manual_seed(self.config.train.seed)
        self.model = Seq2Seq(self.config.model_config(self.src_tok.vocab_size, self.tgt_tok.vocab_size)).to(self.device)
        # The training recurrence for this device; CUDA trains under autocast, which the fused one does not allow.
        cuda = self.device.type == "cuda"
        self.model.use_kernel(choose_kernel(self.model.config, self.device, "fp32", autocast=cuda))
        self.optimizer = adam(list(self.model.parameters()), self.config.train.lr)
        self.progress = Progress(lr=self.config.train.lr)
        self.resumed_step = -1  # a checkpoint is written by a validation: its step needs none again
        last = self.ckpt_dir / "last.safetensors"
        if resume and last.is_file():
            self.progress = Progress(**load_training_state(last, self.model, self.optimizer))
            for group in self.optimizer.param_groups:  # the checkpoint was saved before a decay reached them
                group["lr"] = self.progress.lr
            self.resumed_step = self.progress.step
            log.info("resumed from %s at step %d", last, self.progress.step)
        elif last.is_file() and not resume:
            raise ConfigError(f"{self.out} already holds a training run; pass --resume or choose another --out")
        elif self.config.train.init_from:
            start_from(self.model, Path(self.config.train.init_from), (self.src_spm, self.tgt_spm))
        self.ddp_model = (torch.nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda" and not self._bf16())
        if self.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            for leftover in remove_leftovers(self.out) + remove_leftovers(self.ckpt_dir):
                log.info("removed %s, left by an interrupted write", leftover)

    def _bf16(self) -> bool:
        return self.device.type == "cuda" and torch.cuda.is_bf16_supported()

    def _autocast(self):
        if self.device.type != "cuda":
            return nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if self._bf16() else torch.float16)

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of an epoch (every rank computes the same list and takes every world-th)."""
        if self._batches[0] != epoch:
            t = self.config.train
            batches = token_batches(self.train_data.src_lens, self.train_data.tgt_lens, t.batch_tokens, t.seed, epoch)
            usable = len(batches) - len(batches) % self.world  # every rank takes the same number of steps
            self._batches = (epoch, batches[self.rank:usable:self.world])
        return self._batches[1]

    def train_step(self, batch: Batch) -> tuple[float, int]:
        t = self.config.train
        self.model.train()
        with self._autocast():
            logits = self.ddp_model(batch.src, batch.src_lengths, batch.tgt_in)  # (batch, tgt_len, vocab)
        loss_sum, nll_sum = smoothed_cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), t.label_smoothing,
                                                   PAD_ID)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss_sum / batch.num_tgt_tokens).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(nll_sum.detach()) / batch.num_tgt_tokens, batch.num_tgt_tokens

    def run(self) -> dict[str, Any]:
        t, p = self.config.train, self.progress
        steps_per_epoch = len(self.epoch_batches(0))
        total = self.max_steps or t.max_epochs * steps_per_epoch
        window_tokens, window_start, last_validated = 0, time.perf_counter(), self.resumed_step
        first_step = True
        # a context, so that the bar is closed before an error is printed: the error stays the last line
        with tqdm(total=total, initial=p.step, disable=not self.is_main, unit="step", dynamic_ncols=True) as bar:
            while not self._finished(steps_per_epoch):
                batches = self.epoch_batches(p.epoch)
                for indices in batches[p.batch_in_epoch:]:
                    batch = make_batch(*self.train_data.pairs(indices), self.model.config.right_to_left).to(self.device)
                    step_start = time.perf_counter()
                    nll, tokens = self.train_step(batch)
                    p.train_seconds += time.perf_counter() - step_start
                    if first_step:
                        log.info("first step done, %.1f s after the trainer was built",
                                 time.perf_counter() - self.built)
                        first_step = False
                    p.step, p.batch_in_epoch, p.tgt_tokens = p.step + 1, p.batch_in_epoch + 1, p.tgt_tokens + tokens
                    window_tokens += tokens * self.world
                    elapsed = time.perf_counter() - window_start
                    bar.update(1)
                    bar.set_postfix(epoch=p.epoch, nll=f"{nll:.3f}", lr=f"{p.lr:.1e}",
                                    tok_s=f"{window_tokens / elapsed:.0f}")
                    if p.step % t.valid_every == 0:
                        self.validate(scheduled=True)
                        last_validated = p.step
                        window_tokens, window_start = 0, time.perf_counter()
                    if self._finished(steps_per_epoch):
                        break
                else:
                    p.epoch, p.batch_in_epoch = p.epoch + 1, 0
        if last_validated != p.step:
            self.validate(scheduled=False)  # a report only: resuming later must not see a different schedule
        return self.export() if self.is_main else {}

    def _finished(self, steps_per_epoch: int) -> bool:
        p = self.progress
        return (p.stopped_early or (self.max_steps and p.step >= self.max_steps)
                or p.epoch >= self.config.train.max_epochs or steps_per_epoch == 0)

    @torch.no_grad()
    def valid_perplexity(self) -> float:
        self.model.eval()
        data, nll, tokens = self.valid_data, 0.0, 0
        for indices in token_batches([len(s) for s in data.src], [len(s) for s in data.tgt],
                                     self.config.train.batch_tokens * 2, 0, 0, shuffle=False):
            batch = make_batch([data.src[i] for i in indices], [data.tgt[i] for i in indices],
                               self.model.config.right_to_left).to(self.device)
            logits = self.model(batch.src, batch.src_lengths, batch.tgt_in)
            nll += float(smoothed_cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), 0.0, PAD_ID)[1])
            tokens += batch.num_tgt_tokens
        return math.exp(nll / tokens)

    def translator(self) -> Translator:
        """The model being trained as a translator, in eval mode (no dropout): validation and the export's choice
        between the best checkpoint and their average both decode through it."""
        self.model.eval()
        bundle = ModelBundle(self.model, self.src_tok, self.tgt_tok, self.out, self.model_meta())
        return Translator(bundle, bundle.decoding.changed(beam_size=self.config.train.valid_beam_size),
                          batch_tokens=4000)

    def validate(self, scheduled: bool) -> None:
        """Rank 0 scores val; every rank gets the decision (lr, early stop) so they stay in step."""
        p = self.progress
        if self.is_main:
            ppl = self.valid_perplexity()
            hyps = [tr.text for tr in self.translator().translate(self.valid_text[0])]
            scores = corpus_scores(hyps, self.valid_text[1])
            self._record(scores.bleu, ppl, scores.bleu_signature, scheduled)
        if self.world > 1:
            decision = [p.lr, p.stopped_early]
            dist.broadcast_object_list(decision, src=0)
            p.lr, p.stopped_early = decision
        for group in self.optimizer.param_groups:
            group["lr"] = p.lr

    def _record(self, bleu: float, ppl: float, signature: str, scheduled: bool) -> None:
        t, p = self.config.train, self.progress
        if scheduled:
            if bleu > p.best_bleu:
                p.best_bleu, p.stale_validations, p.plateau = bleu, 0, 0
            else:
                p.stale_validations, p.plateau = p.stale_validations + 1, p.plateau + 1
                if p.plateau >= t.lr_patience and p.lr > t.min_lr:
                    p.lr, p.plateau = max(t.min_lr, p.lr * t.lr_decay), 0
                    log.info("validation plateau: learning rate now %.2e", p.lr)
                p.stopped_early = p.stale_validations >= t.early_stopping_patience
        dropped = self._keep_best(bleu)
        record = {"step": p.step, "epoch": p.epoch, "val_bleu": bleu, "val_ppl": round(ppl, 3), "lr": p.lr,
                  "train_seconds": round(p.train_seconds, 1), "scheduled": scheduled,
                  "train_tgt_tokens_per_s": round(p.tgt_tokens / max(p.train_seconds, 1e-9) * self.world, 1),
                  "bleu_signature": signature}
        append_line(self.out / "validations.jsonl", json.dumps(record))
        tqdm.write(f"step {p.step}: val BLEU {bleu:.2f} ppl {ppl:.2f} (best {p.best_bleu:.2f}) lr {p.lr:.1e}")
        save_training_state(self.ckpt_dir / "last.safetensors", self.model, self.optimizer, asdict(p))
        for name in dropped:  # only now: until last.safetensors lands, the one before it still lists them
            (self.ckpt_dir / name).unlink(missing_ok=True)

    def _keep_best(self, bleu: float) -> list[str]:
        """Save the weights if they are among the best `keep_best`; the files that dropped out of the list."""
        p, keep = self.progress, self.config.train.keep_best
        if len(p.kept) >= keep and bleu <= min(k["bleu"] for k in p.kept):
            return []
        name = f"best-step{p.step}.safetensors"
        save_weights(self.ckpt_dir / name, self.model)
        p.kept = sorted(p.kept + [{"bleu": bleu, "step": p.step, "file": name}], key=lambda k: -k["bleu"])
        dropped = [k["file"] for k in p.kept[keep:]]
        p.kept = p.kept[:keep]
        return dropped

    def model_meta(self) -> dict[str, Any]:
        src, tgt = self.config.data.langs
        return {"source_lang": src, "target_lang": tgt, "decoding": asdict(self.config.decode),
                "training": {"config": self.config.to_dict(), "steps": self.progress.step}}

    def export(self) -> dict[str, Any]:
        """Write the model folder into --out: the best checkpoint, or the average of the best few if better."""
        p, t = self.progress, self.config.train
        best = p.kept[0]
        weights = average_weights([self.ckpt_dir / best["file"]])
        chosen = f"best checkpoint (step {best['step']})"
        if t.average_best > 1 and len(p.kept) > 1:
            files = [self.ckpt_dir / k["file"] for k in p.kept[: t.average_best]]
            self.model.load_state_dict(average_weights(files), strict=False)
            hyps = [tr.text for tr in self.translator().translate(self.valid_text[0])]
            averaged = corpus_scores(hyps, self.valid_text[1]).bleu
            log.info("average of %d best checkpoints: val BLEU %.2f (best single %.2f)", len(files), averaged,
                     best["bleu"])
            if averaged > best["bleu"]:
                weights, chosen = average_weights(files), f"average of {len(files)} best checkpoints"
        self.model.load_state_dict(weights, strict=False)
        hyps = [tr.text for tr in self.translator().translate(self.valid_text[0])]
        scores = corpus_scores(hyps, self.valid_text[1])
        metrics = {"val_bleu_greedy": scores.bleu, "val_chrf_greedy": scores.chrf,
                   "bleu_signature": scores.bleu_signature, "chrf_signature": scores.chrf_signature,
                   "weights": chosen, "steps": p.step, "epochs": p.epoch, "train_seconds": round(p.train_seconds, 1),
                   "train_tgt_tokens_per_s": round(p.tgt_tokens / max(p.train_seconds, 1e-9) * self.world, 1),
                   "params": self.model.num_parameters(), "stopped_early": p.stopped_early}
        save_model_folder(self.out, self.model, self.model_meta(), self.src_spm, self.tgt_spm, fp16=t.fp16_export,
                          extra_files={"metrics.json": (json.dumps(metrics, indent=2) + "\n").encode()}, in_run=True)
        return metrics


def start_from(model: Seq2Seq, folder: Path, spm: tuple[Path, Path]) -> None:
    """Copy a model folder's weights into a new run: same architecture, byte-identical tokenizer files (the
    token ids must mean the same pieces); the optimizer and the learning rate start afresh."""
    bundle = load_model_folder(folder)
    theirs, mine = bundle.model.state_dict(), model.state_dict()
    if set(theirs) != set(mine) or any(theirs[k].shape != mine[k].shape for k in mine):
        raise ConfigError(f"init_from {folder}: its architecture differs from this config's model section")
    files = read_config(folder).get("tokenizer", {})
    their_spm = [folder / files.get(side, "spm.model") for side in ("src", "tgt")]
    for mine, other in zip(spm, their_spm, strict=True):
        if mine.read_bytes() != other.read_bytes():
            raise ConfigError(f"init_from {folder}: {other.name} differs from the prepared {mine}; fine-tuning "
                              "needs the same SentencePiece model")
    model.load_state_dict(theirs)
    log.info("weights initialised from %s", folder)


def train(config: ExperimentConfig, out_dir: str | Path, device: str = "auto", max_steps: int | None = None,
          resume: bool = False) -> dict[str, Any]:
    trainer = Trainer(config, out_dir, device, max_steps)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    trainer.setup(resume)
    try:
        metrics = trainer.run()
        if trainer.world > 1:  # rank 0 finishes last (averaging, the final validation): leave together, or a rank
            dist.barrier()     # that tore gloo down early aborted ("terminate called ...") in 6 runs of 52
        return metrics
    finally:
        if trainer.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
