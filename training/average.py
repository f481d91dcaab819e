"""`rnnmt average`: one model folder from the mean of several (checkpoint averaging across runs or stages).

A training run already averages its best checkpoints (train.average_best). This averages finished model
folders, e.g. the two stages of a recipe (configs/*-continue.yaml starts from the first with train.init_from,
so both lie in one basin of the loss): their weights are averaged parameter by parameter in fp32. The folders
must share the architecture and the SentencePiece files byte for byte; the new folder takes the last one's
metadata (languages, decoding) and records where it came from under `averaged_from`.
With `checkpoints`, each folder is a training run and what is averaged is every best checkpoint it kept
(checkpoints/best-step*.safetensors, train.keep_best), all with equal weight: more points of the trajectory.
"""

from __future__ import annotations

from pathlib import Path

import torch

from model.checkpoint import load_model_folder, read_config, save_model_folder, unique_state_dict
from model.errors import InputError
from training.checkpoints import average_weights


def tokenizer_files(folder: Path) -> list[Path]:
    names = read_config(folder).get("tokenizer", {})
    return [folder / names.get(side, "spm.model") for side in ("src", "tgt")]


def kept_checkpoints(run: Path) -> list[Path]:
    found = sorted((run / "checkpoints").glob("best-step*.safetensors"))
    if not found:
        raise InputError(f"{run} holds no kept checkpoints (checkpoints/best-step*.safetensors)")
    return found


def average_folders(folders: list[Path], out: Path, checkpoints: bool = False) -> Path:
    """Write the average of `folders` (at least two; or their kept checkpoints) to `out`, published whole."""
    if len(folders) < 2 and not checkpoints:
        raise InputError("give at least two model folders to average")
    bundles = [load_model_folder(folder) for folder in folders]
    first, spm = bundles[0].model.config, [f.read_bytes() for f in tokenizer_files(folders[0])]
    for folder, bundle in zip(folders[1:], bundles[1:], strict=True):
        if bundle.model.config != first:
            raise InputError(f"{folder} has another architecture than {folders[0]}: only like models average")
        if [f.read_bytes() for f in tokenizer_files(folder)] != spm:
            raise InputError(f"{folder} has another SentencePiece model than {folders[0]}")
    model = bundles[-1].model
    if checkpoints:
        paths = [path for folder in folders for path in kept_checkpoints(folder)]
        weights = average_weights(paths)
        expected = unique_state_dict(model)
        if set(weights) != set(expected) or any(weights[k].shape != expected[k].shape for k in expected):
            raise InputError(f"the checkpoints of {', '.join(map(str, folders))} do not fit the model's architecture")
        sources = [str(path) for path in paths]
    else:
        states = [bundle.model.state_dict() for bundle in bundles]
        weights = {name: torch.stack([s[name].float() for s in states]).mean(0) for name in states[0]}
        sources = [str(folder) for folder in folders]
    with torch.no_grad():
        model.load_state_dict(weights, strict=False)  # tied weights are stored once: their other names follow
    config = read_config(folders[-1])
    meta = {k: v for k, v in config.items() if k not in ("format", "version", "model", "tokenizer", "tuning")}
    meta["averaged_from"] = sources
    src, tgt = tokenizer_files(folders[-1])
    return save_model_folder(out, model, meta, src, tgt)
