"""The live (streaming microphone) state: a rolling window of recent audio at the model's rate and the
history of predictions made on it, for the classroom tab."""

from __future__ import annotations

import numpy as np
import soxr

from .audio import to_mono_float
from .inference import GenreClassifier, Prediction, Segment


class LiveListener:
    """Feed it microphone chunks as they arrive (any rate; browsers send 48 kHz); it keeps the last
    ``window_s`` seconds, resampled with one continuous soxr stream so chunk edges leave no artefacts."""

    def __init__(self, sample_rate: int, window_s: float = 6.0, max_history: int = 120):
        self.sample_rate = sample_rate
        self.capacity = int(window_s * sample_rate)
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

    def classify(self, classifier: GenreClassifier) -> Prediction:
        """Classify the current window and append the result to the history (raises `AudioError`)."""
        seconds = len(self.samples) / self.sample_rate
        prediction = classifier.predict((self.sample_rate, self.samples))
        self.history.append(Segment(self.heard_s - seconds, self.heard_s, prediction.probabilities))
        del self.history[: -self.max_history]
        return prediction
