"""Training checkpoints without pickle: one safetensors file holding weights, optimizer state and RNG,
with the loop's position and counters as JSON metadata. Written with model/atomic.py (temp file, fsync, rename,
fsync the folder), so killing the process at any moment, or a full disk, leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from model.atomic import atomic_write
from model.checkpoint import unique_state_dict
from model.errors import ModelLoadError


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        progress: dict[str, Any]) -> None:
    tensors = {f"model.{k}": v.cpu() for k, v in unique_state_dict(model).items()}
    optim_tensors, optim_meta = optimizer_tensors(optimizer)
    tensors.update(optim_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    metadata = {"progress": json.dumps(progress), "optimizer": json.dumps(optim_meta)}
    atomic_write(path, save(tensors, metadata=metadata))


def load_training_state(path: Path, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    """Restore weights, optimizer and RNG in place; return the loop's progress dict."""
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"cannot read checkpoint {path}: {exc}") from None
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights, strict=False)
    if optimizer is not None:
        restore_optimizer(optimizer, tensors, json.loads(metadata["optimizer"]))
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return json.loads(metadata["progress"])


def save_weights(path: Path, model: torch.nn.Module) -> None:
    """Weights only (the kept best checkpoints), atomically."""
    atomic_write(path, save({k: v.cpu() for k, v in unique_state_dict(model).items()}))


def average_weights(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of several weight files (checkpoint averaging)."""
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        for name, tensor in load_file(str(path)).items():
            total[name] = total.get(name, 0) + tensor.double()
    return {name: (tensor / len(paths)).float() for name, tensor in total.items()}
