"""The state of the app's Live view: the live buffer (the last few seconds of audio, at the model's rate, that each
live prediction reads), the history of predictions made on it, and a steadier reading of that history.

One live buffer of music heard through a room flips between genres from one second to the next; the reading shown is
the geometric mean (mean of log-probabilities) of every prediction of the last ``context_s`` seconds, and it says
"too quiet" or "not sure" instead of a confident wrong genre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from .audio import to_mono_float
from .explain import verdict
from .inference import GenreClassifier, Prediction, Segment

QUIET_DB = -50.0  # input level (dBFS over the last second) under which nothing can be told apart


@dataclass
class LiveReading:
    probabilities: dict[str, float]  # the smoothed reading over the context, every genre, summing to 1
    headline: str  # the genre, or "Not sure: a or b?", or "Too quiet to tell"
    reason: str  # one sentence a 12-year-old understands
    sure: bool
    level_db: float  # of the last second of input
    context_s: float  # seconds of audio the reading covers
    prediction: Prediction  # the latest live buffer's own prediction


class LiveListener:
    """Feed it chunks as they arrive (any rate; browsers send 48 kHz); its live buffer keeps the last ``buffer_s``
    seconds, resampled with one continuous soxr stream so chunk edges leave no artefacts."""

    def __init__(self, sample_rate: int, buffer_s: float = 6.0, context_s: float = 12.0, max_history: int = 120):
        self.sample_rate = sample_rate
        self.capacity = int(buffer_s * sample_rate)
        self.context_s = context_s
        self.max_history = max_history
        self.samples = np.zeros(0, np.float32)
        self.heard_s = 0.0  # total input seconds received
        self.history: list[Segment] = []
        self._rate: int | None = None
        self._resampler: soxr.ResampleStream | None = None

    def push(self, rate: int, chunk: np.ndarray) -> None:
        mono = to_mono_float(np.asarray(chunk))
        if rate != self._rate:  # first chunk, or the browser changed rate: start a new stream
            self._rate = rate
            self._resampler = soxr.ResampleStream(rate, self.sample_rate, 1, dtype="float32", quality="HQ")
        resampled = self._resampler.resample_chunk(mono) if rate != self.sample_rate else mono
        self.samples = np.concatenate([self.samples, resampled])[-self.capacity :]
        self.heard_s += len(mono) / rate

    @property
    def level_db(self) -> float:
        """RMS level of the last second, in dB relative to full scale."""
        last = self.samples[-self.sample_rate :]
        return float(10 * np.log10(np.mean(last.astype(np.float64) ** 2) + 1e-12)) if len(last) else -120.0

    def classify(self, classifier: GenreClassifier) -> Prediction:
        """Classify the live buffer and append the result to the history (raises `AudioError`)."""
        seconds = len(self.samples) / self.sample_rate
        prediction = classifier.predict((self.sample_rate, self.samples))
        self.history.append(Segment(self.heard_s - seconds, self.heard_s, prediction.probabilities))
        del self.history[: -self.max_history]
        return prediction

    def read(self, classifier: GenreClassifier) -> LiveReading:
        """Classify the live buffer and give the steady reading of the last ``context_s`` seconds
        (raises `AudioError` for audio that cannot be analyzed)."""
        level = self.level_db
        prediction = self.classify(classifier)
        recent = [s for s in self.history if s.end_s > self.heard_s - self.context_s]
        logs = np.log(np.array([list(s.probabilities.values()) for s in recent]) + 1e-9).mean(axis=0)
        probs = np.exp(logs - logs.max())
        probabilities = dict(zip(prediction.probabilities, map(float, probs / probs.sum())))
        covered = min(self.heard_s, recent[-1].end_s - recent[0].start_s)
        if level < QUIET_DB:
            headline, reason, sure = "Too quiet to tell", "Turn the music up or bring the microphone closer.", False
        else:
            headline, reason, sure = verdict(probabilities, classifier.model.config.entropy_threshold)
        return LiveReading(probabilities, headline, reason, sure, level, covered, prediction)
