"""Small synthesized music clips: test signals for the tests and the bench (the app's examples are real music, in
examples/). They are caricatures of styles, not ground truth."""

from __future__ import annotations

import numpy as np

SR = 22_050


def _note(freq: float, seconds: float, harmonics: int = 6, decay: float = 3.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    tone = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, harmonics + 1))
    return tone * np.exp(-decay * t)


def _kick(sr: int = SR) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    return np.sin(2 * np.pi * (50 + 100 * np.exp(-30 * t)) * t) * np.exp(-12 * t)


def _hat(rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    t = np.arange(int(0.05 * sr)) / sr
    return rng.standard_normal(len(t)) * np.exp(-80 * t) * 0.3


def _place(out: np.ndarray, sound: np.ndarray, at_s: float, sr: int = SR) -> None:
    i = int(at_s * sr)
    n = min(len(sound), len(out) - i)
    if n > 0:
        out[i : i + n] += sound[:n]


def waltz(seconds: float = 12.0, seed: int = 0) -> np.ndarray:
    """Soft arpeggiated chords in 3/4 at 90 bpm."""
    rng, out = np.random.default_rng(seed), np.zeros(int(seconds * SR))
    chords = [[261.6, 329.6, 392.0], [220.0, 261.6, 329.6], [174.6, 220.0, 261.6], [196.0, 246.9, 293.7]]
    beat = 60 / 90
    for i in range(int(seconds / beat)):
        chord = chords[(i // 3) % len(chords)]
        _place(out, _note(chord[i % 3] * rng.choice([1, 2]), 1.5, decay=2.0), i * beat)
    return _normalize(out)


def four_on_the_floor(seconds: float = 12.0, seed: int = 0) -> np.ndarray:
    """Kick on every beat, off-beat hi-hats and an octave bass line at 120 bpm."""
    rng, out = np.random.default_rng(seed), np.zeros(int(seconds * SR))
    beat = 0.5
    for i in range(int(seconds / beat)):
        _place(out, _kick(), i * beat)
        _place(out, _hat(rng), i * beat + beat / 2)
        _place(out, 0.4 * _note(55.0 * (2 if i % 2 else 1), beat, harmonics=3, decay=4.0), i * beat)
    return _normalize(out)


def power_chords(seconds: float = 12.0, seed: int = 0) -> np.ndarray:
    """Distorted fifths over a driving beat."""
    rng, out = np.random.default_rng(seed), np.zeros(int(seconds * SR))
    beat = 0.4
    for i in range(int(seconds / beat)):
        root = [82.4, 82.4, 98.0, 110.0][(i // 4) % 4]
        chord = _note(root, beat, harmonics=8, decay=0.5) + _note(root * 1.5, beat, harmonics=8, decay=0.5)
        _place(out, np.tanh(4 * chord), i * beat)
        _place(out, _kick() if i % 2 == 0 else 2 * _hat(rng), i * beat)
    return _normalize(out)


EXAMPLES = {"synth-waltz": waltz, "synth-disco-beat": four_on_the_floor, "synth-power-chords": power_chords}


def _normalize(x: np.ndarray) -> np.ndarray:
    return (0.8 * x / max(np.abs(x).max(), 1e-9)).astype(np.float32)
