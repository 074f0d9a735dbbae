"""Shared fixtures: generated audio (never third-party recordings) and a seeded random model on disk."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from bench.serve import running_app
from genre_model.inference import GenreClassifier
from genre_model.int8 import supported as int8_supported
from genre_model.models import MUSICNN_DIR
from genre_model.musicnn import MusicnnBackbone
from genre_model.registry import build_model

SR = 22_050
SHARED = Path(__file__).resolve().parents[2] / "shared"
needs_int8 = pytest.mark.skipif(not int8_supported(), reason="no x86 int8 kernels in this torch/CPU")
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


@contextlib.contextmanager
def served(model: str | Path | None) -> Iterator[str]:
    """The app on ``model``, its URL; afterwards, no traceback from our code in its output (Gradio logs a client
    closing a stream, ClientDisconnect, with a traceback of its own)."""
    with running_app(model) as app:
        yield app.url
    assert "app.py" not in app.output and "genre_model" not in app.output, app.output[-3000:]


@pytest.fixture(scope="module")
def server(random_model_dir):
    with served(random_model_dir) as url:
        yield url


@pytest.fixture(scope="session")
def backbone():
    """The converted pretrained musicnn (weights/musicnn-msd), float, eval mode."""
    weights = MUSICNN_DIR / "model.safetensors"
    if not weights.exists():
        pytest.skip("weights/musicnn-msd not converted (python -m train.convert_musicnn)")
    net = MusicnnBackbone().eval()
    net.load_pretrained(load_file(weights))
    return net


@pytest.fixture(scope="session")
def calibrated(backbone):
    """A musicnn-genre with the pretrained backbone, its int8 ranges calibrated on generated music, int8 switched on
    where it runs, and the log-mels of that music (three clips' windows)."""
    from genre_model import synth

    with torch.random.fork_rng():  # the same random head whichever tests ran before
        torch.manual_seed(1)
        model = build_model("musicnn-genre").eval()
    model.backbone.load_state_dict(backbone.state_dict())
    classifier = GenreClassifier(model, "musicnn-test", torch.device("cpu"))
    music = [make(12.0, seed=1) for make in (synth.waltz, synth.four_on_the_floor, synth.power_chords)]
    windows = [classifier.all_windows(classifier.load((synth.SR, m)).samples) for m in music]
    with torch.no_grad():
        model.backbone.calibrate_int8(model.to_logmel(torch.from_numpy(np.concatenate(windows))))
    model.prepare_inference()
    return model, [model.to_logmel(torch.from_numpy(w)) for w in windows]


@contextlib.contextmanager
def switched_int8(model, enabled: bool):
    """``model``'s int8 front end switched on or off inside the block, as it was after."""
    was = model.backbone.int8 is not None
    model.backbone.use_int8(enabled)
    try:
        yield
    finally:
        model.backbone.use_int8(was)


GENRES3 = ["blues", "classical", "metal"]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Three genres of generated audio that a network can tell apart: tones, chirps, noise."""
    root = tmp_path_factory.mktemp("tiny-gtzan")
    makers = {
        "blues": lambda i: tone(150 + 20 * i, 3.0),
        "classical": lambda i: chirp(3.0, f0=300 + 50 * i),
        "metal": lambda i: noise(3.0, seed=i),
    }
    for genre, make in makers.items():
        (root / genre).mkdir()
        for i in range(8):
            sf.write(root / genre / f"{genre}.{i:05d}.wav", make(i), 22_050)
    return root
