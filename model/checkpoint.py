"""The model folder: config.json + model.safetensors + SentencePiece model(s). Nothing is unpickled.

config.json holds {"format", "version", "source_lang", "target_lang", "model": ModelConfig,
"tokenizer": {"src": file, "tgt": file}, "decoding": defaults}. Tied weights are stored once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from model.atomic import staged_folder
from model.config import ModelConfig
from model.errors import ConfigError, InputError, ModelLoadError, WriteError
from model.kernels import choose_kernel
from model.search import SearchConfig
from model.seq2seq import Seq2Seq
from model.tokenizer import Tokenizer

log = logging.getLogger(__name__)

FORMAT = "rnnmt-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass
class ModelBundle:
    """A loaded model folder: the network in eval mode, its tokenizers and its metadata."""

    model: Seq2Seq
    src_tokenizer: Tokenizer
    tgt_tokenizer: Tokenizer
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def source_lang(self) -> str:
        return self.meta.get("source_lang", "src")

    @property
    def target_lang(self) -> str:
        return self.meta.get("target_lang", "tgt")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def decoding(self) -> SearchConfig:
        """The model's decoding defaults: config.json's `decoding` section over SearchConfig's own (the one place
        they are read). Raises ModelLoadError for a section that is not valid settings."""
        section = self.meta.get("decoding") or {}
        try:
            if not isinstance(section, dict):
                raise TypeError("not a mapping")
            return SearchConfig.from_section(section)
        except (InputError, TypeError) as exc:
            raise ModelLoadError(f"{self.path / CONFIG}: the decoding section is not valid: {exc}") from None


def unique_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with each shared (tied) tensor kept once, as safetensors requires."""
    seen: set[int] = set()
    tensors = {}
    for name, tensor in model.state_dict(keep_vars=False).items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        tensors[name] = tensor.detach().contiguous()
    return tensors


def save_model_folder(
    folder: str | Path,
    model: Seq2Seq,
    meta: dict[str, Any],
    src_spm: str | Path,
    tgt_spm: str | Path,
    fp16: bool = False,
    extra_files: dict[str, bytes] | None = None,
    in_run: bool = False,
) -> Path:
    """Write a complete model folder, published as a whole (model/atomic.py): readers see the old folder or the
    new one. meta: source_lang, target_lang, decoding, anything else for config.json; extra_files: more files
    (README.md, metrics.json) by name. in_run: `folder` is a training run that also holds checkpoints, so the
    model's files are moved into it one by one, config.json last (without it the folder is not a model yet)."""
    folder = Path(folder)
    tensors = unique_state_dict(model)
    if fp16:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    tensors = {k: v.cpu() for k, v in tensors.items()}
    src_name, tgt_name = "src.spm.model", "tgt.spm.model"
    if Path(src_spm).resolve() == Path(tgt_spm).resolve():
        src_name = tgt_name = "spm.model"
    config = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        **meta,
        "model": model.config.to_dict(),
        "tokenizer": {"src": src_name, "tgt": tgt_name},
    }
    files = {src_name: Path(src_spm).read_bytes(), tgt_name: Path(tgt_spm).read_bytes(), WEIGHTS: save(tensors),
             **(extra_files or {}), CONFIG: (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode()}
    with staged_folder(folder, merge_last=CONFIG if in_run else None) as staging:
        for name, data in files.items():
            try:
                (staging / name).write_bytes(data)
            except OSError as exc:  # named by its final path, not the staging folder's
                raise WriteError(f"cannot write {folder / name}: {exc.strerror or exc}") from None
    return folder


def read_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"model folder not found: {folder}")
    config_path = folder / CONFIG
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{folder} is not an rnnmt model folder (no {CONFIG})") from None
    except OSError as exc:  # a symlink loop, a folder named config.json, no permission
        raise ModelLoadError(f"cannot read {config_path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or "model" not in config:
        raise ModelLoadError(f"{config_path} is not an rnnmt model config")
    version = config.get("version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelLoadError(f"{config_path} has format version {version!r}; this rnnmt reads versions up to "
                             f"{FORMAT_VERSION}: upgrade rnnmt to load it")
    return config


def load_model_folder(folder: str | Path, device: str | torch.device = "cpu", precision: str = "fp32") -> ModelBundle:
    """Load a model folder for inference: eval mode, float32 weights on the given device, decoding with the
    kernel for `precision` (fp32 | bf16 | int8 | auto; model/kernels/choice.py), chosen here once."""
    folder = Path(folder)
    config = read_config(folder)
    try:
        model_config = ModelConfig.from_dict(config["model"])
    except (ConfigError, TypeError) as exc:
        raise ModelLoadError(f"{folder / CONFIG}: {exc}") from None
    tokenizer_files = config.get("tokenizer", {})
    src_tok = Tokenizer(folder / tokenizer_files.get("src", "spm.model"))
    tgt_tok = Tokenizer(folder / tokenizer_files.get("tgt", "spm.model"))
    if src_tok.vocab_size != model_config.src_vocab_size or tgt_tok.vocab_size != model_config.tgt_vocab_size:
        raise ModelLoadError(
            f"SentencePiece vocabularies ({src_tok.vocab_size}, {tgt_tok.vocab_size}) do not match the model "
            f"({model_config.src_vocab_size}, {model_config.tgt_vocab_size}) in {folder}"
        )
    model = Seq2Seq(model_config)
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read weights {folder / WEIGHTS}: {exc}") from None
    expected = unique_state_dict(model)
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in expected):
        raise ModelLoadError(f"weights in {folder / WEIGHTS} do not match the architecture in {CONFIG}")
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
    model.to(device).eval()
    model.use_kernel(choose_kernel(model_config, device, precision))
    log.info("%s: kernel %s", folder.name, model.kernel.describe())
    meta = {k: v for k, v in config.items() if k not in ("model", "tokenizer")}
    bundle = ModelBundle(model=model, src_tokenizer=src_tok, tgt_tokenizer=tgt_tok, path=folder, meta=meta)
    bundle.decoding  # noqa: B018 - a broken decoding section fails the load, not the first request
    return bundle
