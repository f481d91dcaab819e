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
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from model.atomic import staged_folder
from model.config import ModelConfig
from model.errors import ConfigError, InputError, ModelLoadError, WriteError
from model.kernels import choose_kernel
from model.search import SearchConfig
from model.seq2seq import Seq2Seq
from model.shortlist import SHORTLIST, Shortlist
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
    shortlist: Shortlist | None = None  # the folder's shortlist.safetensors, if it has one (model/shortlist.py)

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


def load_weights(model: Seq2Seq, path: Path) -> None:
    """Copy the tensors of a safetensors file into the model's parameters, one at a time: the file is read
    through a memory map and each tensor converted (fp16 -> fp32) by the copy, so no second full set of weights
    exists during the load. Raises ModelLoadError for an unreadable file or one that does not fit the model."""
    expected = unique_state_dict(model)  # names and shapes; the parameters themselves are in `targets`
    targets = model.state_dict()
    try:
        with safe_open(str(path), framework="pt") as weights:
            names = set(weights.keys())
            if names != set(expected) or any(weights.get_slice(k).get_shape() != list(expected[k].shape)
                                             for k in expected):
                raise ModelLoadError(f"weights in {path} do not match the architecture in {CONFIG}")
            with torch.no_grad():
                for name in sorted(names):
                    targets[name].copy_(weights.get_tensor(name))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot read weights {path}: {exc}") from None


def load_model_folder(folder: str | Path, device: str | torch.device = "cpu", precision: str = "fp32") -> ModelBundle:
    """Load a model folder for inference: eval mode, float32 weights on the given device, decoding with the
    kernel for `precision` (fp32 | bf16 | int8 | auto; model/kernels/choice.py), chosen here once.

    A kernel that keeps its own copy of weights (the int8/bf16 step, the int8 encoder) has the fp32 copies
    released (`StepKernel.release`, `EncoderKernel.release`): such a bundle decodes in that precision only.
    Load at fp32 to switch kernels later (as `rnnmt bench` does) or to train.
    """
    folder = Path(folder)
    config = read_config(folder)
    try:
        model_config = ModelConfig.from_dict(config["model"])
    except (ConfigError, TypeError) as exc:
        raise ModelLoadError(f"{folder / CONFIG}: {exc}") from None
    tokenizer_files = config.get("tokenizer", {})
    src_name, tgt_name = tokenizer_files.get("src", "spm.model"), tokenizer_files.get("tgt", "spm.model")
    src_tok = Tokenizer(folder / src_name)
    tgt_tok = src_tok if tgt_name == src_name else Tokenizer(folder / tgt_name)  # a joint vocabulary: one in memory
    if src_tok.vocab_size != model_config.src_vocab_size or tgt_tok.vocab_size != model_config.tgt_vocab_size:
        raise ModelLoadError(
            f"SentencePiece vocabularies ({src_tok.vocab_size}, {tgt_tok.vocab_size}) do not match the model "
            f"({model_config.src_vocab_size}, {model_config.tgt_vocab_size}) in {folder}"
        )
    model = Seq2Seq(model_config)
    load_weights(model, folder / WEIGHTS)
    model.to(device).eval()
    kernel = choose_kernel(model_config, device, precision)
    model.use_kernel(kernel)
    log.info("%s: kernel %s", folder.name, kernel.describe())
    freed = (kernel.step.release(model.decoder) if kernel.step.release else 0) + (
        kernel.encoder.release(model.encoder.rnn) if kernel.encoder.release else 0)
    if freed:
        log.info("%s: released %.1f MB of fp32 weights that the %s kernels keep in their own form", folder.name,
                 freed / 2**20, kernel.precision)
    meta = {k: v for k, v in config.items() if k not in ("model", "tokenizer")}
    shortlist = Shortlist.load(folder / SHORTLIST) if (folder / SHORTLIST).is_file() else None
    if shortlist is not None and (shortlist.table.size(0), shortlist.ranked.numel()) != (
            model_config.src_vocab_size, model_config.tgt_vocab_size):
        raise ModelLoadError(f"{folder / SHORTLIST} was built for other vocabularies than the model's")
    bundle = ModelBundle(model=model, src_tokenizer=src_tok, tgt_tokenizer=tgt_tok, path=folder, meta=meta,
                         shortlist=shortlist)
    bundle.decoding  # noqa: B018 - a broken decoding section fails the load, not the first request
    return bundle


def find_reverse_folder(folder: str | Path) -> Path | None:
    """The model folder beside `folder` that translates the other way (its source and target swapped, left to
    right), if any: where reranking finds its reverse model (model/rerank.py) when none is named."""
    config = read_config(Path(folder))
    return _sibling(Path(folder), (config.get("target_lang"), config.get("source_lang")), right_to_left=False)


def find_right_to_left_folder(folder: str | Path) -> Path | None:
    """The right-to-left model folder beside `folder` of the same direction (ModelConfig.right_to_left), if any:
    reranking's second opinion (model/rerank.py) when none is named."""
    config = read_config(Path(folder))
    return _sibling(Path(folder), (config.get("source_lang"), config.get("target_lang")), right_to_left=True)


def is_right_to_left(config: dict) -> bool:
    """Whether a config.json describes a right-to-left model (a reranker, not a translator to serve)."""
    model = config.get("model")
    return isinstance(model, dict) and model.get("right_to_left") is True


def _sibling(folder: Path, langs: tuple[Any, Any], right_to_left: bool) -> Path | None:
    for sibling in sorted(folder.absolute().parent.iterdir()):
        if sibling.name.startswith(".") or sibling.resolve() == folder.resolve() or not (sibling / CONFIG).is_file():
            continue
        try:
            other = read_config(sibling)
        except ModelLoadError:
            continue
        if (other.get("source_lang"), other.get("target_lang")) == langs and is_right_to_left(other) == right_to_left:
            return sibling
    return None
