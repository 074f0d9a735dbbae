"""The state of the app's Live view: the live buffer (the last few seconds of audio, at the model's rate), the model
windows classified in it, and a steadier reading of their history; and `Batcher`, which classifies the windows of
every listener that asks at about the same moment in one forward pass.

Each reading classifies one model window, the newest (ending where the audio ends), and reuses the windows earlier
readings classified that still lie in the live buffer: the work per reading is one window whatever the buffer's
length. The live buffer's prediction is the mean of those windows; one live buffer of music heard through a room
flips between genres from one second to the next, so the reading shown is the geometric mean (mean of
log-probabilities) of the live buffer's predictions over the last ``context_s`` seconds, and it says "too quiet" or
"not sure" instead of a confident wrong genre.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import soxr

from .audio import to_mono_float, validate
from .inference import GenreClassifier, Segment

log = logging.getLogger(__name__)
QUIET_DB = -50.0  # input level (dBFS over the last second) under which nothing can be told apart
PACE_WINDOW_S = 5.0  # the pace follows the CPU use of this long


@dataclass
class LiveReading:
    probabilities: dict[str, float]  # the smoothed reading over the context, every genre, summing to 1
    headline: str  # the genre, or "Not sure: a or b?", or "Too quiet to tell"
    reason: str  # one sentence a 12-year-old understands
    sure: bool
    level_db: float  # of the last second of input
    context_s: float  # seconds of audio the reading covers


class Batcher:
    """Classifies model windows for many threads (Gradio runs each listener's step in its own), gathering what
    arrives within ``gather_s`` into one forward pass on one thread: fewer, larger passes, and no two passes
    competing for the cores. Each caller gets its own windows' probabilities, as the classifier alone gives them.

    It also sets the pace: every listener reads once per ``pace`` steps (1 or 2). When this process has used more
    than ``busy_cores`` of CPU (Python runs the web server and the steps on about one core at a time) for twice
    ``PACE_WINDOW_S``, everyone reads less often, the same for all, rather than every answer arriving later and
    later; a burst (a class pressing Start together) does not count."""

    MAX_PACE = 2

    def __init__(
        self, classifier: GenreClassifier, gather_s: float = 0.01, max_windows: int = 64, busy_cores: float = 1.25
    ):
        self.classifier, self.gather_s, self.max_windows = classifier, gather_s, max_windows
        self.busy_cores = busy_cores
        self.pace = 1
        self.passes = 0  # forward passes run
        self._jobs: queue.Queue[tuple[np.ndarray, Future]] = queue.Queue()
        self._load: deque[tuple[float, float]] = deque()  # (wall clock, process CPU time) after recent passes
        self._busy_since: float | None = None  # over busy_cores without a break since then
        threading.Thread(target=self._serve, daemon=True, name=f"batcher-{classifier.name}").start()

    def _set_pace(self) -> None:
        now = time.monotonic()
        self._load.append((now, time.process_time()))
        while now - self._load[0][0] > PACE_WINDOW_S:
            self._load.popleft()
        (t0, cpu0), (t1, cpu1) = self._load[0], self._load[-1]
        if t1 - t0 < 0.9 * PACE_WINDOW_S:  # too little seen since the last change
            return
        busy = (cpu1 - cpu0) / (t1 - t0)
        self._busy_since = (self._busy_since or now) if busy > self.busy_cores else None
        slower = self._busy_since is not None and now - self._busy_since >= PACE_WINDOW_S  # a load, not a burst
        if slower and self.pace < self.MAX_PACE or busy < 0.8 * self.busy_cores and self.pace > 1:
            self.pace += 1 if slower else -1
            log.info("Live: %.2f cores busy, every listener now reads once per %d steps", busy, self.pace)
            self._load.clear()  # measure afresh at the new pace
            self._busy_since = None

    def window_probabilities(self, windows: np.ndarray) -> np.ndarray:
        """(n, window_samples) -> (n, n_genres); blocks until the pass that includes them is done."""
        done: Future = Future()
        self._jobs.put((windows, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            deadline = time.monotonic() + self.gather_s
            while sum(len(w) for w, _ in jobs) < self.max_windows and (wait := deadline - time.monotonic()) > 0:
                try:
                    jobs.append(self._jobs.get(timeout=wait))
                except queue.Empty:
                    break
            try:
                probs = self.classifier.window_probabilities(np.concatenate([w for w, _ in jobs]))
            except Exception as error:  # noqa: BLE001 - handed to the callers, the thread keeps serving
                for _, done in jobs:
                    done.set_exception(error)
                continue
            self.passes += 1
            self._set_pace()
            offsets = np.cumsum([0] + [len(w) for w, _ in jobs])
            for (_, done), a, b in zip(jobs, offsets[:-1], offsets[1:]):
                done.set_result(probs[a:b])


class LiveListener:
    """Feed it chunks as they arrive (any rate; browsers send 48 kHz); its live buffer keeps the last ``buffer_s``
    seconds, resampled with one continuous soxr stream so chunk edges leave no artefacts."""

    def __init__(
        self,
        sample_rate: int,
        window_samples: int,
        buffer_s: float = 6.0,
        context_s: float = 12.0,
        max_history: int = 120,
    ):
        if buffer_s * sample_rate < window_samples:
            raise ValueError(f"A live buffer of {buffer_s} s cannot hold one model window.")
        self.sample_rate, self.window = sample_rate, window_samples
        self.capacity = int(buffer_s * sample_rate)
        self.context_s = context_s
        self.max_history = max_history
        self.samples = np.zeros(0, np.float32)
        self.total = 0  # samples at the model's rate received so far: the stream's clock
        self.heard_s = 0.0  # total input seconds received
        self.windows: list[tuple[int, np.ndarray]] = []  # (end in the stream, probabilities), those in the buffer
        self.history: list[Segment] = []  # the live buffer's prediction at each reading, in stream seconds
        self._read_at: tuple[int, float] | None = None  # the stream's clock and the time at the last reading
        self._rate: int | None = None
        self._resampler: soxr.ResampleStream | None = None

    @classmethod
    def for_classifier(cls, classifier: GenreClassifier, **kwargs) -> LiveListener:
        return cls(classifier.sample_rate, classifier.model.config.window_samples, **kwargs)

    def push(self, rate: int, chunk: np.ndarray) -> None:
        mono = to_mono_float(np.asarray(chunk))
        if rate != self._rate:  # first chunk, or the browser changed rate: start a new stream
            self._rate = rate
            self._resampler = soxr.ResampleStream(rate, self.sample_rate, 1, dtype="float32", quality="HQ")
        resampled = self._resampler.resample_chunk(mono) if rate != self.sample_rate else mono
        self.samples = np.concatenate([self.samples, resampled])[-self.capacity :]
        self.total += len(resampled)
        self.heard_s += len(mono) / rate

    @property
    def level_db(self) -> float:
        """RMS level of the last second, in dB relative to full scale."""
        last = self.samples[-self.sample_rate :]
        return float(10 * np.log10(np.mean(last.astype(np.float64) ** 2) + 1e-12)) if len(last) else -120.0

    def due(self, every_s: float) -> bool:
        """A whole model window has been heard, and ``every_s`` seconds of new audio, or of time, since the last
        reading (a busy server may drop chunks: the time keeps the answers coming)."""
        if self.total < self.window - self.sample_rate // 20:  # the resampler holds back a few milliseconds
            return False
        if self._read_at is None:
            return True
        return (
            self.total - self._read_at[0] >= every_s * self.sample_rate
            or time.monotonic() - self._read_at[1] >= every_s
        )

    def read(self, classifier: GenreClassifier, batcher: Batcher | None = None) -> LiveReading:
        """Classify the newest model window (through ``batcher`` if given), and give the steady reading of the last
        ``context_s`` seconds. Raises `AudioError` for a live buffer that cannot be analyzed (silence)."""
        self._read_at = (self.total, time.monotonic())
        level = self.level_db
        validate(self.samples, self.sample_rate)
        newest = np.pad(self.samples[-self.window :], (max(0, self.window - len(self.samples)), 0))[None]
        self.windows.append((self.total, (batcher or classifier).window_probabilities(newest)[0]))
        self.windows = [(end, p) for end, p in self.windows if end - self.window >= self.total - self.capacity]
        mean = np.mean([p for _, p in self.windows], axis=0)
        now_s = self.total / self.sample_rate
        first_s = (self.windows[0][0] - self.window) / self.sample_rate
        self.history.append(Segment(first_s, now_s, dict(zip(classifier.genres, map(float, mean / mean.sum())))))
        del self.history[: -self.max_history]
        recent = [s for s in self.history if s.end_s > now_s - self.context_s]
        logs = np.log(np.array([list(s.probabilities.values()) for s in recent]) + 1e-9).mean(axis=0)
        probs = np.exp(logs - logs.max())
        probabilities = dict(zip(classifier.genres, map(float, probs / probs.sum())))
        covered = recent[-1].end_s - max(0.0, recent[0].start_s)  # the first window is padded: not heard
        if level < QUIET_DB:
            headline, reason, sure = "Too quiet to tell", "Turn the music up or bring the microphone closer.", False
        else:  # the rule was measured on whole clips: nothing "clearly" before half the context is heard
            said = classifier.verdict(probabilities, can_be_clear=covered >= self.context_s / 2)
            headline, reason, sure = said.headline, said.reason, said.sure
        return LiveReading(probabilities, headline, reason, sure, level, covered)
