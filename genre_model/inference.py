"""`GenreClassifier`: audio in, genre probabilities out; the one object the CLI, the app and the bench use."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .audio import AudioInput, Waveform, load_audio
from .base import GenreNet
from .confidence import ConfidenceRule, Verdict, verdict
from .loading import load_model, resolve_model_name

# Model windows per forward pass: bounds memory for long inputs. On a CPU, batches of 16 are as fast per window as
# bigger ones and keep every tensor small enough for the allocator to reuse freed memory instead of mapping fresh
# pages (bigger batches made predict_many slower under glibc's defaults).
CPU_BATCH, GPU_BATCH = 16, 64


@dataclass
class Segment:
    start_s: float
    end_s: float
    probabilities: dict[str, float]

    @property
    def genre(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)


@dataclass
class Prediction:
    genre: str
    probabilities: dict[str, float]  # every genre, in the model's order, summing to 1
    segments: list[Segment]  # one per model window when the audio spans more than one, else empty
    duration_s: float
    analyzed_s: float
    model_name: str
    device: str
    elapsed_ms: float
    tags: dict[str, float] | None = None  # a pretrained backbone's own tags (independent probabilities), if any
    route: str | None = None  # which of two models answered and why (`genre_model.routing`), if routed
    logmel: np.ndarray | None = field(default=None, repr=False)  # (n_mels, frames) as the network saw it
    frame_times_s: np.ndarray | None = field(default=None, repr=False)  # start time of each logmel column

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def to_dict(self) -> dict:
        """The JSON-able summary (no arrays)."""
        d = asdict(self)
        for key in ("logmel", "frame_times_s"):
            d.pop(key)
        return d


def _joined(parts: list[torch.Tensor]) -> np.ndarray | None:
    return torch.cat(parts).numpy() if parts else None


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else cuda, then mps, then cpu."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class GenreClassifier:
    """Classify audio with a trained model. Stateless after construction, so safe to share between threads.

    One process-wide setting: a classifier on the CPU holds numpy's BLAS (OpenBLAS, through threadpoolctl) to one
    thread from then on. After each multi-threaded BLAS call (a librosa spectrogram, a matrix product) OpenBLAS's idle
    threads keep spinning for a while, and a forward pass that starts meanwhile shares the cores with them: on a small
    machine `predict` then takes several times as long. torch's own threads are left as they are. To give numpy its
    threads back: ``threadpoolctl.threadpool_limits(os.cpu_count(), user_api="blas")``.
    """

    def __init__(self, model: GenreNet, name: str, device: torch.device):
        self.model = model.to(device).eval()
        self.name = name
        self.device = device
        if device.type == "cpu":
            threadpool_limits(limits=1, user_api="blas")

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path | None = None, device: str | None = None) -> GenreClassifier:
        """Load a model folder or Hub repo id (None = the committed default; a bare architecture name such as
        ``seed-cnn`` = ``weights/seed-cnn``) on ``device`` (None = best available)."""
        dev = pick_device(device)
        resolved = resolve_model_name(path_or_repo_id)
        return cls(load_model(resolved, dev), Path(resolved).name if Path(resolved).exists() else resolved, dev)

    @property
    def genres(self) -> list[str]:
        return self.model.config.genres

    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    def verdict(self, probabilities: dict[str, float], can_be_clear: bool = True) -> Verdict:
        """What to say about ``probabilities`` by this model's confidence rule (`genre_model.confidence`)."""
        return verdict(probabilities, ConfidenceRule.from_dict(self.model.config.confidence), can_be_clear)

    def load(self, audio: AudioInput | Waveform) -> Waveform:
        return audio if isinstance(audio, Waveform) else load_audio(audio, self.sample_rate)

    def window_starts(self, n_samples: int) -> list[int]:
        """Start sample of each model window; the last one ends at the end of the audio."""
        win = self.model.config.window_samples
        hop = round(self.model.config.window_hop_s * self.sample_rate)
        if n_samples <= win:
            return [0]
        starts = list(range(0, n_samples - win + 1, hop))
        if starts[-1] + win < n_samples:
            starts.append(n_samples - win)
        return starts

    def predict(self, audio: AudioInput | Waveform, with_features: bool = False) -> Prediction:
        """Classify one clip. ``audio``: a path, a ``(sample_rate, array)`` pair or a loaded `Waveform`.
        Raises `AudioError` for input that cannot be analyzed."""
        return self.predict_many([audio], with_features)[0]

    def predict_many(self, items: Iterable[AudioInput | Waveform], with_features: bool = False) -> list[Prediction]:
        """Classify several clips, their windows batched into as few forward passes as possible."""
        t0 = time.perf_counter()
        waves = [self.load(item) for item in items]
        starts = [self.window_starts(len(w.samples)) for w in waves]
        windows = np.concatenate([self.cut_windows(w.samples, s) for w, s in zip(waves, starts)])
        logmel, probs, tags = self._forward(windows, with_features)
        elapsed_ms = (time.perf_counter() - t0) * 1000 / len(waves)
        predictions, offset = [], 0
        for wave, clip_starts in zip(waves, starts):
            rows = slice(offset, offset + len(clip_starts))
            offset += len(clip_starts)
            clip_logmels = None if logmel is None else logmel[rows]
            clip_tags = None if tags is None else tags[rows]
            predictions.append(self.to_prediction(wave, clip_starts, probs[rows], clip_logmels, elapsed_ms, clip_tags))
        return predictions

    def all_windows(self, samples: np.ndarray) -> np.ndarray:
        """(n_windows, window_samples): the windows the model sees for ``samples``."""
        return self.cut_windows(samples, self.window_starts(len(samples)))

    def cut_windows(self, samples: np.ndarray, starts: list[int]) -> np.ndarray:
        win = self.model.config.window_samples
        out = np.zeros((len(starts), win), dtype=np.float32)  # short audio: zero-padded (silence)
        for i, s in enumerate(starts):
            chunk = samples[s : s + win]
            out[i, : len(chunk)] = chunk
        return out

    def window_probabilities(self, windows: np.ndarray) -> np.ndarray:
        """(n_windows, window_samples) -> genre probabilities (n_windows, n_genres)."""
        return self._forward(windows, with_features=False)[1]

    @torch.inference_mode()
    def _forward(self, windows: np.ndarray, with_features: bool):
        """(n_windows, samples) -> log-mels (n_windows, n_mels, frames) or None, genre probabilities
        (n_windows, n_genres), tag probabilities (n_windows, n_tags) or None."""
        mels, probs, tags = [], [], []
        for batch in torch.from_numpy(windows).split(CPU_BATCH if self.device.type == "cpu" else GPU_BATCH):
            logmel = self.model.to_logmel(batch.to(self.device))
            logits, tag_logits = self.model.classify_and_tag(logmel)
            probs.append(torch.softmax(logits, dim=-1).float().cpu())
            if tag_logits is not None:
                tags.append(torch.sigmoid(tag_logits).float().cpu())
            if with_features:
                mels.append(logmel.float().cpu())
        return _joined(mels), _joined(probs), _joined(tags)

    def to_prediction(
        self,
        wave: Waveform,
        starts: list[int],
        probs: np.ndarray,
        logmels: np.ndarray | None,
        elapsed_ms: float,
        tags: np.ndarray | None = None,
    ) -> Prediction:
        """One clip's `Prediction` from its windows' genre probabilities (n_windows, n_genres), log-mels and tag
        probabilities (n_windows, n_tags), each averaged or stitched over the windows."""
        sr, win, genres = self.sample_rate, self.model.config.window_samples, self.genres
        mean = probs.mean(axis=0)
        mean = mean / mean.sum()
        segments = []
        if len(starts) > 1:
            n = len(wave.samples)
            for s, p in zip(starts, probs):
                segments.append(Segment(s / sr, min(s + win, n) / sr, dict(zip(genres, map(float, p)))))
        grid, times = self.stitch(logmels, starts) if logmels is not None else (None, None)
        return Prediction(
            genre=genres[int(mean.argmax())],
            probabilities=dict(zip(genres, map(float, mean))),
            segments=segments,
            duration_s=wave.duration_s,
            analyzed_s=wave.analyzed_s,
            model_name=self.name,
            device=str(self.device),
            elapsed_ms=elapsed_ms,
            tags=None if tags is None else dict(zip(self.model.tag_names, map(float, tags.mean(axis=0)))),
            logmel=grid,
            frame_times_s=times,
        )

    def stitch(self, logmels: np.ndarray, starts: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Join the windows' log-mels into one time axis, each window contributing up to the next one's start."""
        hop = self.model.config.hop_length
        parts, times = [], []
        for i, (s, lm) in enumerate(zip(starts, logmels)):
            n_frames = lm.shape[1] if i == len(starts) - 1 else (starts[i + 1] - s) // hop
            parts.append(lm[:, :n_frames])
            times.append((s + np.arange(n_frames) * hop) / self.sample_rate)
        return np.concatenate(parts, axis=1), np.concatenate(times)
