"""GTZAN-layout datasets: find the clips, split them, draw them genre-balanced, and cache their decoded waveforms
on disk."""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from genre_model.audio import AUDIO_SUFFIXES, AudioError, Waveform, load_audio

_CLIP_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})$")
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Clip:
    id: str  # "blues.00042"
    genre: str
    path: Path


def scan_dataset(data_dir: str | Path) -> list[Clip]:
    """Every ``<genre>/<genre>.NNNNN.<audio ext>`` under ``data_dir`` (any depth), one per clip id: the genres are
    the folder names (`genres_of`), so a dataset with other genres trains a model with those."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset folder '{root}' does not exist.")
    clips: dict[str, Clip] = {}
    for path in sorted(root.rglob("*.*")):
        match = _CLIP_NAME.match(path.stem)
        if path.suffix.lower() in AUDIO_SUFFIXES and match and match["genre"] == path.parent.name:
            clips.setdefault(path.stem, Clip(path.stem, match["genre"], path))
    if not clips:
        raise FileNotFoundError(f"No GTZAN-layout clips (<genre>/<genre>.NNNNN.wav|ogg|...) found under '{root}'.")
    return sorted(clips.values(), key=lambda c: c.id)


def split_clips(
    clips: list[Clip], split_dir: str | Path | None = None, seed: int = 0, fractions: tuple[float, float] = (0.1, 0.1)
) -> tuple[dict[str, list[Clip]], dict[str, int]]:
    """Split by clip (so crops of one clip never cross splits).

    With ``split_dir``: the lists ``{train,valid,test}_filtered.txt`` (lines like ``blues/blues.00029.wav``,
    matched by clip id whatever the extension). Otherwise a stratified random split with ``fractions`` =
    (valid, test), fixed by ``seed`` (the paper's protocol). Returns the splits and, per split, how many
    listed clips are absent from ``clips``.
    """
    if split_dir is not None:
        by_id = {c.id: c for c in clips}
        splits, missing = {}, {}
        for name in SPLITS:
            listed = [
                Path(line.strip()).stem for line in (Path(split_dir) / f"{name}_filtered.txt").read_text().split()
            ]
            splits[name] = [by_id[i] for i in listed if i in by_id]
            missing[name] = len(listed) - len(splits[name])
        return splits, missing
    rng = random.Random(seed)
    splits = {name: [] for name in SPLITS}
    for genre in sorted({c.genre for c in clips}):
        members = [c for c in clips if c.genre == genre]
        rng.shuffle(members)
        n_valid, n_test = (math.ceil(f * len(members)) for f in fractions)  # small genres keep one of each
        splits["valid"] += members[:n_valid]
        splits["test"] += members[n_valid : n_valid + n_test]
        splits["train"] += members[n_valid + n_test :]
    return {k: sorted(v, key=lambda c: c.id) for k, v in splits.items()}, dict.fromkeys(SPLITS, 0)


def genres_of(clips: list[Clip]) -> list[str]:
    """The labels a model trained on ``clips`` predicts, sorted (GTZAN's ten in their usual order)."""
    return sorted({c.genre for c in clips})


def random_crop(samples: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``n_samples`` stretch of ``samples`` (float32), zero-padded when the clip is shorter."""
    out = np.zeros(n_samples, np.float32)
    start = int(rng.integers(0, max(1, len(samples) - n_samples + 1)))
    chunk = samples[start : start + n_samples]
    out[: len(chunk)] = chunk
    return out


def balanced_draw(labels: list[int] | np.ndarray) -> np.ndarray:
    """Per-clip probabilities that draw every genre equally often, whatever its clip count."""
    labels = np.asarray(labels)
    draw = 1.0 / np.bincount(labels)[labels]
    return draw / draw.sum()


def genre_counts(clips: list[Clip]) -> dict[str, int]:
    counts = Counter(c.genre for c in clips)
    return {g: counts[g] for g in sorted(counts)}


class WaveformCache:
    """Decoded, resampled mono waveforms as ``.npy`` files keyed by file content and sample rate, so a
    second training run skips decoding. Waveforms rather than log-mels are cached because the front end
    lives inside each model (training goes through it, exactly as inference does) and waveform-domain
    augmentations need the audio."""

    def __init__(self, cache_dir: str | Path):
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def key(self, path: Path, sample_rate: int) -> str:
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        return f"{digest}-{sample_rate}"

    def load(self, clip: Clip, sample_rate: int) -> Waveform:
        file = self.dir / f"{self.key(clip.path, sample_rate)}.npy"
        if file.exists():
            samples = np.load(file)
        else:
            samples = load_audio(clip.path, sample_rate).samples
            tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp.npy")  # own name: ranks may decode the same clip
            np.save(tmp, samples)
            tmp.replace(file)  # atomic: an interrupted run never leaves a half-written entry
        seconds = len(samples) / sample_rate
        return Waveform(samples, sample_rate, seconds, seconds)

    def load_all(self, clips: list[Clip], sample_rate: int, desc: str) -> tuple[list[Clip], list[Waveform]]:
        """Load every clip (decoding the ones not cached yet); unreadable clips are reported and skipped."""
        kept, waves = [], []
        for clip in tqdm(clips, desc=desc, unit="clip", leave=False):
            try:
                waves.append(self.load(clip, sample_rate))
                kept.append(clip)
            except AudioError as err:
                tqdm.write(f"skipping {clip.path.name}: {err}")
        return kept, waves
