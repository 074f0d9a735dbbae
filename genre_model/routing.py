"""Two models, chosen by where the sound comes from: the clean model for files and this computer's sound, the room
model for a microphone in a room. ``auto`` asks `RoomDetector` whether the sound crossed a room.

The detector reads the log-mel the clean model computes, not the network: per band, its mean (level removed), its
spread over time and its frame-to-frame change. A speaker, a room and a microphone leave marks there that music
itself rarely does (little bass from small speakers, reverberation smoothing every band), so a logistic regression
on those statistics tells room recordings from clean files, at the cost of one spectrogram.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .audio import AudioInput, Waveform
from .inference import GenreClassifier, Prediction
from .loading import WEIGHTS_DIR

SOURCES = ("auto", "file", "microphone")  # auto: the detector decides; file: clean; microphone: room
CLEAN_MODEL, ROOM_MODEL = "musicnn-genre", "musicnn-room"  # the committed pair, in weights/
DETECTOR_FILE = "room-detector.json"  # beside the clean model, whose log-mel it reads


def check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")


def band_statistics(logmel: np.ndarray) -> np.ndarray:
    """(windows, n_mels, frames) -> (windows, 3 n_mels): each band's mean over time less the window's mean level,
    its standard deviation over time and its mean absolute change from frame to frame."""
    mean = logmel.mean(axis=2)
    change = np.abs(np.diff(logmel, axis=2)).mean(axis=2)
    return np.concatenate([mean - mean.mean(axis=1, keepdims=True), logmel.std(axis=2), change], axis=1)


@dataclass
class RoomDetector:
    """A logistic regression on standardised `band_statistics`: the probability that a model window was heard
    through a room. Fitted by ``python -m train.detector``; a clip is a room recording when the mean over its
    windows passes ``threshold``."""

    arch: str  # the architecture whose front end makes the log-mel it reads
    mean: list[float]
    scale: list[float]
    weight: list[float]
    bias: float
    threshold: float = 0.5

    def window_probabilities(self, statistics: np.ndarray) -> np.ndarray:
        """(windows, features) `band_statistics` -> each window's probability of a room recording."""
        x = (statistics - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1 / (1 + np.exp(-(x @ np.asarray(self.weight) + self.bias)))

    @torch.inference_mode()
    def room_probability(self, classifier: GenreClassifier, wave: Waveform) -> float:
        """The mean over ``wave``'s model windows, as ``classifier`` (the clean model) cuts and hears them."""
        if classifier.model.config.arch != self.arch:
            raise ValueError(f"this room detector reads {self.arch}'s log-mel, not {classifier.model.config.arch}'s")
        windows = torch.from_numpy(classifier.all_windows(wave.samples)).to(classifier.device)
        logmel = classifier.model.to_logmel(windows).float().cpu().numpy()
        return float(self.window_probabilities(band_statistics(logmel)).mean())

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / DETECTOR_FILE
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> RoomDetector:
        path = Path(folder) / DETECTOR_FILE
        if not path.is_file():
            raise FileNotFoundError(f"No room detector at '{path}': fit one with `python -m train.detector`.")
        return cls(**json.loads(path.read_text()))


class Router:
    """The clean and the room model and the detector between them: `predict` answers with the model the source
    calls for and says which one answered and why (`Prediction.route`)."""

    def __init__(self, clean: GenreClassifier, room: GenreClassifier, detector: RoomDetector):
        if clean.genres != room.genres or clean.sample_rate != room.sample_rate:
            raise ValueError(f"the two models must share genres and sample rate: {clean.name} and {room.name} do not")
        self.clean, self.room, self.detector = clean, room, detector

    @classmethod
    def from_pretrained(
        cls, clean: str | Path | None = None, room: str | Path | None = None, device: str | None = None
    ) -> Router:
        """The committed pair (``weights/musicnn-genre`` and ``weights/musicnn-room``), or the folders given; the
        detector is read from the clean model's folder."""
        clean_path = Path(clean) if clean else WEIGHTS_DIR / CLEAN_MODEL
        room_path = Path(room) if room else WEIGHTS_DIR / ROOM_MODEL
        return cls(
            GenreClassifier.from_pretrained(clean_path, device),
            GenreClassifier.from_pretrained(room_path, device),
            RoomDetector.load(clean_path),
        )

    def choose(self, wave: Waveform, source: str = "auto") -> tuple[GenreClassifier, str]:
        """The classifier for ``wave`` from ``source`` (`SOURCES`), and why, in words."""
        check_source(source)
        if source == "file":
            return self.clean, "the clean model, for a file or this computer's sound"
        if source == "microphone":
            return self.room, "the room model, for a microphone in a room"
        p = self.detector.room_probability(self.clean, wave)
        if p >= self.detector.threshold:
            return self.room, f"the room model, as the room detector heard a room ({p:.0%})"
        return self.clean, f"the clean model, as the room detector heard no room ({1 - p:.0%})"

    def answered(self, prediction: Prediction) -> GenreClassifier:
        """Which of the two made ``prediction`` (its confidence rule is that model's)."""
        return self.room if prediction.model_name == self.room.name else self.clean

    def predict(self, audio: AudioInput | Waveform, source: str = "auto", with_features: bool = False) -> Prediction:
        """Classify one clip with the model ``source`` calls for. Raises `AudioError` for input that cannot be
        analyzed."""
        wave = self.clean.load(audio)  # both models read 16 kHz: one decoding serves either
        classifier, why = self.choose(wave, source)
        return replace(classifier.predict(wave, with_features), route=why)
