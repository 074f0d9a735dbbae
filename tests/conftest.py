"""Shared fixtures: generated audio (never third-party recordings) and a seeded random model on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from genre_model.models import build_model

SR = 22_050
SHARED = Path(__file__).resolve().parents[2] / "shared"
needs_shared = pytest.mark.skipif(
    not (SHARED / "gtzan" / "audio").is_dir(), reason=f"team data not found at {SHARED} (only on the team's machines)"
)


def tone(freq: float = 440.0, seconds: float = 2.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float = 2.0, sr: int = SR, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * sr))).clip(-1, 1).astype(np.float32)


def chirp(seconds: float = 2.0, sr: int = SR, f0: float = 100.0, f1: float = 5000.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return (0.5 * np.sin(phase)).astype(np.float32)


@pytest.fixture
def write_audio(tmp_path):
    """write_audio(name, samples, sr=SR, **soundfile_kwargs) -> Path in a temp dir."""

    def write(name: str, samples: np.ndarray, sr: int = SR, **kwargs) -> Path:
        path = tmp_path / name
        sf.write(path, samples, sr, **kwargs)
        return path

    return write


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    """A chunk-cnn from a seeded random init, saved like a trained one (tests never need real weights)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "chunk-cnn-random"
    build_model("chunk-cnn").save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def classifier(random_model_dir):
    from genre_model.inference import GenreClassifier

    return GenreClassifier.from_pretrained(random_model_dir, device="cpu")
