"""Training configuration: YAML -> frozen dataclasses, `--set section.key=value` overrides, validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from model.config import ModelConfig
from model.errors import ConfigError, InputError
from model.search import SearchConfig
from training.prepare import DataConfig


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 42
    batch_tokens: int = 1100  # padded tokens (sentences x longest side) per batch, ~64 Multi30k sentences
    lr: float = 1e-3
    min_lr: float = 1e-5
    lr_decay: float = 0.5  # multiply the learning rate on a validation plateau
    lr_patience: int = 2  # validations without improvement before decaying
    clip_grad_norm: float = 1.0
    label_smoothing: float = 0.1
    max_steps: int = 0  # 0 = until max_epochs or early stopping
    max_epochs: int = 30
    valid_every: int = 500  # steps
    early_stopping_patience: int = 6  # validations without BLEU improvement
    keep_best: int = 3  # checkpoints kept (and averaged at the end when average_best > 1)
    average_best: int = 1
    valid_beam_size: int = 1  # greedy validation BLEU
    threads: int = 0  # 0 = every core torch sees
    fp16_export: bool = False
    init_from: str = ""  # a model folder whose weights start this run (fine-tuning, a warm restart); same tokenizer


CODE_DEFAULTS = SearchConfig()


@dataclass(frozen=True)
class DecodeDefaults:
    """Decoding settings stored in the model folder's config.json (tuned on val); what a recipe leaves out is
    SearchConfig's own default, the one place those are written."""

    beam_size: int = CODE_DEFAULTS.beam_size
    length_penalty: float = CODE_DEFAULTS.length_penalty
    max_len_a: float = CODE_DEFAULTS.max_len_a
    max_len_b: int = CODE_DEFAULTS.max_len_b


@dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig minus the vocabulary sizes
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeDefaults = field(default_factory=DecodeDefaults)

    def model_config(self, src_vocab_size: int, tgt_vocab_size: int) -> ModelConfig:
        return ModelConfig(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, **self.model)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {"data": DataConfig, "train": TrainConfig, "decode": DecodeDefaults}
MODEL_KEYS = {f.name for f in fields(ModelConfig)} - {"src_vocab_size", "tgt_vocab_size"}


def _check_type(section: str, key: str, value: Any, default: Any) -> Any:
    """Accept the default's type (int where a float is expected; None where the default is None)."""
    where = f"{section}.{key}"
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
    elif isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
    elif isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def _build_section(name: str, cls: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"section {name!r} must be a mapping")
    defaults = cls()
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s) in {name}: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    checked = {k: _check_type(name, k, v, getattr(defaults, k)) for k, v in values.items()}
    return cls(**checked)


def _validate(config: ExperimentConfig) -> None:
    t = config.train
    positive = {"batch_tokens": t.batch_tokens, "valid_every": t.valid_every, "keep_best": t.keep_best,
                "average_best": t.average_best, "max_epochs": t.max_epochs, "valid_beam_size": t.valid_beam_size}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {value}")
    if t.lr <= 0 or not 0 < t.lr_decay <= 1 or t.max_steps < 0 or t.threads < 0:
        raise ConfigError("train.lr must be > 0, train.lr_decay in (0, 1], max_steps and threads >= 0")
    if not 0 <= t.label_smoothing < 1:
        raise ConfigError(f"train.label_smoothing must be in [0, 1), got {t.label_smoothing}")
    if t.average_best > t.keep_best:
        raise ConfigError("train.average_best cannot exceed train.keep_best")
    if config.data.vocab_size < 16:
        raise ConfigError("data.vocab_size must be at least 16")
    config.data.langs  # noqa: B018 - validates the pair
    unknown = sorted(set(config.model) - MODEL_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s) in model: {', '.join(unknown)} (known: {', '.join(sorted(MODEL_KEYS))})")
    config.model_config(config.data.vocab_size, config.data.vocab_size)  # validates the architecture
    try:
        SearchConfig.from_section(dataclasses.asdict(config.decode))
    except InputError as exc:
        raise ConfigError(f"decode: {exc}") from None


def parse_override(text: str) -> tuple[str, str, Any]:
    """'section.key=value' with a YAML value: 'model.cell=lstm', 'train.lr=5e-4', 'data.data_dir=null'."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    path, raw = text.split("=", 1)
    section, key = path.split(".", 1)
    if section not in (*SECTIONS, "model"):
        raise ConfigError(f"--set: unknown section {section!r} (sections: data, model, train, decode)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and "e" in value.lower():
        try:
            value = float(value)  # YAML 1.1 reads 5e-4 as a string
        except ValueError:
            pass
    return section, key, value


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping with sections data, model, train, decode")
    unknown = sorted(set(raw) - {*SECTIONS, "model"})
    if unknown:
        raise ConfigError(f"unknown section(s): {', '.join(unknown)} (sections: data, model, train, decode)")
    raw = {k: dict(v or {}) if isinstance(v, dict) or v is None else v for k, v in raw.items()}
    for text in overrides:
        section, key, value = parse_override(text)
        raw.setdefault(section, {})[key] = value
    model = raw.get("model", {})
    if not isinstance(model, dict):
        raise ConfigError("section 'model' must be a mapping")
    defaults = ModelConfig(src_vocab_size=1, tgt_vocab_size=1)
    model = {k: _check_type("model", k, v, getattr(defaults, k)) if k in MODEL_KEYS else v for k, v in model.items()}
    config = ExperimentConfig(
        data=_build_section("data", DataConfig, raw.get("data", {})),
        model=model,
        train=_build_section("train", TrainConfig, raw.get("train", {})),
        decode=_build_section("decode", DecodeDefaults, raw.get("decode", {})),
    )
    if config.train.init_from and not config.data.spm_from:  # its weights only mean something with its tokenizer
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, spm_from=config.train.init_from))
    _validate(config)
    return config
