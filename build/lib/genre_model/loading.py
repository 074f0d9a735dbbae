"""Find and load saved models: a local folder (``config.json`` + ``model.safetensors``) or a Hugging Face Hub repo."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download

from .base import GenreNet
from .registry import architecture

# The committed weights of a checkout (absent from an installed package: pass a folder or a Hub repo id there)
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "musicnn-genre"


class ModelNotFoundError(FileNotFoundError):
    """The weights asked for are not there (and are never replaced by random ones)."""


def resolve_model_name(path_or_repo_id: str | Path | None) -> str:
    """None -> the committed default; a bare architecture name -> ``weights/<name>``; else as given."""
    if path_or_repo_id is None:
        return str(WEIGHTS_DIR / DEFAULT_MODEL)
    name = str(path_or_repo_id)
    if (WEIGHTS_DIR / name / "config.json").is_file() and not Path(name).exists():
        return str(WEIGHTS_DIR / name)
    return name


def load_model(path_or_repo_id: str | Path | None = None, device: str | torch.device = "cpu") -> GenreNet:
    """Load a saved model (a local folder or a Hub repo id) in eval mode on ``device``, ready for inference
    (`GenreNet.prepare_inference`). Only safetensors."""
    name = resolve_model_name(path_or_repo_id)
    local = Path(name)
    looks_local = local.exists() or local.is_absolute() or name.startswith(".") or name.count("/") != 1
    if looks_local:
        if not (local / "config.json").is_file() or not (local / "model.safetensors").is_file():
            hint = "" if WEIGHTS_DIR.is_dir() else " (an installed package has no committed weights: pass --model)"
            raise ModelNotFoundError(
                f"No trained model at '{local}': expected config.json and model.safetensors there{hint}. "
                "Train one with `python -m train` or pass --model with a saved folder or Hub repo id."
            )
        config_file = local / "config.json"
    else:
        config_file = Path(hf_hub_download(name, "config.json"))
    arch = json.loads(config_file.read_text()).get("arch")
    try:
        cls = architecture(arch).cls
    except ValueError as err:
        raise ValueError(f"Model '{name}' has an unknown architecture: {err}") from None
    model = cls.from_pretrained(name, map_location=str(device)).to(device).eval()
    model.prepare_inference()
    return model
